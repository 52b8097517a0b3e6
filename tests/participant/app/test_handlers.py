"""The bank's handlers against a coordinator that sends what it should not."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from flwr.app import MessageType

from credit.errors import MalformedMessage
from credit.messages import secagg
from credit.schema import DatasetSchema
from participant.app.client_app import make_client_app
from tests.participant.app.bank_messages import (
    context,
    feature_stats_query,
    message,
    round_content,
)


def test_a_coordinator_sending_undecodable_masking_inputs_charges_nothing(
    tmp_path: Path, schema: DatasetSchema, write_bank_csv: Callable[..., Path]
) -> None:
    """Secure aggregation's inputs are opened before the round is charged or trained."""
    ledger = tmp_path / "acme.ledger.jsonl"
    node = {
        "data-path": str(write_bank_csv(400)),
        "bank-name": "acme",
        "max-epsilon": 4.0,
        "ledger-path": str(ledger),
    }
    app, bank = make_client_app(), context(node)
    app(message(MessageType.QUERY, feature_stats_query(schema)), bank)
    spent = ledger.read_text()
    content, _ = round_content(schema, 1)
    secagg.TrainInputs(
        roster=b"{}", threshold=2, server_round=1, forward=b"garbage", fixed_point="1.0:14:32"
    ).put(content)

    with pytest.raises(MalformedMessage, match="malformed secure-aggregation forward"):
        app(message(MessageType.TRAIN, content), bank)

    assert ledger.read_text() == spent  # nothing charged, nothing trained
