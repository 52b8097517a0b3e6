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
                final_auc, final_model_sha256; when the run did not fail also
                final_missing (why the kept model's final evaluation is missing;
                null: it was made)
    exchange    stage, server_round, sent (seq and head of this log that the
                exchange's messages carried), heads (node -> seq, head and key
                fingerprint of the bank's audit log, as its reply carried them),
                missing (nodes whose reply carried no head), malformed (node ->
                why its head breaks the contract), errors (nodes that answered
                with an error); one per exchange, when its replies are in

A resumed run appends to the same log, so the file tells the whole story of a run
across crashes. The signing key is ``audit-key`` from the run config; unset, it is
the per-user key :func:`default_key_path` (created on first use), so that it never
sits in a run's output folder: one inside ``out-dir`` is refused. Its public key is
written beside the log as ``OUT/audit/coordinator.pub`` either way, for
``fedcredit audit verify``. The key's record of the logs it signed (``.history``
beside the key) refuses a run log that was emptied, deleted or cut.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from flwr.app import ArrayRecord

from coordinator.app.exchange import BankHeads
from coordinator.app.run_state import BankInfo, RoundResult, RunState
from credit import __version__
from credit.audit import AuditLog, arrays_sha256, public_key_pem
from credit.errors import ConfigError
from credit.messages import AuditHead
from credit.run_config import RunConfig

__all__ = [
    "AUDIT_DIR",
    "COORDINATOR_LOG",
    "COORDINATOR_PUBLIC_KEY",
    "DATA_HOME_ENV",
    "DEFAULT_KEY_NAME",
    "CoordinatorAudit",
    "coordinator_key_path",
    "coordinator_log_path",
    "default_key_path",
    "record_sha256",
]

AUDIT_DIR = "audit"
COORDINATOR_LOG = "coordinator.jsonl"
COORDINATOR_PUBLIC_KEY = "coordinator.pub"
WRITER = "coordinator"
DATA_HOME_ENV = "FEDCREDIT_DATA_HOME"
"""Environment variable naming fedcredit's per-user data folder (tests set it)."""
DEFAULT_KEY_NAME = "coordinator-audit.key"


def coordinator_log_path(out_dir: Path) -> Path:
    """The coordinator's audit log of the run writing to ``out_dir``."""
    return Path(out_dir) / AUDIT_DIR / COORDINATOR_LOG


def default_key_path(environ: Mapping[str, str] | None = None) -> Path:
    """The per-user coordinator audit key, used when the run config names none.

    ``$FEDCREDIT_DATA_HOME/coordinator-audit.key`` if that variable is set, else
    ``$XDG_DATA_HOME/fedcredit/coordinator-audit.key`` (XDG Base Directory
    specification; an unset or relative ``XDG_DATA_HOME`` means ``~/.local/share``).
    A deployment names the consortium's key instead (``audit-key``).
    """
    environ = os.environ if environ is None else environ
    if home := environ.get(DATA_HOME_ENV):
        return Path(home).expanduser() / DEFAULT_KEY_NAME
    data_home = Path(environ.get("XDG_DATA_HOME") or "~/.local/share").expanduser()
    if not data_home.is_absolute():
        data_home = Path("~/.local/share").expanduser()
    return data_home / "fedcredit" / DEFAULT_KEY_NAME


def coordinator_key_path(config: RunConfig) -> Path:
    """The key that signs the run's audit log: ``audit-key``, or :func:`default_key_path`.

    Raises
    ------
    ConfigError
        The key lies inside the run's output folder, where whoever can change the
        run's outputs could replace it and its record together.
    """
    key = Path(config.audit_key).expanduser() if config.audit_key else default_key_path()
    out_dir = Path(config.out_dir).expanduser().resolve()
    if key.resolve().is_relative_to(out_dir):
        raise ConfigError(
            f"the audit signing key {key} is inside the run's output folder {out_dir}; "
            "keep it outside (leave audit-key unset for the per-user key, or set "
            f"{DATA_HOME_ENV})",
            source="audit-key",
        )
    return key


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
        The existing log is broken or signed with another key, the key is unusable
        or inside ``out_dir``, or the key's record shows the log was emptied,
        deleted, replaced or cut.
    """

    def __init__(self, config: RunConfig, *, flower_run_id: int) -> None:
        out_dir = Path(config.out_dir)
        audit_dir = out_dir / AUDIT_DIR
        self._log = AuditLog.open(
            coordinator_log_path(out_dir), coordinator_key_path(config), WRITER
        )
        # The log is bound to this key (AuditLog refuses another): publish it beside the log.
        public = public_key_pem(self._log.public_key)
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
        """The run finished: every round, or stopped early (budgets spent).

        A run whose final evaluation failed finishes too (with its model):
        ``final_missing`` says why its final metrics are missing.
        """
        last = state.rounds[-1] if state.rounds else None
        scored = state.final_metrics()
        self._append(
            "run-end",
            {
                "status": "completed" if state.stopped is None else "stopped",
                "reason": state.stopped,
                "rounds_completed": last.server_round if last else 0,
                "final_auc": scored.auc if scored is not None else None,
                "final_model_sha256": record_sha256(state.kept_arrays()),
                "final_missing": state.final_missing,
            },
        )

    def boosting_end(
        self, *, trees: int, model_sha256: str, final_auc: float | None, final_missing: str | None
    ) -> None:
        """A boosting run finished its trees (``rounds_completed``: the trees grown;
        ``final_model_sha256``: SHA-256 of the exported ``xgboost.json``)."""
        self._append(
            "run-end",
            {
                "status": "completed",
                "reason": None,
                "rounds_completed": trees,
                "final_auc": final_auc,
                "final_model_sha256": model_sha256,
                "final_missing": final_missing,
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

    def current_head(self) -> AuditHead:
        """The head of the log now: what the next messages to banks carry."""
        now = self._log.current_head()
        return AuditHead(seq=now.seq, head=now.head, key=self._log.fingerprint)

    def exchange(self, stage: str, server_round: int, sent: AuditHead, heads: BankHeads) -> None:
        """One exchange: the head its messages carried and the heads the banks replied with.

        The banks' heads are recorded as they came, never trusted or acted upon.
        """
        self._append(
            "exchange",
            {
                "stage": stage,
                "server_round": server_round,
                "sent": {"seq": sent.seq, "head": sent.head},
                "heads": {
                    str(node): {"seq": head.seq, "head": head.head, "key": head.key}
                    for node, head in sorted(heads.heads.items())
                },
                "missing": sorted(heads.missing),
                "malformed": {str(node): why for node, why in sorted(heads.malformed.items())},
                "errors": sorted(heads.errors),
            },
        )

    def _append(self, event: str, data: Mapping[str, Any]) -> None:
        self._log.append(event, data)
