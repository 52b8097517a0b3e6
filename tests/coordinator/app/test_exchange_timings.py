"""Each round's message exchanges are timed: ``metrics.json`` ``rounds[].exchanges``.

Runs go through the coordinator's ServerApp body and the banks' real ClientApp over
:class:`tests.support.fake_grid.FakeGrid` (2 banks, 2 rounds, as in
``test_run_driver``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from coordinator.app.checkpoint import CHECKPOINT_DIR, load_checkpoint
from credit.run_config import RunConfig
from simulations.engine import plan_simulation
from tests.support.consortium import run_in_process


def _run(out: Path, *, secure: bool) -> dict[str, Any]:
    config = RunConfig(out_dir=str(out), rounds=2, seed=0, secure_aggregation=secure)
    run_in_process(plan_simulation(config, n_banks=3))
    document: dict[str, Any] = json.loads((out / "metrics.json").read_text())
    return document


@pytest.mark.parametrize(
    ("secure", "stages"),
    [
        (False, [["train"], ["train", "evaluate"]]),
        (
            True,
            [["train", "consistency", "unmask"], ["train", "consistency", "unmask", "evaluate"]],
        ),
    ],
    ids=["plain", "secure"],
)
def test_every_round_reports_its_exchanges_within_its_seconds(
    tmp_path: Path, secure: bool, stages: list[list[str]]
) -> None:
    """Round 2's train exchange (which also scores round 1's model) is round 2's; the
    evaluate exchange after the last round is the last round's."""
    document = _run(tmp_path, secure=secure)
    assert document["status"] == "completed"
    assert [r["round"] for r in document["rounds"]] == [1, 2]
    for result, expected in zip(document["rounds"], stages, strict=True):
        exchanges = result["exchanges"]
        assert list(exchanges) == expected  # in the order they happened
        assert all(seconds > 0 for seconds in exchanges.values())
        assert sum(exchanges.values()) <= result["seconds"]


def test_the_checkpoint_keeps_the_exchanges_and_loads_one_written_without(
    tmp_path: Path,
) -> None:
    document = _run(tmp_path, secure=False)
    config = RunConfig(out_dir=str(tmp_path), rounds=3, resume=True)
    state, completed = load_checkpoint(tmp_path, config)
    assert completed == 2
    assert [r.exchanges for r in state.rounds] == [r["exchanges"] for r in document["rounds"]]
    # A checkpoint from before rounds kept their exchanges still loads (with none).
    path = tmp_path / CHECKPOINT_DIR / "state.json"
    saved = json.loads(path.read_text())
    for result in saved["rounds"]:
        del result["exchanges"]
    path.write_text(json.dumps(saved))
    state, completed = load_checkpoint(tmp_path, config)
    assert completed == 2
    assert [r.exchanges for r in state.rounds] == [{}, {}]
