"""A malicious coordinator changes a run's local steps after the bank fixed its plan.

``local_steps`` (a round's DP-SGD steps whatever the bank's size) is a field of every
request. More steps at the plan's noise would spend more than the bank calibrated for,
so a budgeted bank fixes its steps per round in the run's plan at the first request
and refuses any round that asks for other steps (or switches between epochs and
steps), before anything is charged or trained.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from flwr.app import MessageType

from credit.messages import Refusal, RoundInstructions
from credit.schema import DatasetSchema
from tests.participant.guard.bank_messages import joined_bank, round_content


def _events(ledger: Path) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in ledger.read_text().splitlines()]
    return [line for line in lines if line.get("type") == "event"]


@pytest.mark.parametrize("steps", [500, 1])
def test_a_round_asking_for_other_local_steps_than_the_plan_is_refused_uncharged(
    tmp_path: Path, schema: DatasetSchema, write_bank_csv: Callable[..., Path], steps: int
) -> None:
    ledger = tmp_path / "acme.ledger.jsonl"
    bank = joined_bank(schema, write_bank_csv(400), max_epsilon=4.0, ledger_path=ledger)
    before = _events(ledger)  # the set-up release fixed the plan: 1 epoch, ceil(n/B) steps
    content, _ = round_content(schema, 1)
    asked = RoundInstructions.take(content).model_copy(
        update={"local_epochs": 0, "local_steps": steps}
    )
    asked.put(content)

    reply = bank.send(MessageType.TRAIN, content).content

    refusal = Refusal.take(reply)
    assert (refusal.reason, refusal.server_round) == ("RunPlanChanged", 1)
    assert _events(ledger) == before  # nothing charged, nothing trained
