"""The bank's handlers against a coordinator that sends what it should not."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from flwr.app import MessageType

from credit.messages import secagg
from credit.schema import DatasetSchema
from participant.relay.client_app import GuardRefused
from tests.participant.guard.bank_messages import joined_bank, round_content


def test_a_coordinator_sending_undecodable_masking_inputs_charges_nothing(
    tmp_path: Path, schema: DatasetSchema, write_bank_csv: Callable[..., Path]
) -> None:
    """Secure aggregation's inputs are opened before the round is charged or trained."""
    ledger = tmp_path / "acme.ledger.jsonl"
    bank = joined_bank(schema, write_bank_csv(400), max_epsilon=4.0, ledger_path=ledger)
    spent = ledger.read_text()
    content, _ = round_content(schema, 1)
    secagg.TrainInputs(
        roster=b"{}", threshold=2, server_round=1, forward=b"garbage", fixed_point="1.0:14:32"
    ).put(content)

    with pytest.raises(
        GuardRefused, match="MalformedMessage: malformed secure-aggregation forward"
    ):
        bank.send(MessageType.TRAIN, content)

    assert ledger.read_text() == spent  # nothing charged, nothing trained
