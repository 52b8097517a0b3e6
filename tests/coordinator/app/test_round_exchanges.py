"""A plain round is one message exchange and a secure round two; a run ends with one evaluation.

Round r's train message also asks the banks to score the model it carries, round
r - 1's, and round r's unmask query also collects round r + 1's keys; one evaluate
exchange scores the last round's model (under secure aggregation a secure round of
its own: evaluate, then unmask). Under secure aggregation the evaluations travel
only inside the masked vectors. Each run goes through the coordinator's ServerApp
body and the banks' real ClientApp over :class:`tests.support.fake_grid.FakeGrid`,
which keeps every push (one exchange).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flwr.app import ArrayRecord, Context, Message, MessageType
from flwr.clientapp.typing import ClientAppCallable

from coordinator.app.audit_trail import record_sha256
from credit import message_keys as keys
from credit.messages import EvaluateRequest, RoundInstructions
from credit.metrics import (
    LOG_LOSS_BOUND,
    SUM_WEIGHT,
    CreditMetrics,
    ScoreSummary,
    credit_metrics,
    summarize_scores,
)
from credit.records import record_of
from credit.run_config import RunConfig
from participant.guard.bank import encoded_split, prepare_bank
from participant.guard.local_update import build_global_model
from participant.guard.settings import GuardSettings
from privacy.secagg.fixed_point import FixedPoint
from simulations.engine import SimulationPlan, plan_simulation
from tests.support.consortium import (
    consortium_grid,
    exchanges,
    run_in_process,
    set_up_exchanges,
)
from tests.support.fake_grid import FakeGrid

ROUNDS = 3
BANKS = 3
"""Secure aggregation's smallest roster."""


@dataclass(frozen=True)
class Reply:
    """What a bank's reply carried: its message's type, its records, their arrays."""

    message_type: str
    records: frozenset[str]
    arrays: dict[str, frozenset[str]]


@dataclass(frozen=True)
class Run:
    """A finished 2-bank, 3-round run: its plan, grid, ``metrics.json`` and banks' replies."""

    plan: SimulationPlan
    grid: FakeGrid
    metrics: dict[str, Any]
    replies: list[Reply]

    @property
    def out(self) -> Path:
        return Path(self.plan.config.out_dir)


def _run(out: Path, *, secure: bool) -> Run:
    config = RunConfig(  # no validation parts: the selection's exchanges, test_model_selection
        out_dir=str(out), rounds=ROUNDS, seed=0, secure_aggregation=secure, validation_fraction=0
    )
    plan = plan_simulation(config, n_banks=BANKS)
    replies: list[Reply] = []

    def record(message: Message, context: Context, call_next: ClientAppCallable) -> Message:
        reply = call_next(message, context)
        arrays = {key: frozenset(r) for key, r in reply.content.array_records.items()}
        # Every answered reply also carries the bank's audit-log head (its own record).
        records = frozenset(reply.content) - {keys.AUDIT_HEAD}
        replies.append(Reply(message.metadata.message_type, records, arrays))
        return reply

    grid = consortium_grid(plan, mods=[record])
    run_in_process(plan, grid=grid)
    return Run(plan, grid, json.loads((out / "metrics.json").read_text()), replies)


@pytest.fixture(scope="module", params=[False, True], ids=["plain", "secure"])
def run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Run:
    return _run(tmp_path_factory.mktemp("run"), secure=request.param)


def test_a_run_of_r_rounds_takes_r_train_exchanges_and_one_evaluation(run: Run) -> None:
    """Plain: R train + 1 evaluate (was 2R); secure: R train + R unmask + the last model's
    secure evaluation, evaluate + unmask (was 3R), besides the set-up's feature-stats query
    (under secure aggregation: join, advertise, masked statistics, unmask). Round R's
    unmask exchange collected the keys of the evaluation's secure round: no advertise
    exchange before it."""
    secure = run.plan.config.secure_aggregation
    one_round = (
        ["train", "query:secagg-consistency", "query:secagg-unmask"] if secure else ["train"]
    )
    set_up = set_up_exchanges(secure=secure)
    last = (
        ["evaluate", "query:secagg-consistency", "query:secagg-unmask"] if secure else ["evaluate"]
    )
    assert exchanges(run.grid) == set_up + one_round * ROUNDS + last
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


def test_evaluations_travel_beside_plain_updates_and_only_masked_under_secure_aggregation(
    run: Run,
) -> None:
    """In the clear, round r >= 2's train replies carry round r - 1's evaluation beside
    the update, and evaluate replies (of the last model) carry theirs and the governance
    sums; under secure aggregation every train and evaluate reply is one masked vector
    (and, for training, its metrics record)."""
    trained = [r for r in run.replies if r.message_type == MessageType.TRAIN]
    evaluated = [r for r in run.replies if r.message_type == MessageType.EVALUATE]
    assert len(trained) == BANKS * ROUNDS and len(evaluated) == BANKS
    scored = {keys.EVALUATION_SCORES, keys.EVALUATION}
    if run.plan.config.secure_aggregation:
        masked = {keys.ARRAYS: frozenset({keys.SECAGG_MASKED})}
        assert all(r.records == {keys.ARRAYS, keys.METRICS} for r in trained)
        assert all(r.records == {keys.ARRAYS} for r in evaluated)
        assert all(r.arrays == masked for r in trained + evaluated)
        return
    expected = [False] * BANKS + [True] * (BANKS * ROUNDS - BANKS)
    assert [scored <= r.records for r in trained] == expected
    assert all(r.records == {keys.SCORES, keys.METRICS, keys.GOVERNANCE_SUMS} for r in evaluated)


def _log_loss_tolerance(run: Run, n_rows: int) -> float:
    """How far the pooled log loss may be from the exact one: 0 in the clear.

    Under secure aggregation each bank's log-loss sum / ln(1000), scaled by
    ``SUM_WEIGHT``, is encoded with ``FixedPoint.for_totals``: half a unit of error per
    bank.
    """
    if not run.plan.config.secure_aggregation:
        return 0.0
    banks = len(run.plan.banks)
    unit = 1.0 / FixedPoint.for_totals(participants=banks).scale
    return banks * unit / 2 / SUM_WEIGHT * LOG_LOSS_BOUND / n_rows


def test_each_rounds_metrics_are_those_of_its_own_model(run: Run) -> None:
    """metrics.json's round r is round r's model on the banks' hold-outs, and so is its
    audit entry (model hash and AUC), although the metrics arrive one exchange later.
    Histograms of whole counts are summed exactly, securely too."""
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
        tolerance = _log_loss_tolerance(run, expected.n_rows)
        assert result["loss"] == pytest.approx(expected.log_loss, rel=1e-12, abs=tolerance)
        assert entry["server_round"] == result["round"]
        assert entry["model_sha256"] == record_sha256(arrays)
        assert entry["auc"] == result["auc"]
    final_instructions, final_arrays = models[-1]
    final = _pooled_metrics(run.plan.banks, final_instructions, final_arrays)
    assert run.metrics["final"]["auc"] == final.auc
    assert run.metrics["final"]["n_rows"] == final.n_rows
