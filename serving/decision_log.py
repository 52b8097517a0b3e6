"""The request and decision log: one JSON line per scoring request.

Every ``POST /v1/score`` leaves one line::

    {"time": "2026-11-30T13:02:11.512Z", "request_id": "5f0c...", "model": "<package digest>",
     "status": 200, "applicants": 2, "decisions": ["approve", "decline"],
     "scores": [612, 548], "latency_ms": 1.84}

A refused request logs its status and, for a 422, the fields and problem types
(``{"field": "applicants[1].AGE", "type": "less_than_equal"}``), never the values
sent. Raw applicant fields enter the log only when the bank turns it on
(``--log-features``: a ``features`` list, one object per applicant). The API token,
request headers and client addresses are never logged.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

__all__ = ["DecisionLog"]


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class DecisionLog:
    """Appends JSON lines to a file (or standard output), one per request; thread-safe.

    Parameters
    ----------
    path : pathlib.Path, optional
        The log file, appended to (created with its folder); standard output when None.
    model : str
        The package digest written on every line.
    features : bool, default False
        Whether :meth:`scored` may write the applicants' raw fields.
    """

    def __init__(self, path: Path | None, *, model: str, features: bool = False) -> None:
        self.model = model
        self.features = features
        self._lock = threading.Lock()
        self._own = path is not None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._stream: TextIO = (
            sys.stdout if path is None else path.open("a", encoding="utf-8", buffering=1)
        )

    def scored(
        self,
        *,
        request_id: str,
        decisions: Sequence[str],
        scores: Sequence[int | None],
        latency: float,
        applicants: Sequence[Mapping[str, Any]],
    ) -> None:
        """Log a scored request (``applicants``' fields only with ``features`` on)."""
        record: dict[str, Any] = {
            "time": _now(),
            "request_id": request_id,
            "model": self.model,
            "status": 200,
            "applicants": len(decisions),
            "decisions": list(decisions),
            "scores": list(scores),
            "latency_ms": round(latency * 1_000.0, 3),
        }
        if self.features:
            record["features"] = [dict(row) for row in applicants]
        self._write(record)

    def refused(
        self,
        *,
        request_id: str,
        status: int,
        latency: float,
        problems: Sequence[tuple[str, str]] = (),
    ) -> None:
        """Log a refused request: its status and the (field, problem type) pairs."""
        record: dict[str, Any] = {
            "time": _now(),
            "request_id": request_id,
            "model": self.model,
            "status": status,
            "latency_ms": round(latency * 1_000.0, 3),
        }
        if problems:
            record["problems"] = [{"field": field, "type": kind} for field, kind in problems]
        self._write(record)

    def _write(self, record: Mapping[str, Any]) -> None:
        line = json.dumps(record, separators=(",", ":")) + "\n"
        with self._lock:
            self._stream.write(line)
            if not self._own:
                self._stream.flush()

    def close(self) -> None:
        """Close the log file (standard output stays open)."""
        if self._own:
            with self._lock:
                self._stream.close()
