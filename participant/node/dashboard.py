"""A bank's own dashboard (``fedcredit participant dashboard``): read from its node folder.

What the page shows comes from the bank's files only, read afresh at every request
(recomputed only when a file changed): its budget from the node plan
(``HOME/node.json``, which ``participant start`` wrote), its privacy ledger
(:mod:`privacy.ledger`: every release, and epsilon recomputed from them, after each
release too), its signed audit log (what the coordinator asked and what the bank did;
events in :mod:`participant.guard.audit_trail`), verified with the bank's published
audit key (``audit.pub`` beside its signing key), and whether its guard and SuperNode
run (their pid files). Nothing is sent anywhere and nothing is written.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from credit.audit import public_key_path
from deploy.services import Service
from deploy.web import DashboardPage, file_signature, read_audit
from participant.node._dashboard_page import TEMPLATE
from participant.node.supernode import NodePlan, guard_service
from privacy.accounting import epsilon_by_rows, epsilon_spent
from privacy.budget import PrivacyBudget
from privacy.errors import LedgerError
from privacy.ledger import read_ledger

__all__ = ["NodeFiles", "ParticipantSource", "participant_page"]

_ACTIVITY = 15
"""How many of the audit log's latest entries the page lists."""


@dataclass(frozen=True)
class NodeFiles:
    """Where a bank's node keeps what its dashboard reads.

    Attributes
    ----------
    home : pathlib.Path
        The node folder (service pid files under ``services/``).
    bank : str
        The bank's name.
    budget : PrivacyBudget or None
        Its record-level budget (None: it trains without differential privacy).
    ledger : pathlib.Path or None
        Its privacy ledger (None without a budget).
    audit_log, audit_public_key : pathlib.Path or None
        Its signed audit log and the public key it is verified with.
    """

    home: Path
    bank: str
    budget: PrivacyBudget | None
    ledger: Path | None
    audit_log: Path | None
    audit_public_key: Path | None

    @classmethod
    def of_home(cls, home: Path) -> NodeFiles:
        """The files named by the node plan in ``home``.

        Raises
        ------
        ConfigError
            No node plan in ``home`` (the node never started), or an unreadable one.
        """
        plan = NodePlan.load(home)
        guard = plan.guard
        audit = guard.audit_settings()
        return cls(
            home=plan.home,
            bank=guard.bank_name,
            budget=guard.budget,
            ledger=guard.ledger_path if guard.budget is not None else None,
            audit_log=audit.log_path if audit is not None else None,
            audit_public_key=public_key_path(audit.key_path) if audit is not None else None,
        )


class ParticipantSource:
    """The state of a bank's dashboard, read from its :class:`NodeFiles`."""

    def __init__(self, files: NodeFiles) -> None:
        self.files = files
        self._ledger_key: tuple[Any, ...] | None = None
        self._ledger: dict[str, Any] = {}
        self._audit_key: tuple[Any, ...] | None = None
        self._audit: dict[str, Any] = {}

    def state(self) -> dict[str, Any]:
        """Budget, ledger, refusals, runs, audit log and services of the bank."""
        files = self.files
        return {
            "kind": "participant",
            "bank": files.bank,
            "source": str(files.home),
            "read_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "services": {
                "guard": guard_service(files.home).pid(),
                "supernode": Service("supernode", files.home / "services").pid(),
            },
            "budget": None if files.budget is None else files.budget.model_dump(),
            "ledger": self._ledger_state(),
            **self._audit_state(),
        }

    def file(self, name: str) -> Path | None:
        """The bank's dashboard links no file."""
        return None

    def _ledger_state(self) -> dict[str, Any]:
        ledger = self.files.ledger
        if ledger is None:
            return {"file": None, "problem": None, "events": [], "plans": [], "spent": None}
        key = file_signature(ledger)
        if key != self._ledger_key:
            self._ledger = ledger_document(ledger)
            self._ledger_key = key
        return self._ledger

    def _audit_state(self) -> dict[str, Any]:
        log = self.files.audit_log
        if log is None:
            return {"audit": None, "refusals": [], "runs": [], "activity": []}
        key = file_signature(log, *(p for p in [self.files.audit_public_key] if p is not None))
        if key != self._audit_key:
            self._audit = audit_document(log, self.files.audit_public_key)
            self._audit_key = key
        return self._audit


def ledger_document(path: Path) -> dict[str, Any]:
    """The ledger's releases (each with the bank's epsilon after it), plans and spend."""
    if not path.is_file():
        return {"file": str(path), "problem": None, "events": [], "plans": [], "spent": None}
    try:
        contents = read_ledger(path)
    except LedgerError as exc:
        return {"file": str(path), "problem": str(exc), "events": [], "plans": [], "spent": None}
    delta = contents.delta
    events = []
    for index, event in enumerate(contents.events):
        after = epsilon_spent(contents.events[: index + 1], delta)
        events.append({"index": index + 1, **asdict(event), "epsilon_after": after})
    by_rows = epsilon_by_rows(contents.events, delta)
    return {
        "file": str(path),
        "problem": None,
        "events": events,
        "plans": [asdict(plan) for plan in contents.plans],
        "spent": {"epsilon": max(by_rows.values()), "delta": delta, "by_rows": by_rows},
    }


def audit_document(log: Path, public_key: Path | None) -> dict[str, Any]:
    """The bank's audit log: its status, its refusals, each run's story, its latest entries."""
    audit = read_audit(log, public_key)
    runs: dict[str, dict[str, Any]] = defaultdict(_new_run)
    refusals = []
    for entry in audit.events:
        data, event = entry["data"], entry["event"]
        if "run" not in data:
            continue
        run = runs[str(data["run"])]
        run["last_round"] = data.get("server_round", run["last_round"])
        if event == "run-join":
            run["joined"] = entry["time"]
        elif event == "train":
            run["trained"] += 1
        elif event == "evaluate":
            run["evaluated"] += 1
        elif event == "run-end":
            run["ended"] = True
        elif event == "refusal":
            run["refused"] += 1
            refusals.append({"time": entry["time"], "run": data["run"], **_refusal(data)})
    activity = [
        {"time": e["time"], "event": e["event"], "run": e["data"].get("run"),
         "round": e["data"].get("server_round")}
        for e in audit.events[-_ACTIVITY:]
    ]  # fmt: skip
    return {
        "audit": audit.summary(),
        "refusals": refusals,
        "runs": [{"run": name, **story} for name, story in runs.items()],
        "activity": activity[::-1],
    }


def _new_run() -> dict[str, Any]:
    return {
        "joined": None,
        "trained": 0,
        "evaluated": 0,
        "refused": 0,
        "last_round": None,
        "ended": False,
    }


def _refusal(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "round": data.get("server_round"),
        "kind": data.get("kind"),
        "reason": data.get("reason"),
    }


def participant_page(bank: str) -> DashboardPage:
    """The bank's dashboard page."""
    return DashboardPage(title=f"{bank}: node dashboard", template=TEMPLATE)
