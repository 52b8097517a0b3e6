"""What a bank does for each kind of request: one handler per task, one reply each.

Each handler takes the typed :class:`BankRequest` (the message, the node's context,
its node config and data source) and returns the reply's content. A request the
bank's privacy budget does not allow is answered with a typed refusal
(:func:`refusal_reply`); anything else that goes wrong raises, and Flower turns it
into an error reply, which the coordinator counts as this bank's failure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from flwr.app import ArrayRecord, Context, Message, RecordDict

from credit import message_keys
from credit.feature_stats import compute_feature_stats
from credit.messages import (
    BankIntro,
    QueryInstructions,
    Refusal,
    RoundInstructions,
    RunInstructions,
    TrainMetrics,
    feature_stats_to_record,
    score_summary_to_content,
    secagg,
)
from credit.metrics import summarize_scores
from credit.records import flatten, record_of
from participant.app.audit_trail import (
    record_evaluate,
    record_join,
    record_refusal,
    record_train,
)
from participant.app.bank import BankSource, PreparedBank, encoded_split, prepare_bank
from participant.app.local_update import (
    LocalUpdate,
    build_global_model,
    local_update,
    model_sha256,
)
from participant.app.node_config import NodeConfig
from participant.app.secagg_client import (
    advertise,
    enrollment,
    mask_update,
    receive_keys,
    reveal,
)
from privacy.errors import PrivacyBudgetExceeded
from privacy.secagg.fixed_point import FixedPoint

if TYPE_CHECKING:
    from participant.app.privacy_guard import PrivacyGuard

__all__ = [
    "BankRequest",
    "advertise_keys",
    "enroll",
    "evaluate",
    "feature_stats",
    "refusal_reply",
    "train",
    "unmask",
]


@dataclass(frozen=True)
class BankRequest:
    """One message as the bank's handlers see it.

    Attributes
    ----------
    message : Message
        The coordinator's message (untrusted input).
    context : Context
        The node's context: its node config and the state Flower keeps between messages.
    node : NodeConfig
        The bank's own configuration, parsed.
    source : BankSource
        Where the bank's rows, schema, budget and ledger are.
    """

    message: Message
    context: Context
    node: NodeConfig
    source: BankSource

    @property
    def flower_run_id(self) -> int:
        """Flower's id of the run the message belongs to."""
        return self.message.metadata.run_id


def load_bank(source: BankSource, instructions: RunInstructions) -> PreparedBank:
    """Validate and split the bank's rows; refuse a run with another schema."""
    bank = prepare_bank(source, instructions.test_fraction, instructions.seed)
    if bank.schema.schema_hash() != instructions.schema_hash:
        raise ValueError(
            f"bank '{bank.name}' uses a different dataset schema "
            f"({bank.schema.schema_hash()[:12]}) from the run's ({instructions.schema_hash[:12]}); "
            "install the consortium's schema"
        )
    return bank


def privacy_guard(bank: PreparedBank, source: BankSource) -> PrivacyGuard | None:
    """A fresh guard over the bank's ledger file (re-read on every message)."""
    budget, ledger = source.budget, source.ledger_path
    if budget is None or ledger is None:  # BankSource refuses a budget without a ledger
        return None
    from participant.app.privacy_guard import PrivacyGuard

    return PrivacyGuard(bank=bank.name, budget=budget, ledger_path=ledger, n_train=len(bank.train))


def refusal_reply(
    request: BankRequest, refusal: PrivacyBudgetExceeded, guard: PrivacyGuard, run: str
) -> RecordDict:
    """A typed refusal: the coordinator learns who refused and why, nothing else."""
    record_refusal(
        request.node.audit_settings(),
        run=run,
        server_round=refusal.server_round,
        kind="privacy-budget",
        reason=str(refusal),
    )
    content = RecordDict()
    Refusal(
        bank=refusal.bank,
        reason=type(refusal).__name__,
        spent=refusal.spent,
        requested=refusal.requested,
        maximum=refusal.maximum,
        server_round=refusal.server_round,
    ).put(content)
    guard.summary().put(content)
    return content


def _introduction(bank: PreparedBank) -> RecordDict:
    """The bank's name and row counts (public: see the privacy model)."""
    content = RecordDict()
    BankIntro(name=bank.name, n_train=len(bank.train), n_test=len(bank.test)).put(content)
    return content


def _join(request: BankRequest, query: QueryInstructions) -> PreparedBank:
    """Load the bank's rows for a run it joins, and record the join in its audit log."""
    from credit.errors import ConfigError
    from credit.run_config import RunConfig

    bank = load_bank(request.source, query)
    try:
        digest: str | None = RunConfig.from_flower(request.context.run_config).digest()
    except ConfigError:
        digest = None
    record_join(
        request.node.audit_settings(),
        query,
        flower_run_id=request.flower_run_id,
        config_sha256=digest,
    )
    return bank


def feature_stats(request: BankRequest, query: QueryInstructions) -> RecordDict:
    """Aggregates of the training rows (noisy under a privacy budget), never rows."""
    from participant.app.privacy_guard import training_request

    bank = _join(request, query)
    stats = compute_feature_stats(bank.train, bank.schema, query.grid_bins)
    guard = privacy_guard(bank, request.source)
    content = _introduction(bank)
    run = query.run_key(request.flower_run_id)
    if guard is not None:
        try:
            asked = training_request(query, run=run, server_round=0)
            stats = guard.release_feature_stats(stats, bank.schema, asked)
        except PrivacyBudgetExceeded as refusal:
            return refusal_reply(request, refusal, guard, run)
        guard.summary().put(content)
    content[message_keys.FEATURE_STATS] = feature_stats_to_record(stats)
    if secagg.KeyRequest.present(request.message.content):
        enrollment(request.context, request.flower_run_id).put(content)
    return content


def enroll(request: BankRequest, query: QueryInstructions) -> RecordDict:
    """Rejoin a resumed run: name and row counts, a new encryption key; no data release."""
    content = _introduction(_join(request, query))
    if secagg.KeyRequest.present(request.message.content):
        enrollment(request.context, request.flower_run_id).put(content)
    return content


def advertise_keys(request: BankRequest, query: QueryInstructions) -> RecordDict:
    """Keys and sealed shares for the requested round (set-up of the first round)."""
    asked = secagg.AdvertiseRequest.take(request.message.content)
    advertisement = advertise(request.context, request.flower_run_id, asked)
    if advertisement is None:
        raise ValueError("this bank is not in the run's secure-aggregation roster")
    content = RecordDict()
    advertisement.put(content)
    return content


def unmask(request: BankRequest, query: QueryInstructions) -> RecordDict:
    """The shares the coordinator needs to unmask the round's sum, and no others."""
    asked = secagg.UnmaskRequest.take(request.message.content)
    content = RecordDict()
    reveal(request.context, request.flower_run_id, asked).put(content)
    return content


def train(request: BankRequest) -> RecordDict:
    """One round of local training; the update in the clear or masked."""
    content_in = request.message.content
    instructions = RoundInstructions.take(content_in)
    global_arrays = record_of(content_in, message_keys.ARRAYS, ArrayRecord)
    inputs = secagg.TrainInputs.take_optional(content_in)
    bank = load_bank(request.source, instructions)
    # Secure aggregation's inputs are opened before anything is charged or trained.
    code = None if inputs is None else receive_keys(request.context, request.flower_run_id, inputs)
    guard = privacy_guard(bank, request.source)
    run = instructions.run_key(request.flower_run_id)
    try:
        update = local_update(bank, instructions, global_arrays, guard=guard, run=run)
    except PrivacyBudgetExceeded as refusal:
        if guard is None:
            raise
        return refusal_reply(request, refusal, guard, run)
    if inputs is None or code is None:
        content = _plain_reply(update)
    else:
        content = _masked_reply(request, update, global_arrays, inputs, code)
    if guard is not None:
        guard.summary().put(content)
    record_train(
        request.node.audit_settings(),
        instructions,
        flower_run_id=request.flower_run_id,
        model_sha256=model_sha256(global_arrays),
        epsilon=update.epsilon,
        num_examples=update.num_examples,
        secure=inputs is not None,
        replayed=update.replayed,
    )
    return content


def _plain_reply(update: LocalUpdate) -> RecordDict:
    """The bank's weights, row count and (without DP) training loss, in the clear."""
    content = RecordDict({message_keys.ARRAYS: update.arrays})
    metrics = TrainMetrics(
        num_examples=update.num_examples, train_loss=update.train_loss, epsilon=update.epsilon
    )
    metrics.put(content)
    return content


def _masked_reply(
    request: BankRequest,
    update: LocalUpdate,
    global_arrays: ArrayRecord,
    inputs: secagg.TrainInputs,
    code: FixedPoint,
) -> RecordDict:
    """The update masked for secure aggregation; per-bank metrics stay home.

    The bank masks ``n_train * [update - global, loss, reported]`` together, so the
    coordinator decodes only the weighted mean update and mean loss of the banks
    that report one (banks under DP report none).
    """
    delta = flatten(update.arrays) - flatten(global_arrays)
    reported = 0.0 if update.train_loss is None else 1.0
    values = np.append(delta, [(update.train_loss or 0.0) * reported, reported])
    masked = mask_update(
        request.context,
        request.flower_run_id,
        server_round=inputs.server_round,
        values=values,
        weight=float(update.num_examples),
        code=code,
    )
    content = RecordDict({message_keys.ARRAYS: masked})
    TrainMetrics(epsilon=update.epsilon).put(content)
    return content


def evaluate(request: BankRequest) -> RecordDict:
    """Score the global model on the bank's test rows: histograms and sums, never scores."""
    from participant.app.training import predict_proba

    content_in = request.message.content
    instructions = RoundInstructions.take(content_in)
    global_arrays = record_of(content_in, message_keys.ARRAYS, ArrayRecord)
    bank = load_bank(request.source, instructions)
    model = build_global_model(instructions, global_arrays)
    split = encoded_split(bank, instructions.encoder)
    summary = summarize_scores(
        predict_proba(model, split.test_x), split.test_y, instructions.score_bins
    )
    content = score_summary_to_content(summary)
    asked = secagg.AdvertiseRequest.take_optional(content_in)
    if asked is not None:
        advertisement = advertise(request.context, request.flower_run_id, asked)
        if advertisement is not None:
            advertisement.put(content)
    record_evaluate(
        request.node.audit_settings(),
        instructions,
        flower_run_id=request.flower_run_id,
        model_sha256=model_sha256(global_arrays),
    )
    return content
