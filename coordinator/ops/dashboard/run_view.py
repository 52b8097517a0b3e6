"""One run as the operator's dashboard shows it, read from the run's own files.

The coordinator's signed audit log (``OUT/audit/coordinator.jsonl``; events in
:mod:`coordinator.app.audit_trail`) is the live source: ``round`` entries carry each
completed round's AUC, who trained, refused and dropped out and each budgeted bank's
epsilon; ``refusal`` and ``exchange`` entries the refusals and the protocol's
stages; ``run-end`` how the run ended. What the log does not carry is joined from
the run's other files, only where they agree with the log: a round's KS from the
checkpoint (``checkpoint/state.json``) or the finished run's ``metrics.json`` when
their AUC of that round is the log's, the banks' budgets from the ledger summaries
those files keep. A folder that held an earlier run (a simulation run again into
the same folder) therefore never mixes the two: the log's entries since its last
``run-start`` are the current run.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from coordinator.app.checkpoint import CHECKPOINT_DIR
from coordinator.app.run_files import METRICS_FILE, REPORT_FILE
from deploy.web import read_audit

__all__ = [
    "AUDIT_LOG",
    "AUDIT_PUBLIC_KEY",
    "CHECKPOINT_STATE",
    "PROTOCOL_STAGES",
    "budgets_of",
    "current_segment",
    "read_json",
    "run_document",
]

AUDIT_LOG = Path("audit") / "coordinator.jsonl"
"""The coordinator's log in a run folder (as
:func:`coordinator.app.audit_trail.coordinator_log_path` names it)."""
AUDIT_PUBLIC_KEY = Path("audit") / "coordinator.pub"
"""Its public key, published beside it by the coordinator."""
CHECKPOINT_STATE = Path(CHECKPOINT_DIR) / "state.json"
"""The checkpoint's state (as :mod:`coordinator.app.checkpoint` writes it)."""
PROTOCOL_STAGES = ("advertise", "train", "consistency", "unmask", "evaluate")
"""A round's exchanges in order (:class:`coordinator.app.exchange.Stage`); the
secure-aggregation stages (advertise, consistency, unmask) only under secure aggregation."""
_CLOSE = 1e-12


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object file, or None when missing, unreadable or being replaced."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) else None


def current_segment(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The entries since the log's last ``run-start`` (a resumed run continues its segment)."""
    starts = [index for index, entry in enumerate(events) if entry["event"] == "run-start"]
    return events[starts[-1] :] if starts else []


def run_document(
    run_dir: Path, *, public_key: Path | None, report_url: str | None
) -> dict[str, Any]:
    """The ``run`` part of the operator's dashboard state for the run in ``run_dir``.

    Parameters
    ----------
    run_dir : pathlib.Path
        The run's output folder.
    public_key : pathlib.Path, optional
        The coordinator's published key to verify the log with (default: the run's
        ``audit/coordinator.pub``).
    report_url : str, optional
        Where the page links the run's ``report.html`` once it exists.
    """
    audit = read_audit(run_dir / AUDIT_LOG, public_key or run_dir / AUDIT_PUBLIC_KEY)
    segment = current_segment(audit.events)
    checkpoint = read_json(run_dir / CHECKPOINT_STATE) or {}
    metrics = read_json(run_dir / METRICS_FILE) or {}
    rounds = _rounds(segment, [checkpoint.get("rounds"), metrics.get("rounds")])
    end = _end(segment)
    report = run_dir / REPORT_FILE
    return {
        "name": run_dir.name,
        "folder": str(run_dir),
        **_start(segment),
        "status": _status(segment, end),
        "ended": end,
        "completed_rounds": max((r["round"] for r in rounds), default=0),
        "rounds": rounds,
        "refusals": _refusals(segment),
        "exchange": _exchange(segment),
        "final": _final(metrics, end),
        "report": report_url if end is not None and report.is_file() else None,
        "audit": audit.summary(),
    }


def _start(segment: list[dict[str, Any]]) -> dict[str, Any]:
    """The run's plan from its ``run-start`` and latest ``setup`` entries."""
    start = segment[0]["data"] if segment else {}
    setups = [entry["data"] for entry in segment if entry["event"] == "setup"]
    return {
        "run": start.get("run"),
        "started": segment[0]["time"] if segment else None,
        "planned_rounds": start.get("planned_rounds"),
        "min_banks": start.get("min_banks"),
        "secure_aggregation": start.get("secure_aggregation"),
        "resumed": sum(entry["event"] == "run-resume" for entry in segment),
        "banks": list(setups[-1].get("banks", [])) if setups else [],
    }


def _end(segment: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The last ``run-end`` if nothing resumed the run after it."""
    for entry in reversed(segment):
        if entry["event"] == "run-resume":
            return None
        if entry["event"] == "run-end":
            return {"time": entry["time"], **entry["data"]}
    return None


def _status(segment: list[dict[str, Any]], end: Mapping[str, Any] | None) -> str:
    if not segment:
        return "not started"
    return str(end.get("status", "ended")) if end is not None else "running"


def _rounds(segment: list[dict[str, Any]], sources: Iterable[Any]) -> list[dict[str, Any]]:
    """Each ``round`` entry (the last one per round), with its KS where a file agrees."""
    logged: dict[int, dict[str, Any]] = {}
    for entry in segment:
        if entry["event"] == "round":
            data = entry["data"]
            logged[int(data["server_round"])] = {"time": entry["time"], **data}
    scored = _scored_rounds(sources)
    rows = []
    for number, data in sorted(logged.items()):
        auc = data.get("auc")
        kept = scored.get(number)
        agrees = kept is not None and _same(kept.get("auc"), auc)
        epsilon = data.get("epsilon") or {}
        rows.append(
            {
                "round": number,
                "time": data["time"],
                "auc": auc,
                "ks": kept.get("ks") if agrees and kept is not None else None,
                "banks": list(data.get("banks", [])),
                "refused": list(data.get("refused", [])),
                "dropped": list(data.get("dropped", [])),
                "aborted": data.get("aborted"),
                "epsilon": dict(epsilon),
                "max_epsilon": max(epsilon.values(), default=None),
            }
        )
    return rows


def _scored_rounds(sources: Iterable[Any]) -> dict[int, dict[str, Any]]:
    """Round -> {auc, ks} from the checkpoint's rounds or ``metrics.json``'s."""
    scored: dict[int, dict[str, Any]] = {}
    for rounds in sources:
        for row in rounds if isinstance(rounds, list) else []:
            number = row.get("server_round", row.get("round"))
            values = row.get("metrics") if "metrics" in row else row
            if isinstance(number, int) and isinstance(values, dict) and number not in scored:
                scored[number] = {"auc": values.get("auc"), "ks": values.get("ks")}
    return scored


def _same(left: Any, right: Any) -> bool:
    if isinstance(left, int | float) and isinstance(right, int | float):
        return abs(float(left) - float(right)) <= _CLOSE
    return False


def _refusals(segment: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "time": entry["time"],
            "bank": entry["data"].get("bank"),
            "round": entry["data"].get("server_round"),
            "reason": entry["data"].get("reason"),
        }
        for entry in segment
        if entry["event"] == "refusal"
    ]


def _exchange(segment: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The last exchange: its stage and round, the stages its round went through, replies."""
    exchanges = [entry for entry in segment if entry["event"] == "exchange"]
    if not exchanges:
        return None
    last = exchanges[-1]
    data = last["data"]
    number = data.get("server_round")
    stages = [e["data"].get("stage") for e in exchanges if e["data"].get("server_round") == number]
    return {
        "time": last["time"],
        "stage": data.get("stage"),
        "round": number,
        "stages": stages,
        "replied": len(data.get("heads", {})),
        "missing": list(data.get("missing", [])),
        "malformed": sorted(data.get("malformed", {})),
        "errors": list(data.get("errors", [])),
    }


def _final(metrics: Mapping[str, Any], end: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The finished run's final metrics, when ``metrics.json`` is this run's (same AUC)."""
    final = metrics.get("final")
    if end is None or not isinstance(final, dict) or not final:
        return None
    return final if _same(final.get("auc"), end.get("final_auc")) else None


def budgets_of(*documents: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Bank -> {epsilon, max_epsilon} from the ledger summaries the documents keep
    (``privacy`` of the checkpoint or ``metrics.json``; the first one wins)."""
    budgets: dict[str, dict[str, Any]] = {}
    for document in documents:
        privacy = (document or {}).get("privacy")
        for bank, summary in (privacy if isinstance(privacy, dict) else {}).items():
            if isinstance(summary, dict) and bank not in budgets:
                budgets[bank] = {
                    "epsilon": summary.get("epsilon"),
                    "max_epsilon": summary.get("max_epsilon"),
                }
    return budgets
