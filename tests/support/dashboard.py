"""Fabricated run folders for the dashboards' tests: a signed coordinator log that grows.

:class:`FabricatedRun` writes what a run writes, in the formats the coordinator
writes them, without Flower: the coordinator's audit log (signed with a fresh key,
its public key beside it), the checkpoint's ``state.json`` and, at the end,
``metrics.json`` and ``report.html``. Tests append rounds between the dashboard's
reads to watch them arrive.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from credit.audit import AuditLog, public_key_pem

__all__ = ["BANKS", "FabricatedRun", "auc_of", "ks_of"]

BANKS = ("bank-a", "bank-b", "bank-c")
MAX_EPSILON = 2.0


def auc_of(server_round: int) -> float:
    """The AUC the fabricated run reaches in ``server_round``."""
    return round(0.70 + 0.02 * server_round, 6)


def ks_of(server_round: int) -> float:
    """The KS the fabricated run reaches in ``server_round``."""
    return round(0.30 + 0.015 * server_round, 6)


@dataclass
class FabricatedRun:
    """A run's output folder written step by step.

    Parameters
    ----------
    folder : pathlib.Path
        The run's output folder (created).
    planned_rounds : int
        Rounds the run plans.
    """

    folder: Path
    planned_rounds: int = 5
    key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    rounds: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        audit = self.folder / "audit"
        audit.mkdir(parents=True, exist_ok=True)
        self.log = AuditLog(audit / "coordinator.jsonl", self.key, "coordinator")
        (audit / "coordinator.pub").write_bytes(public_key_pem(self.key.public_key()))

    @property
    def log_path(self) -> Path:
        return self.log.path

    def start(self, *, run: str = "q3") -> None:
        """run-start and setup, as a new run logs them."""
        self.log.append(
            "run-start",
            {"run": run, "flower_run_id": 1, "config_sha256": "c" * 64, "schema_sha256": "s" * 64,
             "planned_rounds": self.planned_rounds, "announced_rounds": self.planned_rounds,
             "min_banks": 2, "secure_aggregation": True, "fedcredit": "0.1.0"},
        )  # fmt: skip
        self.log.append("setup", {"banks": list(BANKS), "model_sha256": "m" * 64,
                                  "secure_aggregation": True})  # fmt: skip

    def exchange(self, stage: str, server_round: int, *, missing: tuple[str, ...] = ()) -> None:
        """An exchange entry: every bank but ``missing`` replied with its head."""
        head = {"seq": 3, "head": "h" * 64, "key": "k" * 64}
        heads = {str(node): head for node in range(len(BANKS) - len(missing))}
        self.log.append(
            "exchange",
            {"stage": stage, "server_round": server_round, "sent": {"seq": 2, "head": "x" * 64},
             "heads": heads, "missing": list(missing), "malformed": {}, "errors": []},
        )  # fmt: skip

    def complete_round(
        self, server_round: int, *, dropped: tuple[str, ...] = (), refused: tuple[str, ...] = ()
    ) -> None:
        """A round's exchanges, its refusals, its round entry and the checkpoint after it."""
        for stage in ("advertise", "train", "consistency", "unmask"):
            self.exchange(stage, server_round)
        for bank in refused:
            self.log.append("refusal", {"bank": bank, "server_round": server_round,
                                        "reason": "PrivacyBudgetExceeded: 2.1 > 2.0"})  # fmt: skip
        trained = [b for b in BANKS if b not in dropped and b not in refused]
        epsilon = {bank: round(0.3 * server_round, 6) for bank in BANKS}
        self.log.append(
            "round",
            {"server_round": server_round, "banks": trained, "refused": list(refused),
             "dropped": list(dropped), "aborted": None, "epsilon": epsilon,
             "model_sha256": "m" * 64, "secure_aggregation": True, "auc": auc_of(server_round)},
        )  # fmt: skip
        self.rounds.append(
            {"server_round": server_round, "metrics": {"auc": auc_of(server_round),
             "ks": ks_of(server_round)}, "banks": trained}
        )  # fmt: skip
        self._checkpoint(server_round, epsilon)

    def _checkpoint(self, completed: int, epsilon: dict[str, float]) -> None:
        privacy = {
            bank: {"bank": bank, "epsilon": spent, "max_epsilon": MAX_EPSILON, "delta": 1e-5}
            for bank, spent in epsilon.items()
        }
        document = {"version": 3, "completed_round": completed, "rounds": self.rounds,
                    "privacy": privacy, "refusals": []}  # fmt: skip
        folder = self.folder / "checkpoint"
        folder.mkdir(exist_ok=True)
        (folder / "state.json").write_text(json.dumps(document))

    def end(self, *, report: bool = True) -> None:
        """run-end, metrics.json and (by default) a report.html."""
        last = self.rounds[-1]["server_round"] if self.rounds else 0
        final_auc = auc_of(last)
        self.log.append(
            "run-end",
            {"status": "completed", "reason": None, "rounds_completed": last,
             "final_auc": final_auc, "final_model_sha256": "m" * 64, "final_missing": None},
        )  # fmt: skip
        metrics = {
            "rounds": [{"round": r["server_round"], **r["metrics"]} for r in self.rounds],
            "final": {"auc": final_auc, "ks": ks_of(last)},
            "status": "completed",
        }
        (self.folder / "metrics.json").write_text(json.dumps(metrics))
        if report:
            (self.folder / "report.html").write_text("<!DOCTYPE html><title>report</title><p>ok")
