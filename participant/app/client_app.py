"""The participant's Flower ClientApp: feature statistics, local training, evaluation.

A bank answers three kinds of message from the coordinator:

* ``query`` with task ``feature-stats``: aggregates of its training rows (counts, sums,
  sums of squares, histograms over the public grid), never rows;
* ``train``: local SGD from the global weights, returning new weights;
* ``evaluate``: a score histogram and loss sums on its own test split, never scores.

Where the bank's data lives comes from the SuperNode's node config in deployment
(``data-path``, optional ``bank-name`` and ``schema-path``) or from the simulation's
partition plan (see :mod:`participant.app.node_config`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from credit import message_keys as keys
from credit.encoding import FeatureEncoder
from credit.feature_stats import compute_feature_stats
from credit.metrics import summarize_scores
from credit.records import (
    array_record,
    config_float,
    config_int,
    config_record,
    config_str,
    feature_stats_to_record,
    flatten,
    score_summary_to_records,
)
from participant.app.approval import UnapprovedApp, check_approved
from participant.app.audit_trail import record_evaluate, record_join, record_refusal, record_train
from participant.app.bank import BankSource, EncodedSplit, PreparedBank, encoded_split, prepare_bank
from participant.app.node_config import source_from_context
from participant.app.replay import ReplayStore
from participant.app.secagg_client import (
    DropStage,
    advertise,
    answer_unmask,
    dropout_stage,
    dropped_reply,
    enrollment,
    mask_update,
    wants_secure,
)
from privacy.errors import PrivacyBudgetExceeded

if TYPE_CHECKING:
    from torch import nn

    from participant.app.privacy_guard import PrivacyGuard, TrainingRequest
    from privacy.accounting import DpEvent

# torch and Opacus are imported inside the handlers that train or score: in
# deployment every message starts a new ClientApp process, and secure-aggregation
# queries should not pay for importing them.

__all__ = ["app", "make_client_app"]

SourceResolver = Callable[[Context], BankSource]


def _load_bank(config: ConfigRecord, source: BankSource) -> PreparedBank:
    """Validate and split the bank's rows; refuse a run with another schema."""
    bank = prepare_bank(
        source, config_float(config, keys.TEST_FRACTION), config_int(config, keys.SEED)
    )
    expected = config_str(config, keys.SCHEMA_HASH)
    if bank.schema.schema_hash() != expected:
        raise ValueError(
            f"bank '{bank.name}' uses a different dataset schema "
            f"({bank.schema.schema_hash()[:12]}) from the run's ({expected[:12]}); "
            "install the consortium's schema"
        )
    return bank


def _model_and_split(message: Message, bank: PreparedBank) -> tuple[nn.Module, EncodedSplit]:
    """Rebuild the global model and the encoded split from a train/evaluate message."""
    from credit.models import ModelSpec, build_model

    config = config_record(message.content, keys.CONFIG)
    encoder = FeatureEncoder.model_validate_json(config_str(config, keys.ENCODER))
    model = build_model(ModelSpec.model_validate_json(config_str(config, keys.MODEL_SPEC)))
    model.load_state_dict(array_record(message.content, keys.ARRAYS).to_torch_state_dict())
    return model, encoded_split(bank, encoder)


def _request(message: Message, config: ConfigRecord) -> TrainingRequest:
    """The coordinator's plan and this round's settings, as the privacy guard sees them."""
    from participant.app.privacy_guard import TrainingRequest

    run_name = config_str(config, keys.RUN_NAME) if keys.RUN_NAME in config else ""
    return TrainingRequest(
        run=run_name or str(message.metadata.run_id),
        server_round=config_int(config, keys.SERVER_ROUND) if keys.SERVER_ROUND in config else 0,
        planned_rounds=config_int(config, keys.PLANNED_ROUNDS),
        local_epochs=config_int(config, keys.LOCAL_EPOCHS),
        batch_size=config_int(config, keys.BATCH_SIZE),
        max_grad_norm=config_float(config, keys.MAX_GRAD_NORM),
    )


def _guard(bank: PreparedBank, source: BankSource) -> PrivacyGuard | None:
    """A fresh guard over the bank's ledger file (re-read on every message)."""
    budget, ledger = source.budget, source.ledger_path
    if budget is None or ledger is None:  # BankSource refuses a budget without a ledger
        return None
    from participant.app.privacy_guard import PrivacyGuard

    return PrivacyGuard(bank=bank.name, budget=budget, ledger_path=ledger, n_train=len(bank.train))


def _ledger_record(guard: PrivacyGuard) -> ConfigRecord:
    return ConfigRecord(
        {keys.LEDGER: json.dumps(guard.ledger.summary()), keys.BANK_NAME: guard.ledger.bank}
    )


def _approved(message: Message, context: Context) -> None:
    """Refuse a run of another fedcredit release than the approved one (and audit it)."""
    try:
        check_approved(context)
    except UnapprovedApp as refusal:
        config = (
            config_record(message.content, keys.CONFIG) if keys.CONFIG in message.content else None
        )
        record_refusal(message, context, config, kind="unapproved-version", reason=str(refusal))
        raise


def _refusal(
    message: Message, context: Context, refusal: PrivacyBudgetExceeded, guard: PrivacyGuard
) -> Message:
    """A typed refusal: the coordinator learns who refused and why, nothing else."""
    record_refusal(
        message,
        context,
        config_record(message.content, keys.CONFIG),
        kind="privacy-budget",
        reason=str(refusal),
    )
    content = RecordDict(
        {
            keys.REFUSAL: ConfigRecord(
                {
                    keys.REFUSAL_TYPE: type(refusal).__name__,
                    keys.BANK_NAME: refusal.bank,
                    keys.REFUSAL_SPENT: refusal.spent,
                    keys.REFUSAL_REQUESTED: refusal.requested,
                    keys.REFUSAL_MAXIMUM: refusal.maximum,
                    keys.SERVER_ROUND: refusal.server_round,
                }
            ),
            keys.PRIVACY: _ledger_record(guard),
        }
    )
    return Message(content=content, reply_to=message)


def _received_hash(message: Message) -> str:
    """SHA-256 of the global model in a train message (as the audit log records it)."""
    from credit.audit import arrays_sha256

    received = array_record(message.content, keys.ARRAYS)
    return arrays_sha256({name: received[name].numpy() for name in received})


def _model_arrays(model: nn.Module) -> dict[str, np.ndarray]:
    return {name: value.detach().cpu().numpy() for name, value in model.state_dict().items()}


def _load_arrays(model: nn.Module, arrays: dict[str, np.ndarray]) -> None:
    import torch

    model.load_state_dict({name: torch.from_numpy(value) for name, value in arrays.items()})


def _train_private(
    model: nn.Module,
    split: EncodedSplit,
    event: DpEvent,
    request: TrainingRequest,
    config: ConfigRecord,
) -> None:
    """One round of DP-SGD with the noise the bank's plan fixed (Opacus)."""
    from privacy.dp_sgd import DpSgdSettings, train_dp_sgd

    train_dp_sgd(
        model,
        split.train_x,
        split.train_y,
        DpSgdSettings(
            noise_multiplier=event.noise_multiplier,
            max_grad_norm=event.max_grad_norm,
            batch_size=request.batch_size,
            epochs=request.local_epochs,
            learning_rate=config_float(config, keys.LEARNING_RATE),
        ),
    )


def make_client_app(resolve_source: SourceResolver = source_from_context) -> ClientApp:
    """Build the ClientApp; ``resolve_source`` tells each node where its rows are."""
    client_app = ClientApp()

    @client_app.query()
    def query(message: Message, context: Context) -> Message:
        _approved(message, context)
        config = config_record(message.content, keys.CONFIG)
        task = config_str(config, keys.TASK)
        source = resolve_source(context)
        if task in (keys.TASK_FEATURE_STATS, keys.TASK_ENROLL):
            bank = _load_bank(config, source)
            record_join(message, context, config, task)
            if task == keys.TASK_ENROLL:
                return _enroll(message, context, bank)
            return _feature_stats(message, context, config, source, bank)
        if task == keys.TASK_SECAGG_ADVERTISE:
            secagg = config_record(message.content, keys.SECAGG)
            if _drops(config, source.name, config_int(secagg, keys.ADVERTISE_ROUND)) == "advertise":
                return dropped_reply(message, "advertise")
            advertisement = advertise(context, message.metadata.run_id, secagg)
            if advertisement is None:
                raise ValueError("this bank is not in the run's secure-aggregation roster")
            return Message(content=RecordDict({keys.SECAGG: advertisement}), reply_to=message)
        if task == keys.TASK_SECAGG_UNMASK:
            if _drops(config, source.name, config_int(config, keys.SERVER_ROUND)) == "unmask":
                return dropped_reply(message, "unmask")
            reply = RecordDict({keys.SECAGG: answer_unmask(context, message)})
            return Message(content=reply, reply_to=message)
        raise ValueError(f"unknown query task '{task}'")

    @client_app.train()
    def train(message: Message, context: Context) -> Message:
        _approved(message, context)
        config = config_record(message.content, keys.CONFIG)
        source = resolve_source(context)
        bank = _load_bank(config, source)
        server_round = config_int(config, keys.SERVER_ROUND)
        if _drops(config, bank.name, server_round) == "train":
            return dropped_reply(message, "train")
        guard = _guard(bank, source)
        model, split = _model_and_split(message, bank)
        metrics: dict[str, int | float | list[int] | list[float]] = {
            keys.NUM_EXAMPLES: len(split.train_y)
        }
        content = RecordDict()
        replayed = False
        if guard is None:
            loss: float | None = _train_plain(model, split, config)
        else:
            request = _request(message, config)
            replays = ReplayStore.beside(guard.ledger.path)
            model_hash = _received_hash(message)
            kept = replays.load(request.run, server_round, model_hash)
            if kept is not None:  # asked again after a coordinator crash: already paid for
                _load_arrays(model, kept)
                replayed = True
            else:
                try:
                    event = guard.charge_round(request)  # before training: refuse, or commit
                except PrivacyBudgetExceeded as refusal:
                    return _refusal(message, context, refusal, guard)
                _train_private(model, split, event, request, config)
                replays.save(request.run, server_round, model_hash, _model_arrays(model))
            loss = None  # a statistic of the training rows: not released under DP
            metrics[keys.EPSILON] = guard.ledger.epsilon
            content[keys.PRIVACY] = _ledger_record(guard)
        arrays = ArrayRecord(model.state_dict())
        if wants_secure(message):
            # The coordinator learns only the sum: the update, the loss and the weight
            # are masked together; per-bank metrics stay home.
            delta = flatten(arrays) - flatten(array_record(message.content, keys.ARRAYS))
            reported = 0.0 if loss is None else 1.0
            values = np.append(delta, [(loss or 0.0) * reported, reported])
            content[keys.ARRAYS] = mask_update(
                context, message, server_round, values, float(len(split.train_y))
            )
            metrics = {k: v for k, v in metrics.items() if k == keys.EPSILON}
        else:
            content[keys.ARRAYS] = arrays
            if loss is not None:
                metrics[keys.TRAIN_LOSS] = loss
        content[keys.METRICS] = MetricRecord(metrics)
        record_train(
            message,
            context,
            config,
            epsilon=None if guard is None else guard.ledger.epsilon,
            num_examples=len(split.train_y),
            secure=wants_secure(message),
            replayed=replayed,
        )
        return Message(content=content, reply_to=message)

    @client_app.evaluate()
    def evaluate(message: Message, context: Context) -> Message:
        _approved(message, context)
        config = config_record(message.content, keys.CONFIG)
        bank = _load_bank(config, resolve_source(context))
        model, split = _model_and_split(message, bank)
        from participant.app.training import predict_proba

        summary = summarize_scores(
            predict_proba(model, split.test_x), split.test_y, config_int(config, keys.SCORE_BINS)
        )
        histograms, sums = score_summary_to_records(summary)
        content = RecordDict({keys.SCORES: histograms, keys.METRICS: sums})
        if wants_secure(message):
            secagg = config_record(message.content, keys.SECAGG)
            next_round = config_int(secagg, keys.ADVERTISE_ROUND)
            if next_round and _drops(config, bank.name, next_round) != "advertise":
                advertisement = advertise(context, message.metadata.run_id, secagg)
                if advertisement is not None:
                    content[keys.SECAGG] = advertisement
        record_evaluate(message, context, config)
        return Message(content=content, reply_to=message)

    return client_app


def _feature_stats(
    message: Message,
    context: Context,
    config: ConfigRecord,
    source: BankSource,
    bank: PreparedBank,
) -> Message:
    """Aggregates of the training rows (noisy under a privacy budget), never rows."""
    stats = compute_feature_stats(bank.train, bank.schema, config_int(config, keys.GRID_BINS))
    guard = _guard(bank, source)
    content = _bank_records(bank)
    if guard is not None:
        try:
            stats = guard.release_feature_stats(stats, bank.schema, _request(message, config))
        except PrivacyBudgetExceeded as refusal:
            return _refusal(message, context, refusal, guard)
        content[keys.PRIVACY] = _ledger_record(guard)
    content[keys.FEATURE_STATS] = feature_stats_to_record(stats)
    if wants_secure(message):
        content[keys.SECAGG] = enrollment(context, message.metadata.run_id)
    return Message(content=content, reply_to=message)


def _bank_records(bank: PreparedBank) -> RecordDict:
    """The bank's name and row counts (public: see the privacy model)."""
    return RecordDict(
        {
            keys.BANK: ConfigRecord({keys.BANK_NAME: bank.name}),
            keys.METRICS: MetricRecord(
                {keys.N_TRAIN: len(bank.train), keys.N_TEST: len(bank.test)}
            ),
        }
    )


def _enroll(message: Message, context: Context, bank: PreparedBank) -> Message:
    """Rejoin a resumed run: name and row counts, a new encryption key; no data release."""
    content = _bank_records(bank)
    if wants_secure(message):
        content[keys.SECAGG] = enrollment(context, message.metadata.run_id)
    return Message(content=content, reply_to=message)


def _drops(config: ConfigRecord, bank: str, server_round: int) -> DropStage | None:
    """Where a simulated dropout takes ``bank`` out of ``server_round`` (None: it stays)."""
    rate = config_float(config, keys.DROPOUT_RATE) if keys.DROPOUT_RATE in config else 0.0
    return dropout_stage(config_int(config, keys.SEED), bank, server_round, rate)


def _train_plain(model: nn.Module, split: EncodedSplit, config: ConfigRecord) -> float:
    """Non-private local SGD (a bank without a privacy budget); the mean training loss."""
    from participant.app.training import TrainSettings, train_locally

    settings = TrainSettings(
        epochs=config_int(config, keys.LOCAL_EPOCHS),
        batch_size=config_int(config, keys.BATCH_SIZE),
        learning_rate=config_float(config, keys.LEARNING_RATE),
        seed=config_int(config, keys.SEED) * 100_003 + config_int(config, keys.SERVER_ROUND),
    )
    return train_locally(model, split.train_x, split.train_y, settings)


app = make_client_app()
