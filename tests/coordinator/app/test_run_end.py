"""A run whose last evaluations fail keeps what it did: its model, its outputs, and why.

The run ends with evaluate-only exchanges (the last round's validation evaluation, then
the final evaluation of the kept model on the held-out rows, with the governance
release); under secure aggregation each is a secure round of its own. When one fails,
the run still completes with its kept model and writes every output; a failed final
evaluation is recorded as missing, with the reason, and never asked again: not of
other banks, and not by a resumed run.

Whole consortia in this process (:func:`tests.support.consortium.run_in_process`) on a
1,000-row sample of the embedded data over 3 banks (seed 1: every bank validates), and
a five-bank run with simulated dropouts on the whole data.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from flwr.app import Context, Message, MessageType
from flwr.clientapp.typing import ClientAppCallable, Mod

from coordinator.app.run_state import SelectedModel
from coordinator.app.selection import selection_lines
from credit.audit import load_public_key, verify_audit
from credit.messages import EvaluateRequest, EvaluationRows, QueryInstructions, Task
from credit.model_card import load_model
from credit.package import load_package
from credit.run_config import RunConfig
from simulations.engine import SimulationPlan, plan_simulation
from simulations.settings import PartitionSettings
from tests.support.consortium import consortium_grid, exchanges, run_in_process
from tests.support.fake_grid import FakeGrid

SAMPLE_ROWS = 1_000
GONE = "lost before revealing its shares"
MISSING = "its held-out metrics, calibration and fairness are missing, and it is not asked again"


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory, embedded_frame: pd.DataFrame) -> Path:
    """1,000 rows of the embedded data (a small consortium's)."""
    path = tmp_path_factory.mktemp("sample") / "rows.csv"
    embedded_frame.sample(n=SAMPLE_ROWS, random_state=0).to_csv(path, index=False)
    return path


def _plan(out: Path, sample: Path, **settings: Any) -> SimulationPlan:
    config = RunConfig(out_dir=str(out), rounds=2, seed=1, **settings)
    return plan_simulation(config, n_banks=3, partition=PartitionSettings(data=str(sample)))


def _metrics(out: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((out / "metrics.json").read_text())
    return document


def _raising(bank: int, when: Callable[[Message], bool]) -> Mod:
    """A mod under which partition ``bank``'s handler raises for messages ``when`` matches."""

    def mod(message: Message, context: Context, call_next: ClientAppCallable) -> Message:
        if context.node_config.get("partition-id") == bank and when(message):
            raise RuntimeError(GONE)
        return call_next(message, context)

    return mod


def _unmask_of(server_round: int) -> Callable[[Message], bool]:
    """Matches the unmask query of secure round ``server_round``."""

    def matches(message: Message) -> bool:
        if message.metadata.message_type != MessageType.QUERY:
            return False
        query = QueryInstructions.take(message.content)
        return query.task == Task.SECAGG_UNMASK and query.server_round == server_round

    return matches


def _is_evaluate(message: Message) -> bool:
    return message.metadata.message_type == MessageType.EVALUATE


def _held_out_requests(grid: FakeGrid) -> dict[int, int]:
    """Per node, how many evaluate messages asked it to score its held-out rows."""
    asked: dict[int, int] = {}
    for push in grid.pushes:
        for message in push:
            if not _is_evaluate(message):
                continue
            request = EvaluateRequest.take_optional(message.content)
            if request is None or request.rows == EvaluationRows.TEST:
                node = message.metadata.dst_node_id
                asked[node] = asked.get(node, 0) + 1
    return asked


def _run_end(out: Path) -> dict[str, Any]:
    """The data of the coordinator's last audit entry (checked to be run-end)."""
    log = out / "audit" / "coordinator.jsonl"
    assert verify_audit(log).closed
    last = json.loads(log.read_text().splitlines()[-1])
    assert last["event"] == "run-end"
    data: dict[str, Any] = last["data"]
    return data


def _check_written_without_final(out: Path, document: dict[str, Any]) -> None:
    """Every output is there; nothing of another model stands in for the final evaluation."""
    for name in ("metrics.json", "rounds.png", "report.html", "model"):
        assert (out / name).exists(), name
    # the kept model is a signed package even without its final evaluation
    package = load_package(out / "model", signer=load_public_key(out / "audit" / "coordinator.pub"))
    assert package.scoring.development is None
    assert package.scoring.development_missing == (
        "the run's final model was not scored (no score_histograms)"
    )
    assert document["status"] == "completed"
    assert document["final"] == {}
    assert document["score_histograms"] is None
    assert not {"calibration", "fairness", "governance"} & set(document)
    end = _run_end(out)
    assert end["status"] == "completed" and end["final_auc"] is None
    assert end["final_missing"] == document["final_missing"]
    checkpoint = json.loads((out / "checkpoint" / "state.json").read_text())
    assert checkpoint["final_missing"] == document["final_missing"]
    report = (out / "report.html").read_text(encoding="utf-8")
    assert 'id="summary"' in report and "Missing: the evaluation of round" in report
    assert 'id="calibration"' not in report and 'id="performance"' not in report


def test_a_final_evaluation_aborted_at_unmask_keeps_the_model_and_says_why(
    tmp_path: Path, sample: Path
) -> None:
    """Secure aggregation, validation parts, 2 rounds: round 2's validation is summed in
    secure round 3, the kept model's final evaluation in secure round 4, where bank-2
    fails at unmask (3 banks, threshold 3). The run completes with the kept model and
    every output; the final evaluation is asked once, and not again on resume."""
    plan = _plan(tmp_path, sample)
    grid = consortium_grid(plan, mods=[_raising(1, _unmask_of(4))])
    events: list[str] = []
    run_in_process(plan, grid=grid, on_event=events.append)

    document = _metrics(tmp_path)
    best = document["best_round"]
    assert best in (1, 2) and all(r["auc"] is not None for r in document["rounds"])
    assert document["final_missing"].startswith(
        f"the evaluation of round {best}'s model on the held-out rows failed (2 usable "
        "replies, 3 required: round 4: aborted at 'unmask': 2 bank(s) left, 3 required"
    )
    assert document["final_missing"].endswith(
        f"{MISSING} (the banks make that release once per run)"
    )
    assert document["selection"]["round"] == best
    _check_written_without_final(tmp_path, document)
    assert load_model(tmp_path / "model").card["selection"]["round"] == best
    assert f"final evaluation on the held-out rows: missing: {document['final_missing']}" in events
    # One request for the held-out rows per bank; nothing was asked after its secure round.
    assert sorted(_held_out_requests(grid).values()) == [1, 1, 1]
    assert exchanges(grid)[-3:] == ["evaluate", "query:secagg-consistency", "query:secagg-unmask"]

    # Resumed (a new Flower run), the same rounds: nothing is asked again, the record stands.
    resumed = dataclasses.replace(plan, config=plan.config.model_copy(update={"resume": True}))
    again = consortium_grid(resumed, run_id=2)
    events.clear()
    run_in_process(resumed, grid=again, on_event=events.append)
    assert exchanges(again) == ["query:enroll"]
    assert _metrics(tmp_path)["final_missing"] == document["final_missing"]
    assert any(line.endswith("before the run resumed: not asked again") for line in events)
    _check_written_without_final(tmp_path, _metrics(tmp_path))


def test_a_failed_last_evaluation_without_validation_parts_leaves_the_last_round_unscored(
    tmp_path: Path, sample: Path
) -> None:
    """In the clear, no validation parts: the last model's evaluate handler raises at two
    of three banks (min-banks 2). Round 1's metrics do not stand in for round 2's model."""
    plan = _plan(tmp_path, sample, secure_aggregation=False, validation_fraction=0.0)
    grid = consortium_grid(plan, mods=[_raising(bank, _is_evaluate) for bank in (0, 2)])
    run_in_process(plan, grid=grid)

    document = _metrics(tmp_path)
    assert [r["auc"] is None for r in document["rounds"]] == [False, True]
    assert document["final_missing"].startswith(
        "the evaluation of round 2's model on the held-out rows failed (1 usable replies, "
        "2 required: node "
    )
    assert GONE in document["final_missing"] and MISSING in document["final_missing"]
    _check_written_without_final(tmp_path, document)
    assert sorted(_held_out_requests(grid).values()) == [1, 1, 1]
    assert exchanges(grid)[-1] == "evaluate" and exchanges(grid).count("evaluate") == 1
    checkpoint = json.loads((tmp_path / "checkpoint" / "state.json").read_text())
    assert checkpoint["pending"] is None  # settled unscored: a resumed run does not ask again


def test_a_failed_last_validation_keeps_the_best_round_validated_before(
    tmp_path: Path, sample: Path
) -> None:
    """bank-2 fails at the unmask of secure round 3, which sums round 2's validation: round
    2 stays not evaluated, round 1's model is kept and scored on the held-out rows."""
    plan = _plan(tmp_path, sample)
    grid = consortium_grid(plan, mods=[_raising(1, _unmask_of(3))])
    run_in_process(plan, grid=grid)

    document = _metrics(tmp_path)
    assert [r["auc"] is None for r in document["rounds"]] == [False, True]
    assert document["best_round"] == 1 and document["selection"]["last_round"] == 2
    assert document["final_missing"] is None
    assert document["final"]["n_rows"] > 0 and "calibration" in document
    assert load_model(tmp_path / "model").card["selection"]["round"] == 1


def test_a_secure_run_with_validation_parts_and_simulated_dropouts_completes(
    tmp_path: Path,
) -> None:
    """Five banks, dropout rate 0.2, seed 218: rounds 1 and 2 each lose a bank (at unmask,
    at train), round 2's validation (secure round 3) loses none, and the final
    evaluation's secure round 4 loses two of five (threshold 4). The run completes."""
    config = RunConfig(out_dir=str(tmp_path), rounds=2, seed=218)
    plan = plan_simulation(config, n_banks=5, dropout_rate=0.2)
    grid = consortium_grid(plan)
    run_in_process(plan, grid=grid)

    document = _metrics(tmp_path)
    assert [r["round"] for r in document["rounds"]] == [1, 2]
    assert document["rounds"][1]["dropped"] == ["bank-4"]
    assert all(r["auc"] is not None for r in document["rounds"])
    assert "round 4: aborted at " in document["final_missing"]
    _check_written_without_final(tmp_path, document)
    assert max(_held_out_requests(grid).values()) == 1


def test_selection_lines_say_why_the_final_evaluation_is_missing() -> None:
    kept = SelectedModel(server_round=3, metrics=None, validation_auc=0.74, last_round=5)
    lines = selection_lines(kept, missing="its secure sum was aborted")
    assert lines[1] == "final evaluation on the held-out rows: missing: its secure sum was aborted"
    assert selection_lines(kept)[1] == "final evaluation on the held-out rows: not evaluated"
