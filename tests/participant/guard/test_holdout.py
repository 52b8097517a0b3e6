"""The bank's hold-out: a per-record rule under the bank's secret salt, bound to its ledger."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from flwr.app import MessageType, RecordDict

from credit.loading import load_bank_csv
from credit.messages import Task
from credit.schema import DatasetSchema, load_schema
from participant.contract import GuardReply, GuardRequest, encode_content
from participant.guard.bank import held_out_rows, prepare_bank, record_keys
from participant.guard.bank_guard import BankGuard
from participant.guard.in_process import InProcessLink
from participant.guard.sessions import ContextSessions
from participant.guard.settings import GuardSettings, HoldOut
from participant.relay.client_app import GuardRefused, make_relay_app
from privacy.errors import SplitChanged
from tests.participant.guard.bank_messages import (
    ACME_SALT,
    acme_settings,
    context,
    feature_stats_query,
    hold_out,
    message,
    round_content,
    run_instructions,
)
from tests.support.missing_data import write_blanked


def _without_ids(schema: DatasetSchema) -> DatasetSchema:
    return schema.model_copy(update={"id_column": None})


def _loaded(path: Path, rows: pd.DataFrame, schema: DatasetSchema) -> pd.DataFrame:
    """``rows`` as a bank's guard reads them: written to ``path``, loaded and validated."""
    rows.to_csv(path, index=False)
    return load_bank_csv(path, schema).frame


def _side_of_each_record(
    frame: pd.DataFrame, schema: DatasetSchema, holdout: HoldOut
) -> dict[bytes, bool]:
    """Record key -> held out?"""
    mask = held_out_rows(frame, schema, holdout)
    return dict(zip(record_keys(frame, schema), mask.tolist(), strict=True))


def _public_rule(ids: pd.Series, seed: int, fraction: float) -> np.ndarray:
    """The old rule, SHA-256 of ``seed:id``: anyone with the ids and the seed computes it."""
    draws = [
        int.from_bytes(hashlib.sha256(f"{seed}:{i}".encode()).digest()[:8], "little") / 2.0**64
        for i in ids.astype(str)
    ]
    return np.asarray(draws) < fraction


@pytest.mark.parametrize("ids", [True, False], ids=["id-column", "no-id-column"])
def test_adding_or_removing_a_record_never_moves_another(
    tmp_path: Path, schema: DatasetSchema, embedded_frame: pd.DataFrame, ids: bool
) -> None:
    """The parallel-composition argument: one record changes exactly one side of the split.

    Fails on the old code without an id column, where a seeded permutation of row order
    picked round(f n) rows: a record added at the top re-dealt every other row.
    """
    bank_schema = schema if ids else _without_ids(schema)
    rows = embedded_frame.iloc[:800] if ids else embedded_frame.iloc[:800].drop(columns="ID")
    newcomer = (
        embedded_frame.iloc[[5000]] if ids else embedded_frame.iloc[[5000]].drop(columns="ID")
    )
    holdout = hold_out()
    before = _side_of_each_record(
        _loaded(tmp_path / "a.csv", rows, bank_schema), bank_schema, holdout
    )
    added = _side_of_each_record(
        _loaded(tmp_path / "b.csv", pd.concat([newcomer, rows]), bank_schema), bank_schema, holdout
    )
    removed = _side_of_each_record(
        _loaded(tmp_path / "c.csv", rows.drop(rows.index[[0, 3, 7]]), bank_schema),
        bank_schema,
        holdout,
    )

    assert 100 < sum(before.values()) < 220  # about a fifth held out
    assert {key: added[key] for key in before} == before
    assert set(added) - set(before) != set()  # the newcomer is a record of its own
    assert all(removed[key] == before[key] for key in removed)


def test_without_the_salt_nobody_can_predict_the_split(
    tmp_path: Path, schema: DatasetSchema, embedded_frame: pd.DataFrame
) -> None:
    """Different salts hold out (nearly) independent rows; the public seed rule predicts none.

    Fails on the old code: its split was SHA-256(seed:id), so a coordinator knowing a
    customer's id and the seed knew whether that customer was a test record.
    """
    frame = _loaded(tmp_path / "bank.csv", embedded_frame.iloc[:3000], schema)
    masks = [held_out_rows(frame, schema, HoldOut.fresh(0.2)) for _ in range(4)]
    public = [_public_rule(frame["ID"], seed, 0.2) for seed in range(20)]

    for i, mask in enumerate(masks):
        assert abs(mask.mean() - 0.2) < 0.03
        for other in [*masks[i + 1 :], *public]:
            overlap = (mask & other).sum() / mask.sum()
            assert 0.13 < overlap < 0.27, overlap  # as for independent draws: about 0.2


def test_the_split_depends_on_the_salt_not_on_the_coordinators_seed(
    tmp_path: Path, schema: DatasetSchema, write_bank_csv: Callable[..., Path]
) -> None:
    """Runs with other seeds reach a guard whose split was fixed by its salt at load."""
    data = write_bank_csv(600)
    guard = BankGuard(acme_settings(data, max_epsilon=None))
    app, ctx = make_relay_app(lambda c: InProcessLink(guard, ContextSessions(c))), context()
    for seed in (0, 7, 424242):
        content = RecordDict()
        run_instructions(schema, seed=seed).query(Task.FEATURE_STATS, grid_bins=32).put(content)
        app(message(MessageType.QUERY, content), ctx)

    frame = load_bank_csv(data, schema).frame
    salt_alone = frame[held_out_rows(frame, schema, hold_out())]
    other_salt = frame[held_out_rows(frame, schema, hold_out("0f" * 32))]
    assert guard.bank.test["ID"].tolist() == salt_alone["ID"].tolist()
    assert set(salt_alone["ID"]) != set(other_salt["ID"])


def test_the_split_digest_commits_to_salt_fraction_and_held_out_records(
    tmp_path: Path, schema: DatasetSchema, embedded_frame: pd.DataFrame
) -> None:
    rows = embedded_frame.iloc[:500]
    rows.to_csv(tmp_path / "bank.csv", index=False)
    rows.sample(frac=1.0, random_state=1).to_csv(tmp_path / "shuffled.csv", index=False)
    embedded_frame.iloc[:600].to_csv(tmp_path / "more.csv", index=False)

    def digest(name: str, holdout: HoldOut) -> str:
        settings = acme_settings(tmp_path / name, max_epsilon=None, holdout=holdout)
        return prepare_bank(settings.source(), settings.holdout).split_digest

    base = hold_out()
    reference = digest("bank.csv", base)
    assert len(reference) == 64 and ACME_SALT not in reference
    assert digest("shuffled.csv", base) == reference  # row order is not the split
    assert digest("bank.csv", hold_out("0f" * 32)) != reference
    assert digest("bank.csv", hold_out(fraction=0.25)) != reference
    assert digest("more.csv", base) != reference  # new held-out records


def test_the_salt_must_be_long_hex_and_is_never_shown() -> None:
    from pydantic import ValidationError

    from credit.config_files import first_problem

    secret = "Ab" * 32
    holdout = hold_out(secret)
    assert holdout.salt.get_secret_value() == secret.lower()  # one spelling, one key
    for shown in (repr(holdout), str(holdout), holdout.model_dump_json()):
        assert secret.lower() not in shown.lower()
    for bad in ("ab" * 31, "zz" * 32, "abc" * 23):
        with pytest.raises(ValidationError) as caught:
            hold_out(bad)
        assert bad not in str(caught.value) and bad not in first_problem(caught.value)
    with pytest.raises(ValidationError):
        HoldOut(fraction=0.2)  # type: ignore[call-arg]  # no default salt: a bank's own secret
    assert HoldOut.fresh().salt != HoldOut.fresh().salt


def test_a_guard_binds_its_ledger_to_the_split_and_a_restart_keeps_it(
    tmp_path: Path, write_bank_csv: Callable[..., Path]
) -> None:
    ledger = tmp_path / "ledger.jsonl"
    settings = acme_settings(write_bank_csv(400), max_epsilon=2.0, ledger_path=ledger)
    first = BankGuard.open(settings)
    first.close()
    prepare_bank.cache_clear()  # a restart is a new process
    again = BankGuard.open(settings)
    again.close()

    splits = [e for e in map(json.loads, ledger.read_text().splitlines()) if e["type"] == "split"]
    assert splits == [{"type": "split", "digest": first.bank.split_digest, "fraction": 0.2}]
    assert again.bank.split_digest == first.bank.split_digest
    assert ACME_SALT not in ledger.read_text()
    no_budget = tmp_path / "none.jsonl"
    BankGuard.open(acme_settings(write_bank_csv(400), max_epsilon=None, ledger_path=no_budget))
    assert not no_budget.exists()  # no budget, no ledger


@pytest.mark.parametrize("change", ["salt", "fraction", "data file"])
def test_a_ledger_refuses_to_start_on_another_split(
    tmp_path: Path, write_bank_csv: Callable[..., Path], change: str
) -> None:
    """Fails on the old code: a restart with another seed moved training rows into test."""
    ledger = tmp_path / "ledger.jsonl"
    data = write_bank_csv(400)
    settings = acme_settings(data, max_epsilon=2.0, ledger_path=ledger)
    BankGuard.open(settings).close()
    bound = ledger.read_text()
    prepare_bank.cache_clear()  # a restart is a new process
    changed: GuardSettings = settings
    if change == "salt":
        changed = acme_settings(
            data, max_epsilon=2.0, ledger_path=ledger, holdout=hold_out("0f" * 32)
        )
    elif change == "fraction":
        changed = acme_settings(
            data, max_epsilon=2.0, ledger_path=ledger, holdout=hold_out(fraction=0.3)
        )
    else:
        write_bank_csv(500)  # the same file, 100 customers more (some of them held out)

    with pytest.raises(SplitChanged, match=str(ledger)):
        BankGuard.open(changed)
    assert ledger.read_text() == bound


@dataclass
class _RecordingLink:
    """The in-process link, keeping the bytes of every frame it carries."""

    guard: BankGuard
    sessions: ContextSessions
    frames: list[bytes] = field(default_factory=list)

    def ask(self, request: GuardRequest, content: RecordDict) -> tuple[GuardReply, RecordDict]:
        self.frames += [request.model_dump_json().encode(), encode_content(content)]
        reply, answer = InProcessLink(self.guard, self.sessions).ask(request, content)
        self.frames += [reply.model_dump_json().encode(), encode_content(answer)]
        return reply, answer


def test_the_salt_never_leaves_the_guard(
    tmp_path: Path,
    schema: DatasetSchema,
    write_bank_csv: Callable[..., Path],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No message, reply, relay frame, audit entry, ledger line or log line carries it."""
    holdout = HoldOut.fresh(0.2, validation_fraction=0.0)
    salt = holdout.salt.get_secret_value()
    audit, ledger = tmp_path / "audit.jsonl", tmp_path / "ledger.jsonl"
    settings = acme_settings(
        write_bank_csv(400), max_epsilon=4.0, ledger_path=ledger, audit_log=audit, holdout=holdout
    )
    caplog.set_level(logging.DEBUG)
    guard = BankGuard.open(settings)
    links: list[_RecordingLink] = []

    def link(ctx: object) -> _RecordingLink:
        links.append(_RecordingLink(guard, ContextSessions(ctx)))  # type: ignore[arg-type]
        return links[-1]

    app, ctx = make_relay_app(link), context()
    messages = [
        message(MessageType.QUERY, feature_stats_query(schema)),
        message(MessageType.TRAIN, round_content(schema, 1)[0]),
        message(MessageType.EVALUATE, round_content(schema, 1)[0]),
    ]
    replies = [app(sent, ctx) for sent in messages]
    other_split = RecordDict()
    run_instructions(schema, test_fraction=0.5).query(Task.FEATURE_STATS, grid_bins=32).put(
        other_split
    )
    with pytest.raises(GuardRefused):  # refused and logged, with its reason
        app(message(MessageType.QUERY, other_split), ctx)
    guard.close()

    carried = [encode_content(m.content) for m in [*messages, *replies]]
    carried += [frame for each in links for frame in each.frames]
    carried += [audit.read_bytes(), ledger.read_bytes(), caplog.text.encode()]
    carried += [repr(settings).encode(), settings.model_dump_json().encode()]
    assert b'"holdout-split"' in audit.read_bytes()  # the run reached the audit log
    for blob in carried:
        for needle in (salt.encode(), salt.upper().encode(), bytes.fromhex(salt)):
            assert needle not in blob


def test_records_with_missing_values_have_standard_keys_and_a_stable_side(
    tmp_path: Path, embedded_frame: pd.DataFrame
) -> None:
    """Without ids a record's key is its content: a missing value is ``null`` in it, and
    the record's side of the split still depends on that record alone."""
    blanked = write_blanked(tmp_path, embedded_frame, n_rows=800)
    bank_schema = _without_ids(load_schema(blanked.schema))
    rows = blanked.frame.drop(columns="ID")
    frame = _loaded(tmp_path / "a.csv", rows, bank_schema)

    keys = record_keys(frame, bank_schema)

    first = int(np.flatnonzero(blanked.missing_limit & blanked.missing_pay_2)[0])
    content = json.loads(keys[first])
    assert content["LIMIT_BAL"] is None and content["PAY_2"] is None
    assert b"NaN" not in b"".join(keys)
    assert len(set(keys)) == len(keys)
    holdout = hold_out()
    before = _side_of_each_record(frame, bank_schema, holdout)
    fewer = _side_of_each_record(
        _loaded(tmp_path / "b.csv", rows.iloc[100:], bank_schema), bank_schema, holdout
    )
    assert fewer == {key: before[key] for key in fewer}
