"""The coordinator's audit trail: what each run did, signed, in ``OUT/audit/coordinator.jsonl``.

Events (besides the log's own ``log-open``)::

    run-start   run, flower_run_id, config_sha256, schema_sha256, planned_rounds,
                announced_rounds, min_banks, secure_aggregation, fedcredit
    run-resume  run, flower_run_id, after_round, model_sha256 (of the checkpoint),
                config_sha256, schema_sha256, fedcredit
    setup       banks (names), model_sha256 of the model round 1 (or the next
                round after a resume) starts from, secure_aggregation
    refusal     bank, server_round, reason
    round       server_round, banks, refused, dropped, aborted, epsilon (bank ->
                epsilon spent per its ledger after the round, banks with a budget
                only), model_sha256 (global model after the round),
                secure_aggregation, auc; written when the round's metrics are in
                (with the next round's train replies, or the final evaluation)
    run-end     status (completed, stopped, failed), reason, rounds_completed,
                final_auc, final_model_sha256

A resumed run appends to the same log, so the file tells the whole story of a run
across crashes. The signing key is ``audit-key`` from the run config, or
``OUT/audit/coordinator.key`` (created on first use); its public key is written
beside the log as ``OUT/audit/coordinator.pub`` either way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from flwr.app import ArrayRecord

from coordinator.app.run_state import BankInfo, RoundResult, RunState
from credit import __version__
from credit.audit import AuditLog, arrays_sha256, load_or_create_signing_key, public_key_pem
from credit.run_config import RunConfig

__all__ = [
    "AUDIT_DIR",
    "COORDINATOR_KEY",
    "COORDINATOR_LOG",
    "COORDINATOR_PUBLIC_KEY",
    "CoordinatorAudit",
    "coordinator_log_path",
    "record_sha256",
]

AUDIT_DIR = "audit"
COORDINATOR_LOG = "coordinator.jsonl"
COORDINATOR_KEY = "coordinator.key"
COORDINATOR_PUBLIC_KEY = "coordinator.pub"
WRITER = "coordinator"


def coordinator_log_path(out_dir: Path) -> Path:
    """The coordinator's audit log of the run writing to ``out_dir``."""
    return Path(out_dir) / AUDIT_DIR / COORDINATOR_LOG


def record_sha256(arrays: ArrayRecord) -> str:
    """SHA-256 of a model's arrays as sent on the wire (see :func:`credit.audit.arrays_sha256`)."""
    return arrays_sha256({name: arrays[name].numpy() for name in arrays})


class CoordinatorAudit:
    """Appends the coordinator's events of one run to its signed log.

    Parameters
    ----------
    config : RunConfig
        The run; ``out_dir`` says where the log is, ``audit_key`` which key signs.
    flower_run_id : int
        Flower's id of this run (a resumed run gets a new one).

    Raises
    ------
    ConfigError
        The existing log is broken or signed with another key, or the key is unusable.
    """

    def __init__(self, config: RunConfig, *, flower_run_id: int) -> None:
        out_dir = Path(config.out_dir)
        audit_dir = out_dir / AUDIT_DIR
        key = load_or_create_signing_key(
            Path(config.audit_key) if config.audit_key else audit_dir / COORDINATOR_KEY
        )
        self._log = AuditLog(coordinator_log_path(out_dir), key, WRITER)
        # The log is bound to this key (AuditLog refuses another): publish it beside the log.
        public = public_key_pem(key.public_key())
        beside = audit_dir / COORDINATOR_PUBLIC_KEY
        if not beside.is_file() or beside.read_bytes() != public:
            beside.write_bytes(public)
        self._config = config
        self._flower_run_id = flower_run_id
        self._run = config.run_name or str(flower_run_id)
        self._started = False
        self._last_round = 0

    @property
    def path(self) -> Path:
        """The log file."""
        return self._log.path

    def close(self) -> None:
        """Close the log file."""
        self._log.close()

    def run_start(self, schema_sha256: str) -> None:
        """A new run begins (before any bank is asked anything)."""
        self._append(
            "run-start",
            {
                "run": self._run,
                "flower_run_id": self._flower_run_id,
                "config_sha256": self._config.digest(),
                "schema_sha256": schema_sha256,
                "planned_rounds": self._config.rounds,
                "announced_rounds": self._config.announced_rounds,
                "min_banks": self._config.min_banks,
                "secure_aggregation": self._config.secure_aggregation,
                "fedcredit": __version__,
            },
        )
        self._started = True

    def run_resume(self, after_round: int, arrays: ArrayRecord, schema_sha256: str) -> None:
        """A run continues from its checkpoint after ``after_round``."""
        self._append(
            "run-resume",
            {
                "run": self._run,
                "flower_run_id": self._flower_run_id,
                "after_round": after_round,
                "model_sha256": record_sha256(arrays),
                "config_sha256": self._config.digest(),
                "schema_sha256": schema_sha256,
                "planned_rounds": self._config.rounds,
                "fedcredit": __version__,
            },
        )
        self._started = True
        self._last_round = after_round

    def setup(self, banks: Iterable[BankInfo], arrays: ArrayRecord) -> None:
        """The banks taking part and the model the next round starts from."""
        self._append(
            "setup",
            {
                "banks": sorted(bank.name for bank in banks),
                "model_sha256": record_sha256(arrays),
                "secure_aggregation": self._config.secure_aggregation,
            },
        )

    def refusal(self, bank: str, server_round: int, reason: str) -> None:
        """A bank refused a request, or the coordinator refused a bank."""
        self._append("refusal", {"bank": bank, "server_round": server_round, "reason": reason})

    def round(
        self,
        result: RoundResult,
        arrays: ArrayRecord,
        epsilon: Mapping[str, float],
    ) -> None:
        """A completed (or aborted) round, the global model after it and the epsilon spent.

        Written once the round's metrics are in (one exchange after its training);
        ``epsilon`` is each budgeted bank's spend as of the round's training.
        """
        self._append(
            "round",
            {
                "server_round": result.server_round,
                "banks": list(result.banks),
                "refused": list(result.refused),
                "dropped": list(result.dropped),
                "aborted": result.aborted,
                "epsilon": dict(epsilon),
                "model_sha256": record_sha256(arrays),
                "secure_aggregation": self._config.secure_aggregation,
                "auc": result.metrics.auc if result.metrics is not None else None,
            },
        )
        self._last_round = result.server_round

    def run_end(self, state: RunState) -> None:
        """The run finished: every round, or stopped early (budgets spent)."""
        last = state.rounds[-1] if state.rounds else None
        scored = state.final_metrics()
        self._append(
            "run-end",
            {
                "status": "completed" if state.stopped is None else "stopped",
                "reason": state.stopped,
                "rounds_completed": last.server_round if last else 0,
                "final_auc": scored.auc if scored is not None else None,
                "final_model_sha256": record_sha256(state.arrays),
            },
        )

    def run_failed(self, error: BaseException) -> None:
        """The run failed (after it was recorded as started); the log says why."""
        if not self._started:
            return
        self._append(
            "run-end",
            {
                "status": "failed",
                "reason": f"{type(error).__name__}: {error}",
                "rounds_completed": self._last_round,
                "final_auc": None,
                "final_model_sha256": None,
            },
        )

    def _append(self, event: str, data: Mapping[str, Any]) -> None:
        self._log.append(event, data)
