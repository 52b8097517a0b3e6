"""The bank's ``gbdt-level`` handler, reached through its relay ClientApp: what it answers,
what it keeps between levels, and what it refuses."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from flwr.app import MessageType, RecordDict

from credit import message_keys as keys
from credit.encoding import FeatureEncoder, StatsSource, fit_encoder
from credit.gbdt import bins_from_encoder
from credit.messages import Task
from credit.messages.gbdt import (
    GbdtEncoding,
    GbdtLevelRequest,
    LevelOrders,
    SplitOrder,
    histograms_from_content,
)
from credit.schema import DatasetSchema
from participant.guard.bank_guard import BankGuard
from participant.guard.gbdt_bank import GbdtPolicy
from participant.relay.client_app import GuardRefused
from tests.participant.guard.bank_messages import (
    JoinedBank,
    acme_settings,
    context,
    feature_stats_query,
    guarded_app,
    message,
    run_instructions,
)

ROWS = 300


def _encoder(schema: DatasetSchema, bins: int = 8) -> FeatureEncoder:
    return fit_encoder(schema, source=StatsSource.PUBLIC, quantile_bins=bins)


def _level(schema: DatasetSchema, orders: LevelOrders, encoder: FeatureEncoder) -> RecordDict:
    content = RecordDict()
    run_instructions(schema).query(Task.GBDT_LEVEL).put(content)
    GbdtLevelRequest(orders=orders).put(content)
    GbdtEncoding(encoder=encoder).put(content)
    return content


def _orders(tree: int = 0, depth: int = 0, **changes: object) -> LevelOrders:
    fields: dict[str, object] = {
        "tree": tree, "depth": depth, "n_trees": 2, "max_depth": 2, "base_margin": -1.0,
    }  # fmt: skip
    return LevelOrders.model_validate({**fields, **changes})


def _bank(
    write_bank_csv: Callable[..., Path], schema: DatasetSchema, audit: Path, **update: object
) -> JoinedBank:
    settings = acme_settings(write_bank_csv(ROWS), max_epsilon=None, audit_log=audit)
    guard = BankGuard(settings.model_copy(update=update))
    bank = JoinedBank(app=guarded_app(guard), context=context(), guard=guard)
    bank.send(MessageType.QUERY, feature_stats_query(schema))
    return bank


def _last_refusal(audit: Path) -> dict[str, object]:
    last = json.loads(audit.read_text(encoding="utf-8").splitlines()[-1])
    assert last["event"] == "refusal"
    data: dict[str, object] = last["data"]
    return data


def test_a_bank_answers_levels_in_order_keeping_its_rows_state_between_messages(
    tmp_path: Path, schema: DatasetSchema, write_bank_csv: Callable[..., Path]
) -> None:
    bank = _bank(write_bank_csv, schema, tmp_path / "audit.jsonl")
    encoder = _encoder(schema)
    bins = bins_from_encoder(encoder)
    train_rows = len(bank.guard.bank.train)

    root = bank.send(MessageType.QUERY, _level(schema, _orders(), encoder))
    shape = (1, bins.n_features, bins.n_bins, 3)
    histograms = histograms_from_content(root.content, shape=shape)
    assert np.all(histograms[0, :, :, 2].sum(axis=1) == train_rows)  # every row, every feature
    split = SplitOrder(node=0, feature=0, split_bin=1, default_left=True)
    child = bank.send(
        MessageType.QUERY, _level(schema, _orders(depth=1, splits=(split,), nodes=(1,)), encoder)
    )
    left = histograms_from_content(child.content, shape=shape)
    assert 0 <= left[0, 0, :, 2].sum() <= train_rows
    assert np.all(left[0, :, :, 2].sum(axis=1) == left[0, 0, :, 2].sum())


def test_a_level_on_other_edges_than_the_runs_first_is_refused(
    tmp_path: Path, schema: DatasetSchema, write_bank_csv: Callable[..., Path]
) -> None:
    audit = tmp_path / "audit.jsonl"
    bank = _bank(write_bank_csv, schema, audit)
    bank.send(MessageType.QUERY, _level(schema, _orders(), _encoder(schema)))
    split = SplitOrder(node=0, feature=0, split_bin=1, default_left=True)
    orders = _orders(depth=1, splits=(split,), nodes=(1,))

    with pytest.raises(GuardRefused, match="not the run's"):
        bank.send(MessageType.QUERY, _level(schema, orders, _encoder(schema, bins=4)))
    assert _last_refusal(audit)["kind"] == "gbdt-level"


def test_an_encoder_of_other_features_than_the_banks_schema_is_refused(
    tmp_path: Path, schema: DatasetSchema, write_bank_csv: Callable[..., Path]
) -> None:
    audit = tmp_path / "audit.jsonl"
    bank = _bank(write_bank_csv, schema, audit)
    encoder = _encoder(schema)
    fewer = encoder.model_copy(update={"numeric": encoder.numeric[1:]})

    with pytest.raises(GuardRefused, match="not the schema's"):
        bank.send(MessageType.QUERY, _level(schema, _orders(), fewer))
    assert _last_refusal(audit)["kind"] == "gbdt-encoder"


def test_a_bank_refuses_an_ensemble_beyond_its_policy_and_plain_levels_if_it_requires_secagg(
    tmp_path: Path, schema: DatasetSchema, write_bank_csv: Callable[..., Path]
) -> None:
    audit = tmp_path / "small.jsonl"
    small = _bank(write_bank_csv, schema, audit, gbdt=GbdtPolicy(max_trees=1))
    with pytest.raises(GuardRefused, match="exceed the bank's policy"):
        small.send(MessageType.QUERY, _level(schema, _orders(), _encoder(schema)))
    assert _last_refusal(audit)["kind"] == "gbdt-level"

    secure = tmp_path / "secure.jsonl"
    settings = acme_settings(write_bank_csv(ROWS), max_epsilon=None, audit_log=secure)
    guard = BankGuard(settings.model_copy(update={"require_secure_aggregation": True}))
    with pytest.raises(GuardRefused, match="only through secure aggregation"):
        guarded_app(guard)(
            message(MessageType.QUERY, _level(schema, _orders(), _encoder(schema))), context()
        )
    assert _last_refusal(secure)["kind"] == "plain-update"


def test_the_level_reply_carries_only_the_histograms(
    tmp_path: Path, schema: DatasetSchema, write_bank_csv: Callable[..., Path]
) -> None:
    bank = _bank(write_bank_csv, schema, tmp_path / "audit.jsonl")
    reply = bank.send(MessageType.QUERY, _level(schema, _orders(), _encoder(schema)))
    assert set(reply.content) - {keys.AUDIT_HEAD} == {keys.GBDT_HISTOGRAMS}
