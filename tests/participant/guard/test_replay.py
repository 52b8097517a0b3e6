"""A round asked for again after a coordinator crash is answered without a new charge."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from flwr.app import MessageType

from credit import message_keys as keys
from credit.schema import DatasetSchema
from participant.guard.replay import ReplayStore
from tests.participant.guard.bank_messages import joined_bank, round_content


def test_store_returns_only_the_same_run_round_and_model(tmp_path: Path) -> None:
    store = ReplayStore.beside(tmp_path / "ledger.jsonl")
    weights = {"linear.weight": np.arange(6, dtype=np.float32).reshape(2, 3)}
    store.save("q3", 4, "ab" * 32, weights)

    kept = store.load("q3", 4, "ab" * 32)
    assert kept is not None
    np.testing.assert_array_equal(kept["linear.weight"], weights["linear.weight"])
    assert store.load("q3", 5, "ab" * 32) is None  # another round
    assert store.load("q3", 4, "cd" * 32) is None  # another global model
    assert store.load("q4", 4, "ab" * 32) is None  # another run
    store.save("q3", 5, "ef" * 32, weights)  # the run's next round replaces it
    assert store.load("q3", 4, "ab" * 32) is None
    assert (tmp_path / "ledger.jsonl.replay").stat().st_mode & 0o777 == 0o700


def test_a_repeated_round_sends_the_same_result_and_charges_nothing(
    tmp_path: Path, schema: DatasetSchema, write_bank_csv: Callable[..., Path]
) -> None:
    ledger = tmp_path / "acme.ledger.jsonl"
    bank = joined_bank(schema, write_bank_csv(400), max_epsilon=4.0, ledger_path=ledger)
    content, _ = round_content(schema, 1)

    first = bank.send(MessageType.TRAIN, content)
    spent = ledger.read_text()
    again = bank.send(MessageType.TRAIN, round_content(schema, 1)[0])

    assert keys.REFUSAL not in again.content
    assert ledger.read_text() == spent  # nothing charged for the repeat
    for name in first.content[keys.ARRAYS]:
        np.testing.assert_array_equal(
            first.content[keys.ARRAYS][name].numpy(), again.content[keys.ARRAYS][name].numpy()
        )
    epsilon = first.content.config_records[keys.PRIVACY]["epsilon"]
    assert again.content.metric_records[keys.METRICS]["epsilon"] == pytest.approx(epsilon)

    # The same round from another global model is new work: charged (here: refused,
    # the single planned round is spent).
    other, _ = round_content(schema, 1)
    other[keys.ARRAYS] = round_content(schema, 7)[1]
    refused = bank.send(MessageType.TRAIN, other)
    assert keys.REFUSAL in refused.content
