"""Messages a coordinator sends to a bank, and a bank that has joined a run, for handler tests."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flwr.app import ArrayRecord, Context, Message, MessageType, Metadata, RecordDict
from flwr.clientapp import ClientApp
from pydantic import SecretStr

from credit import message_keys as keys
from credit.encoding import StatsSource, fit_encoder
from credit.messages import QueryInstructions, RoundInstructions, RunInstructions, Task
from credit.models import ModelKind, ModelSpec, build_model
from credit.run_config import RunConfig
from credit.schema import DatasetSchema
from participant.guard.bank_guard import BankGuard
from participant.guard.in_process import InProcessLink
from participant.guard.sessions import ContextSessions
from participant.guard.settings import GuardSettings, HoldOut
from participant.relay.client_app import make_relay_app
from privacy.budget import PrivacyBudget

RUN_ID = 41
RUN_NAME = "q3-scorecard"
ACME_SALT = "ac" * 32
"""The test bank's hold-out salt (a real bank's is random and secret)."""


def message(kind: str, content: RecordDict) -> Message:
    """A message of ``kind`` from the coordinator (node 1) to the bank (node 5)."""
    metadata = Metadata(
        run_id=RUN_ID,
        message_id="m",
        src_node_id=1,
        dst_node_id=5,
        reply_to_message_id="",
        group_id="g",
        created_at=time.time(),
        ttl=3600.0,
        message_type=kind,
    )
    return Message(content, metadata=metadata)


def context(node_config: dict[str, Any] | None = None) -> Context:
    """The bank's context: its node config, state kept between messages, the run config."""
    run_config = RunConfig(rounds=1, run_name=RUN_NAME).to_flower()
    return Context(
        run_id=RUN_ID,
        node_id=5,
        node_config=node_config or {},
        state=RecordDict(),
        run_config=run_config,
    )


def run_instructions(schema: DatasetSchema, **changes: Any) -> RunInstructions:
    """The run's settings as the coordinator sends them (one planned round)."""
    settings: dict[str, Any] = {
        "run_name": RUN_NAME,
        "schema_hash": schema.schema_hash(),
        "test_fraction": 0.2,
        "seed": 0,
        "planned_rounds": 1,
        "planned_evaluations": 1,
        "local_epochs": 1,
        "batch_size": 64,
        "max_grad_norm": 1.0,
    }
    return RunInstructions(**{**settings, **changes})


def feature_stats_query(schema: DatasetSchema) -> RecordDict:
    """A new run's set-up query."""
    content = RecordDict()
    run_instructions(schema).query(Task.FEATURE_STATS, grid_bins=32).put(content)
    return content


def join_query(schema: DatasetSchema) -> RecordDict:
    """A new run's join query without a data release (its aggregates follow in secure
    round 0): how a run with secure aggregation joins a bank that requires it."""
    content = RecordDict()
    run_instructions(schema).query(Task.JOIN).put(content)
    return content


def round_content(schema: DatasetSchema, server_round: int) -> tuple[RecordDict, ArrayRecord]:
    """A train or evaluate message's content for ``server_round``, and the weights it sends."""
    encoder = fit_encoder(schema, source=StatsSource.PUBLIC)
    spec = ModelSpec(kind=ModelKind.LOGREG, n_inputs=encoder.n_inputs)
    arrays = ArrayRecord(build_model(spec, seed=server_round).state_dict())
    instructions = RoundInstructions(
        **run_instructions(schema).model_dump(),
        server_round=server_round,
        learning_rate=0.05,
        score_bins=100,
        encoder=encoder,
        model_spec=spec,
    )
    content = RecordDict({keys.ARRAYS: arrays})
    instructions.put(content)
    return content, arrays


@dataclass(frozen=True)
class JoinedBank:
    """A bank's real relay ClientApp with its guard in-process, and its context."""

    app: ClientApp
    context: Context
    guard: BankGuard

    def send(self, kind: str, content: RecordDict) -> Message:
        """Send the bank a message of ``kind`` (:func:`message`); return its reply."""
        return self.app(message(kind, content), self.context)


def guarded_app(guard: BankGuard) -> ClientApp:
    """The bank's relay ClientApp, reaching ``guard`` in-process."""
    return make_relay_app(lambda ctx: InProcessLink(guard, ContextSessions(ctx)))


def hold_out(salt: str = ACME_SALT, fraction: float = 0.2) -> HoldOut:
    """A bank's hold-out with the hex ``salt`` (default :data:`ACME_SALT`)."""
    return HoldOut(fraction=fraction, salt=SecretStr(salt))


def acme_settings(
    data_path: Path,
    *,
    max_epsilon: float | None,
    ledger_path: Path | None = None,
    audit_log: Path | None = None,
    holdout: HoldOut | None = None,
) -> GuardSettings:
    """The guard settings of a bank named ``acme`` (ledger beside its data by default).

    Its hold-out is ``holdout``, by default fraction 0.2 with :data:`ACME_SALT`.
    """
    budget = None if max_epsilon is None else PrivacyBudget(max_epsilon=max_epsilon)
    ledger = ledger_path or data_path.parent / "acme.privacy-ledger.jsonl"
    return GuardSettings(
        bank_name="acme",
        data_path=data_path,
        budget=budget,
        ledger_path=ledger if budget is not None else None,
        audit_log=audit_log,
        holdout=holdout or hold_out(),
    )


def joined_bank(
    schema: DatasetSchema,
    data_path: Path,
    *,
    max_epsilon: float,
    ledger_path: Path | None = None,
    audit_log: Path | None = None,
) -> JoinedBank:
    """A budgeted bank named ``acme`` that has joined a new run (one planned round).

    The bank's relay ClientApp and guard have answered the run's feature-stats query
    (:func:`feature_stats_query`), so the next message it is sent can be round 1's.

    Parameters
    ----------
    schema : credit.schema.DatasetSchema
        The schema of the bank's data and of the run.
    data_path : pathlib.Path
        The bank's CSV file.
    max_epsilon : float
        The bank's privacy budget, > 0.
    ledger_path : pathlib.Path or None, default None
        Where the bank keeps its privacy ledger; ``None``: beside the data.
    audit_log : pathlib.Path or None, default None
        The bank's signed audit log; ``None``: no audit log.
    """
    settings = acme_settings(
        data_path, max_epsilon=max_epsilon, ledger_path=ledger_path, audit_log=audit_log
    )
    guard = BankGuard(settings)
    bank = JoinedBank(app=guarded_app(guard), context=context(), guard=guard)
    bank.send(MessageType.QUERY, feature_stats_query(schema))
    return bank


__all__ = [
    "ACME_SALT",
    "RUN_ID",
    "RUN_NAME",
    "JoinedBank",
    "QueryInstructions",
    "acme_settings",
    "context",
    "feature_stats_query",
    "guarded_app",
    "hold_out",
    "joined_bank",
    "message",
    "round_content",
    "run_instructions",
]
