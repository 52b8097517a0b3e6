"""The scoring service's work, apart from HTTP: parse, score, count, log.

:class:`ScoringService` holds what one running service needs (the scorer, the request
models, the metrics, the drift monitor and the decision log) and answers a scoring
request body with the contract's document::

    {"results": [{"probability": 0.123, "score": 612, "decision": "approve",
                  "reasons": [{"feature": "PAY_0", "text": "...", "points_lost": 31.5}]}],
     "model": "<package digest>"}

The HTTP layer (:mod:`serving.app`) reads the body, has :meth:`ScoringService.parse`
validate it and hands the applicants to a :class:`~serving.batcher.Batcher` that
scores the requests waiting together with :meth:`ScoringService.score_many`.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from credit.package import ModelPackage
from credit.scoring import Scorer
from serving.applicants import ApplicantForm, applicant_form
from serving.decision_log import DecisionLog
from serving.drift import DriftMonitor, drift_baseline
from serving.errors import ApplicantsRefused
from serving.metrics import ServiceMetrics
from serving.settings import ServiceSettings

__all__ = ["ENDPOINTS", "Answer", "ScoringService"]

ENDPOINTS = ("/v1/score", "/v1/model", "/healthz", "/metrics")


@dataclass(frozen=True)
class Answer:
    """A scored request: the answer document and what the log and metrics need."""

    document: dict[str, Any]
    decisions: list[str]
    scores: list[int | None]


class ScoringService:
    """One package behind the API (module docstring).

    Parameters
    ----------
    package : ModelPackage
        The verified package.
    settings : ServiceSettings
        The service's settings (cut-off, batch size, log, drift).
    """

    def __init__(self, package: ModelPackage, settings: ServiceSettings) -> None:
        self.package = package
        self.settings = settings
        self.scorer = Scorer(package, cutoff=settings.cutoff)
        self.form: ApplicantForm = applicant_form(package.schema, max_batch=settings.max_batch)
        schema = package.schema
        schema_columns = [f.name for f in schema.numeric] + [f.name for f in schema.categorical]
        self.metrics = ServiceMetrics(endpoints=ENDPOINTS, features=schema_columns)
        baseline = drift_baseline(package)
        self.drift = (
            None
            if baseline is None
            else DriftMonitor(
                baseline,
                every=settings.drift_every,
                min_rows=settings.drift_min_rows,
                quantile=settings.drift_quantile,
            )
        )
        self._checker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fedcredit-drift")
        self._check_pending = threading.Event()
        """Set while a drift check waits or runs: at most one is queued at a time."""
        self.log = DecisionLog(
            settings.log_path, model=package.digest, features=settings.log_features
        )

    @property
    def cutoff(self) -> float:
        """The decision cut-off in force (``--cutoff`` or the package's)."""
        return (
            self.settings.cutoff
            if self.settings.cutoff is not None
            else self.package.scoring.cutoff
        )

    def parse(self, body: bytes) -> list[dict[str, Any]]:
        """The request's applicants; a refusal is counted in the metrics before it is raised.

        Raises
        ------
        ApplicantsRefused
            The body breaks the schema (every field's problem named).
        """
        try:
            return self.form.parse(body)
        except ApplicantsRefused as refused:
            for problem in refused.problems:
                label = self.metrics.field(problem.feature, problem.path)
                self.metrics.validation_failures.labels(field=label).inc()
                if self.form.out_of_range(problem) and problem.feature is not None:
                    self.metrics.out_of_range.labels(feature=problem.feature).inc()
            raise

    def score(self, applicants: list[dict[str, Any]]) -> Answer:
        """Score one request's validated applicants (:meth:`score_many` of one request)."""
        return self.score_many([applicants])[0]

    def score_many(self, requests: Sequence[list[dict[str, Any]]]) -> list[Answer]:
        """Score several requests' validated applicants in one scorer call.

        Decisions are counted and the drift counts fed once for the call (a comparison,
        when due, runs in a background thread); each request gets its own rows' answer,
        in order.
        """
        rows = [applicant for applicants in requests for applicant in applicants]
        scored = self.scorer.score(self.form.columns(rows))
        decisions = ["decline" if flag else "approve" for flag in scored.decline.tolist()]
        scores: list[int | None] = [int(value) for value in scored.score.tolist()]
        results = [
            {
                "probability": probability,
                "score": score,
                "decision": decision,
                "reasons": [
                    {"feature": r.feature, "text": r.text, "points_lost": r.points_lost}
                    for r in reasons
                ],
            }
            for probability, score, decision, reasons in zip(
                scored.probability.tolist(), scores, decisions, scored.reasons, strict=True
            )
        ]
        declines = int(np.count_nonzero(scored.decline))
        self.metrics.observe_decisions(declines, len(rows) - declines)
        if self.drift is not None and self.drift.add(
            scored.bins, scored.probability, requests=len(requests)
        ):
            self._queue_drift_check()
        answers, start = [], 0
        for applicants in requests:
            end = start + len(applicants)
            document = {"results": results[start:end], "model": self.package.digest}
            answers.append(Answer(document, decisions[start:end], scores[start:end]))
            start = end
        return answers

    def _queue_drift_check(self) -> None:
        """Queue a comparison off the request's path, unless one is already waiting or running.

        The counts keep growing meanwhile, so the queued check sees them all: checks
        that arrive faster than they finish are merged, and the queue never grows.
        """
        if self._check_pending.is_set():
            return
        self._check_pending.set()
        self._checker.submit(self._pending_check)

    def _pending_check(self) -> None:
        self._check_pending.clear()  # counts added from here on may queue the next check
        self.check_drift()

    def check_drift(self) -> None:
        """Compare the scored applicants with the development sample; set the gauges."""
        if self.drift is None:
            return
        status = self.drift.check()
        if status is not None:
            self.metrics.observe_drift(status.psi, status.drift, status.rows)

    def model_document(self) -> dict[str, Any]:
        """``GET /v1/model``: what the service scores with."""
        package = self.package
        manifest = package.manifest
        baseline = drift_baseline(package)
        drift: Mapping[str, Any] = (
            {"baseline": False, "reason": package.scoring.development_missing}
            if baseline is None
            else {
                "baseline": True,
                "development_noise": baseline.noise is not None,
                "characteristics": [name for name, _ in baseline.layout.characteristics],
                "score_bins": baseline.layout.score_bins,
                "every": self.settings.drift_every,
                "min_rows": self.settings.drift_min_rows,
                "quantile": self.settings.drift_quantile,
            }
        )
        return {
            "model": package.digest,
            "signer": manifest.signer.fingerprint,
            "run": manifest.run,
            "created": manifest.created,
            "schema": {"name": package.schema.name, "hash": package.schema.schema_hash()},
            "kind": package.kind,
            "encoding": package.encoder.kind.value,
            "cutoff": self.cutoff,
            "top_k": self.scorer.top_k,
            "drift": dict(drift),
        }

    def close(self) -> None:
        """Finish the drift comparison under way and close the decision log."""
        self._checker.shutdown(wait=True)
        self.log.close()
