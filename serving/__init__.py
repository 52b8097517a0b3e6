"""The bank's scoring service: ``fedcredit serve`` puts a verified model package behind an HTTP API.

Builds on :mod:`credit.package` (the signed package) and :mod:`credit.scoring` (the scorer).
:func:`create_app` builds the FastAPI application (:mod:`serving.app`), :func:`serve`
runs it under uvicorn with TLS, mutual TLS and an API token as the settings say
(:mod:`serving.runner`, :mod:`serving.settings`); the service counts requests,
decisions and refusals for Prometheus (:mod:`serving.metrics`), logs one JSON line
per request (:mod:`serving.decision_log`) and watches drift against the package's
development bins (:mod:`serving.drift`).
"""

from serving.app import create_app
from serving.drift import (
    DriftBaseline,
    DriftMonitor,
    DriftStatus,
    drift_baseline,
    file_comparison,
    sample_counts,
)
from serving.errors import ApplicantsRefused, ServiceRefused
from serving.runner import ServiceThread, serve, uvicorn_config
from serving.settings import ServiceSettings, is_loopback, read_token

__all__ = [
    "ApplicantsRefused",
    "DriftBaseline",
    "DriftMonitor",
    "DriftStatus",
    "ServiceRefused",
    "ServiceSettings",
    "ServiceThread",
    "create_app",
    "drift_baseline",
    "file_comparison",
    "is_loopback",
    "read_token",
    "sample_counts",
    "serve",
    "uvicorn_config",
]
