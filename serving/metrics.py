"""The service's Prometheus metrics, on a registry of its own.

Each service owns a :class:`ServiceMetrics` with a private
:class:`~prometheus_client.CollectorRegistry` (never the process-wide default: two
services in one process, as in the tests, keep their counts apart). ``GET /metrics``
serves :meth:`ServiceMetrics.exposition` in the Prometheus text format.

Labels are bounded: ``endpoint`` is one of the service's routes (anything else is
``other``), ``field`` and ``feature`` are the schema's columns (a field the schema
does not declare counts as ``(unknown)``, the request body as ``(body)``), ``name`` is a
model input or ``score``; a client cannot grow the label sets.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE", "LATENCY_BUCKETS", "UNKNOWN_FIELD", "ServiceMetrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
"""The media type of ``GET /metrics``."""
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
"""Seconds: fine below the 25 ms target, coarse up to the 1 s business limit."""
UNKNOWN_FIELD = "(unknown)"
BODY_FIELD = "(body)"


class ServiceMetrics:
    """Counters, histogram and gauges of one service (module docstring).

    Parameters
    ----------
    endpoints : iterable of str
        The routes whose requests are labelled by path.
    features : iterable of str
        The schema's columns (the only ``field`` / ``feature`` label values besides
        ``(unknown)`` and ``(body)``).
    """

    def __init__(self, *, endpoints: Iterable[str], features: Iterable[str]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._endpoints = frozenset(endpoints)
        self._features = frozenset(features)
        self.requests = Counter(
            "fedcredit_requests",
            "HTTP requests answered, by endpoint and status code.",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "fedcredit_request_seconds",
            "Time from receiving a request to its answer, by endpoint.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.decisions = Counter(
            "fedcredit_decisions",
            "Applicants scored, by decision (approve, decline).",
            ["decision"],
            registry=self.registry,
        )
        self.validation_failures = Counter(
            "fedcredit_validation_failures",
            "Problems found in refused requests, by field.",
            ["field"],
            registry=self.registry,
        )
        self.out_of_range = Counter(
            "fedcredit_out_of_range",
            "Values outside a feature's public bounds (refused), by feature.",
            ["feature"],
            registry=self.registry,
        )
        self.drift_psi = Gauge(
            "fedcredit_drift_psi",
            "PSI (score) and CSI (model inputs) of the scored applicants against the "
            "development sample.",
            ["name"],
            registry=self.registry,
        )
        self.drift_flag = Gauge(
            "fedcredit_drift_alert",
            "1 when a characteristic (or the score) is flagged as drift, else 0.",
            ["name"],
            registry=self.registry,
        )
        self.drift_rows = Gauge(
            "fedcredit_drift_rows",
            "Applicants counted for the drift comparison since the service started.",
            registry=self.registry,
        )
        self.drift_any = Gauge(
            "fedcredit_drift_alerts",
            "How many characteristics (and the score) are flagged as drift.",
            registry=self.registry,
        )

    def endpoint(self, path: str) -> str:
        """The ``endpoint`` label of a request path."""
        return path if path in self._endpoints else "other"

    def field(self, feature: str | None, path: str) -> str:
        """The ``field`` label of a problem: its schema column, the body, or unknown."""
        if feature is not None and feature in self._features:
            return feature
        return BODY_FIELD if path == "body" else UNKNOWN_FIELD

    def observe_request(self, path: str, status: int, seconds: float) -> None:
        """Count one answered request and its latency."""
        endpoint = self.endpoint(path)
        self.requests.labels(endpoint=endpoint, status=str(status)).inc()
        self.latency.labels(endpoint=endpoint).observe(seconds)

    def observe_decisions(self, declines: int, approvals: int) -> None:
        """Count the decisions of one scored request."""
        if declines:
            self.decisions.labels(decision="decline").inc(declines)
        if approvals:
            self.decisions.labels(decision="approve").inc(approvals)

    def observe_drift(self, psi: Mapping[str, float], drift: Mapping[str, bool], rows: int) -> None:
        """Set the drift gauges from the latest comparison."""
        for name, value in psi.items():
            self.drift_psi.labels(name=name).set(value)
        for name, flagged in drift.items():
            self.drift_flag.labels(name=name).set(1.0 if flagged else 0.0)
        self.drift_rows.set(rows)
        self.drift_any.set(sum(drift.values()))

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)
