"""A cross-validation's folds: the hold-out rule's values cut into K intervals.

Fold k of K holds out the records whose HMAC value falls in [k/K, (k+1)/K): the folds
partition a bank's rows, a customer is in the same fold at every bank with the salt,
and the coordinator still asks only for the share the bank holds out (1/K).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from flwr.app import MessageType, RecordDict
from pydantic import SecretStr, ValidationError

from credit.loading import load_bank_csv
from credit.messages import Task
from credit.schema import DatasetSchema
from participant.guard.bank import held_out_rows, prepare_bank
from participant.guard.bank_guard import BankGuard
from participant.guard.settings import Fold, HoldOut
from participant.relay.client_app import GuardRefused
from tests.participant.guard.bank_messages import (
    ACME_SALT,
    acme_settings,
    context,
    guarded_app,
    hold_out,
    message,
    run_instructions,
)


def _fold(index: int, count: int, salt: str = ACME_SALT) -> HoldOut:
    return HoldOut(fraction=1 / count, salt=SecretStr(salt), fold=Fold(index=index, count=count))


@pytest.fixture(scope="module")
def bank_frame(
    tmp_path_factory: pytest.TempPathFactory, embedded_frame: pd.DataFrame, schema: DatasetSchema
) -> pd.DataFrame:
    """3,000 customers as a bank's guard reads them."""
    path = tmp_path_factory.mktemp("folds") / "bank.csv"
    embedded_frame.iloc[:3000].to_csv(path, index=False)
    return load_bank_csv(path, schema).frame


@pytest.mark.parametrize("count", [2, 3, 5, 7, 10])
def test_the_folds_partition_a_banks_rows_into_near_equal_parts(
    bank_frame: pd.DataFrame, schema: DatasetSchema, count: int
) -> None:
    masks = np.stack([held_out_rows(bank_frame, schema, _fold(k, count)) for k in range(count)])

    assert (masks.sum(axis=0) == 1).all()  # every row in exactly one fold
    n = len(bank_frame)
    spread = 4 * math.sqrt(n * (1 / count) * (1 - 1 / count))  # 4 binomial sd
    for size in masks.sum(axis=1):
        assert abs(size - n / count) < spread, (size, n / count)


def test_fold_0_of_k_is_the_split_of_fraction_1_over_k(
    bank_frame: pd.DataFrame, schema: DatasetSchema
) -> None:
    """The same rule: fold 0's interval is [0, 1/K), the fraction split's [0, fraction)."""
    first_fold = held_out_rows(bank_frame, schema, _fold(0, 4))
    quarter = held_out_rows(bank_frame, schema, hold_out(fraction=0.25))
    assert first_fold.any() and (first_fold == quarter).all()
    assert not (held_out_rows(bank_frame, schema, _fold(1, 4)) == quarter).all()


def test_a_customer_is_in_the_same_fold_at_two_banks_with_the_same_salt(
    tmp_path: Path, embedded_frame: pd.DataFrame, schema: DatasetSchema
) -> None:
    """Two banks sharing customers 1,000-1,999: each shared customer's fold is one."""
    frames = {}
    for name, rows in {"a": slice(0, 2000), "b": slice(1000, 3000)}.items():
        embedded_frame.iloc[rows].to_csv(tmp_path / f"{name}.csv", index=False)
        frames[name] = load_bank_csv(tmp_path / f"{name}.csv", schema).frame

    def fold_of_each_customer(frame: pd.DataFrame) -> dict[int, int]:
        fold_of: dict[int, int] = {}
        for k in range(3):
            for customer in frame.loc[held_out_rows(frame, schema, _fold(k, 3)), "ID"]:
                fold_of[int(customer)] = k
        return fold_of

    at_a, at_b = fold_of_each_customer(frames["a"]), fold_of_each_customer(frames["b"])
    shared = set(at_a) & set(at_b)
    assert len(shared) == 1000
    assert {at_a[customer] for customer in shared} == {0, 1, 2}
    assert all(at_a[customer] == at_b[customer] for customer in shared)


def test_a_fold_depends_on_the_salt(bank_frame: pd.DataFrame, schema: DatasetSchema) -> None:
    ours = held_out_rows(bank_frame, schema, _fold(1, 3))
    theirs = held_out_rows(bank_frame, schema, _fold(1, 3, salt="0f" * 32))
    overlap = (ours & theirs).sum() / ours.sum()
    assert 0.25 < overlap < 0.42  # as for independent draws: about a third


def test_a_banks_prepared_split_holds_out_its_fold(
    write_bank_csv: Callable[..., Path], schema: DatasetSchema
) -> None:
    """Train and test of fold k: all the rows, the fold's customers held out."""
    settings = acme_settings(write_bank_csv(900), max_epsilon=None)
    tests = []
    for k in range(3):
        bank = prepare_bank(settings.source(), _fold(k, 3))
        assert len(bank.train) + len(bank.test) == 900
        tests.append(set(bank.test["ID"]))
    assert set().union(*tests) == {str(customer) for customer in range(1, 901)}
    assert sum(len(test) for test in tests) == 900  # pairwise disjoint
    digests = {prepare_bank(settings.source(), _fold(k, 3)).split_digest for k in range(3)}
    assert len(digests) == 3  # each fold is a split of its own in a ledger


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"index": 3, "count": 3}, "index must be below count 3; got 3"),
        ({"index": 0, "count": 1}, "greater than or equal to 2"),
        ({"index": -1, "count": 3}, "greater than or equal to 0"),
    ],
)
def test_a_fold_outside_its_count_is_refused(fields: dict[str, int], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        Fold(**fields)


def test_a_fold_with_another_fraction_is_refused() -> None:
    with pytest.raises(
        ValidationError, match=r"fold 1 of 4 holds out 1/4 of the rows; got fraction 0\.2"
    ):
        HoldOut(fraction=0.2, salt=SecretStr(ACME_SALT), fold=Fold(index=1, count=4))


def test_the_guard_answers_test_fraction_1_over_k_and_refuses_any_other(
    write_bank_csv: Callable[..., Path], schema: DatasetSchema
) -> None:
    """The coordinator asks for the share the bank holds out; the fold is the bank's."""
    settings = acme_settings(write_bank_csv(600), max_epsilon=None, holdout=_fold(2, 3))
    guard = BankGuard(settings)
    app, ctx = guarded_app(guard), context()

    def ask(test_fraction: float) -> None:
        content = RecordDict()
        query = run_instructions(schema, test_fraction=test_fraction)
        query.query(Task.FEATURE_STATS, grid_bins=32).put(content)
        app(message(MessageType.QUERY, content), ctx)

    try:
        ask(1 / 3)  # answered
        for other in (0.2, 0.3333, 0.5):
            with pytest.raises(GuardRefused, match=r"holds out 0\.333333 of its rows"):
                ask(other)
    finally:
        guard.close()
