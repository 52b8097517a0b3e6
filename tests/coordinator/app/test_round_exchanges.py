"""A plain round is one message exchange and a secure round two; a run ends with one evaluation.

Round r's train message also asks the banks to score the model it carries, round
r - 1's, and round r's unmask query also collects round r + 1's keys; one evaluate
exchange scores the last round's model. Each run goes through the coordinator's
ServerApp body and the banks' real ClientApp over
:class:`tests.support.fake_grid.FakeGrid`, which keeps every push (one exchange).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flwr.app import ArrayRecord, Message, MessageType

from coordinator.app.audit_trail import record_sha256
from credit import message_keys as keys
from credit.messages import EvaluateRequest, RoundInstructions
from credit.metrics import CreditMetrics, ScoreSummary, credit_metrics, summarize_scores
from credit.records import record_of
from credit.run_config import RunConfig
from participant.guard.bank import encoded_split, prepare_bank
from participant.guard.local_update import build_global_model
from participant.guard.settings import GuardSettings
from simulations.engine import SimulationPlan, plan_simulation
from tests.support.consortium import consortium_grid, exchanges, run_in_process
from tests.support.fake_grid import FakeGrid

ROUNDS = 3


@dataclass(frozen=True)
class Run:
    """A finished 2-bank, 3-round run: its plan, grid and ``metrics.json``."""

    plan: SimulationPlan
    grid: FakeGrid
    metrics: dict[str, Any]

    @property
    def out(self) -> Path:
        return Path(self.plan.config.out_dir)


def _run(out: Path, *, secure: bool) -> Run:
    config = RunConfig(out_dir=str(out), rounds=ROUNDS, seed=0, secure_aggregation=secure)
    plan = plan_simulation(config, n_banks=2)
    grid = consortium_grid(plan)
    run_in_process(plan, grid=grid)
    return Run(plan, grid, json.loads((out / "metrics.json").read_text()))


@pytest.fixture(scope="module", params=[False, True], ids=["plain", "secure"])
def run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Run:
    return _run(tmp_path_factory.mktemp("run"), secure=request.param)


def test_a_run_of_r_rounds_takes_r_train_exchanges_and_one_evaluation(run: Run) -> None:
    """Plain: R train + 1 evaluate (was 2R); secure: R train + R unmask + 1 evaluate (was 3R),
    besides the set-up's feature-stats query (and secure aggregation's first advertise)."""
    secure = run.plan.config.secure_aggregation
    one_round = ["train", "query:secagg-unmask"] if secure else ["train"]
    set_up = ["query:feature-stats", *(["query:secagg-advertise"] if secure else [])]
    assert exchanges(run.grid) == set_up + one_round * ROUNDS + ["evaluate"]
    assert run.metrics["status"] == "completed"
    stages = [list(result["exchanges"]) for result in run.metrics["rounds"]]
    merged = [stage.split(":")[-1].removeprefix("secagg-") for stage in one_round]
    assert stages == [merged] * (ROUNDS - 1) + [[*merged, "evaluate"]]


def _train_messages(grid: FakeGrid) -> list[Message]:
    """The first train message of every round, in order."""
    return [push[0] for push in grid.pushes if push[0].metadata.message_type == MessageType.TRAIN]


def test_round_r_asks_for_the_evaluation_of_round_r_minus_one(run: Run) -> None:
    asked = [EvaluateRequest.take_optional(m.content) for m in _train_messages(run.grid)]
    assert [None if a is None else a.server_round for a in asked] == [None, 1, 2]


def _models(grid: FakeGrid) -> list[tuple[RoundInstructions, ArrayRecord]]:
    """Each round's model as the banks were asked to score it, round 1 first.

    Round r's model travels in round r + 1's train message and, for the last round, in
    the final evaluate message.
    """
    scored = _train_messages(grid)[1:]
    scored += [push[0] for push in grid.pushes if push[0].metadata.message_type == "evaluate"]
    return [
        (
            RoundInstructions.take(m.content),
            record_of(m.content, keys.ARRAYS, ArrayRecord),
        )
        for m in scored
    ]


def _pooled_metrics(
    banks: tuple[GuardSettings, ...], instructions: RoundInstructions, arrays: ArrayRecord
) -> CreditMetrics:
    """The model scored on every bank's hold-out, as the guards score it, and pooled."""
    from participant.guard.training import predict_proba

    model = build_global_model(instructions, arrays)
    summaries = []
    for settings in banks:
        bank = prepare_bank(settings.source(), settings.holdout)
        split = encoded_split(bank, instructions.encoder)
        scores = predict_proba(model, split.test_x)
        summaries.append(summarize_scores(scores, split.test_y, instructions.score_bins))
    return credit_metrics(ScoreSummary.combine(summaries))


def test_each_rounds_metrics_are_those_of_its_own_model(run: Run) -> None:
    """metrics.json's round r is round r's model on the banks' hold-outs, and so is its
    audit entry (model hash and AUC), although the metrics arrive one exchange later."""
    models = _models(run.grid)
    assert [instructions.server_round for instructions, _ in models] == [2, 3, 3]
    log = run.out / "audit" / "coordinator.jsonl"
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    audited = [entry["data"] for entry in entries if entry["event"] == "round"]
    for result, entry, (instructions, arrays) in zip(
        run.metrics["rounds"], audited, models, strict=True
    ):
        expected = _pooled_metrics(run.plan.banks, instructions, arrays)
        assert result["auc"] == expected.auc  # histograms: exact
        assert result["ks"] == expected.ks
        assert result["loss"] == pytest.approx(expected.log_loss, rel=1e-12)  # float sums
        assert entry["server_round"] == result["round"]
        assert entry["model_sha256"] == record_sha256(arrays)
        assert entry["auc"] == result["auc"]
    final_instructions, final_arrays = models[-1]
    final = _pooled_metrics(run.plan.banks, final_instructions, final_arrays)
    assert run.metrics["final"]["auc"] == final.auc
    assert run.metrics["final"]["n_rows"] == final.n_rows
