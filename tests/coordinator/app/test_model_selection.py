"""Model selection on the banks' validation parts: the best round kept, early stopping.

Whole consortia in this process (:func:`tests.support.consortium.run_in_process`) on a
1,000-row sample of the embedded data over 3 banks: the rounds are scored on the banks'
validation parts, the run keeps the round with the best validation AUC, and only that
model is scored on the held-out rows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from coordinator.app.run_state import RoundResult, SelectedModel
from coordinator.app.selection import selection_lines, stop_reason
from credit.audit import verify_audit
from credit.metrics import CreditMetrics, credit_metrics, summarize_scores
from credit.model_card import load_model
from credit.run_config import RunConfig
from participant.guard.in_process import guard_for
from participant.guard.settings import EvaluationPolicy
from simulations.engine import SimulationPlan, plan_simulation
from simulations.settings import PartitionSettings
from tests.support.checks import check_resumed_run_equals_the_uninterrupted_run
from tests.support.consortium import consortium_grid, run_in_process

SAMPLE_ROWS = 1_000
MIN_ROWS = EvaluationPolicy().min_holdout_rows


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory, embedded_frame: pd.DataFrame) -> Path:
    """1,000 rows of the embedded data (a small consortium's)."""
    path = tmp_path_factory.mktemp("sample") / "rows.csv"
    embedded_frame.sample(n=SAMPLE_ROWS, random_state=0).to_csv(path, index=False)
    return path


def _plan(out: Path, sample: Path, **settings: Any) -> SimulationPlan:
    config = RunConfig(out_dir=str(out), **settings)
    return plan_simulation(config, n_banks=3, partition=PartitionSettings(data=str(sample)))


def _metrics(out: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((out / "metrics.json").read_text())
    return document


def _rows(banks: tuple[Any, ...], part: str) -> int:
    """The banks' pooled rows of ``part`` (``test`` or ``validation``), as their guards split."""
    return sum(len(getattr(guard_for(bank).bank, part)) for bank in banks)


def _best(rounds: list[dict[str, Any]]) -> int:
    """The first round with the largest AUC among the scored ones."""
    scored = [r for r in rounds if r["auc"] is not None]
    top = max(r["auc"] for r in scored)
    return int(next(r["round"] for r in scored if r["auc"] == top))


@pytest.fixture(scope="module")
def selected_run(tmp_path_factory: pytest.TempPathFactory, sample: Path) -> tuple[Path, list[str]]:
    """4 plain rounds on 3 banks of the sample; the progress lines."""
    out = tmp_path_factory.mktemp("selected")
    lines: list[str] = []
    plan = _plan(out, sample, rounds=4, seed=1, secure_aggregation=False)
    run_in_process(plan, on_event=lines.append)
    return out, lines


def test_rounds_are_scored_on_validation_parts_and_only_the_kept_model_on_held_out_rows(
    selected_run: tuple[Path, list[str]], sample: Path
) -> None:
    out, _ = selected_run
    document = _metrics(out)
    banks = _plan_banks(out, sample)
    checkpoint = json.loads((out / "checkpoint" / "state.json").read_text())
    validated = [r["metrics"]["n_rows"] for r in checkpoint["rounds"]]
    assert document["rounds_scored_on"] == "validation"
    # a bank validating on fewer rows than its policy's minimum (50) releases nothing
    released = [b for b in banks if len(guard_for(b).bank.validation) >= MIN_ROWS]
    assert 2 <= len(released) <= 3
    assert validated == [_rows(tuple(released), "validation")] * 4
    assert document["final"]["n_rows"] == _rows(banks, "test")
    assert document["best_round"] == _best(document["rounds"])
    assert document["selection"]["round"] == document["best_round"]
    assert document["selection"]["last_round"] == 4


def test_the_saved_model_is_the_kept_round_s_and_scores_the_final_metrics(
    selected_run: tuple[Path, list[str]], sample: Path
) -> None:
    """Scored again on the banks' held-out rows (exact sums, no budgets), the saved model
    gives the final metrics: the final evaluation scored the kept model, not the last."""
    out, _ = selected_run
    document = _metrics(out)
    model = load_model(out / "model")
    frames = [guard_for(bank).bank.test for bank in _plan_banks(out, sample)]
    held_out = pd.concat(frames)
    target = guard_for(_plan_banks(out, sample)[0]).bank.schema.target
    summary = summarize_scores(model.predict_proba(held_out), held_out[target].to_numpy(), 100)
    assert credit_metrics(summary).auc == pytest.approx(document["final"]["auc"], abs=1e-12)
    assert model.card["selection"]["round"] == document["best_round"]


def _plan_banks(out: Path, sample: Path) -> tuple[Any, ...]:
    """The selected run's banks, as its plan made them (same seed: same files and salt)."""
    return _plan(out.parent / f"{out.name}-again", sample, rounds=4, seed=1).banks


def test_the_console_says_which_round_was_kept_and_whether_it_was_still_improving(
    selected_run: tuple[Path, list[str]],
) -> None:
    out, lines = selected_run
    document = _metrics(out)
    best = document["best_round"]
    assert any(line.startswith(f"kept round {best}'s model (best validation AUC") for line in lines)
    still = "the model was still improving at the last round (round 4): more rounds may help"
    assert (still in lines) == (best == 4)
    assert document["selection"]["still_improving"] == (best == 4)


def test_selection_lines_say_a_model_was_still_improving_only_at_the_last_round() -> None:
    metrics = CreditMetrics.from_dict(
        {"auc": 0.75, "ks": 0.4, "gini": 0.5, "brier": 0.15, "log_loss": 0.45,
         "accuracy": 0.8, "f1": 0.5, "f1_threshold": 0.3, "n_rows": 200,
         "default_rate": 0.22}
    )  # fmt: skip
    last = SelectedModel(server_round=10, metrics=metrics, validation_auc=0.74, last_round=10)
    earlier = SelectedModel(server_round=6, metrics=metrics, validation_auc=0.74, last_round=10)
    unvalidated = SelectedModel(server_round=10, metrics=None, validation_auc=None, last_round=10)
    message = "the model was still improving at the last round (round 10): more rounds may help"
    assert selection_lines(last)[-1] == message
    assert message not in selection_lines(earlier)
    assert selection_lines(earlier)[0].startswith("kept round 6's model (best validation AUC 0.74")
    assert message not in selection_lines(unvalidated)
    assert selection_lines(unvalidated)[1].endswith("not evaluated")


def _round(server_round: int, auc: float | None) -> RoundResult:
    metrics = None
    if auc is not None:
        metrics = CreditMetrics.from_dict(
            {"auc": auc, "ks": 0.3, "gini": 2 * auc - 1, "brier": 0.2, "log_loss": 0.5,
             "accuracy": 0.8, "f1": 0.4, "f1_threshold": 0.3, "n_rows": 100,
             "default_rate": 0.2}
        )  # fmt: skip
    return RoundResult(server_round=server_round, metrics=metrics, train_loss=None, banks=(),
                       seconds=0.0)  # fmt: skip


@pytest.mark.parametrize(
    ("aucs", "patience", "stops"),
    [
        ([0.70, 0.72, 0.71, 0.70], 2, True),
        ([0.70, 0.72, 0.71, None], 2, False),  # an unscored round does not count
        ([0.70, 0.72, 0.71], 2, False),
        ([0.70, 0.72, 0.71, 0.70], 0, False),  # patience 0: never stops
    ],
)
def test_early_stopping_counts_validated_rounds_after_the_best(
    aucs: list[float | None], patience: int, stops: bool
) -> None:
    rounds = [_round(r, auc) for r, auc in enumerate(aucs, start=1)]
    reason = stop_reason(rounds, best_round=2, patience=patience)
    assert (reason is not None) == stops
    if stops:
        assert reason == (
            "the validation AUC has not improved for 2 validated rounds after round 2 (patience 2)"
        )


def test_a_run_stops_early_and_keeps_its_best_round(tmp_path: Path, sample: Path) -> None:
    """Many local steps on small banks overfit within a few rounds: with patience 1 the
    run stops early, keeps its best round's model and says why."""
    plan = _plan(tmp_path, sample, rounds=8, seed=0, secure_aggregation=False, local_steps=100,
                 patience=1)  # fmt: skip
    lines: list[str] = []
    run_in_process(plan, on_event=lines.append)
    document = _metrics(tmp_path)
    rounds = document["rounds"]
    assert document["stopped_early"] is not None
    assert len(rounds) < 8
    best = document["best_round"]
    assert best == _best(rounds)
    after = [r for r in rounds if r["round"] > best and r["auc"] is not None]
    assert len(after) >= 1 and all(r["auc"] <= rounds[best - 1]["auc"] for r in after)
    assert any(line.startswith(f"stopped early after round {len(rounds)}") for line in lines)
    assert document["status"] == "completed"


def test_a_resumed_run_with_validation_parts_equals_the_uninterrupted_one(
    tmp_path: Path, sample: Path
) -> None:
    """Secure aggregation, 3 rounds, cut after round 2 (whose final evaluation was made)
    and resumed: the rounds and the final evaluation of the kept model are the
    uninterrupted run's, to the last bit (one torch thread, same seeds)."""

    def run(out: Path, **settings: Any) -> dict[str, Any]:
        plan = _plan(out, sample, seed=1, **settings)
        run_id = 2 if plan.config.resume else 1
        run_in_process(plan, grid=consortium_grid(plan, run_id=run_id))
        return _metrics(out)

    whole = run(tmp_path / "whole", rounds=3)
    first = run(tmp_path / "cut", rounds=2)
    resumed = run(tmp_path / "cut", rounds=3, resume=True)
    check_resumed_run_equals_the_uninterrupted_run(
        tmp_path / "cut",
        first=first,
        resumed=resumed,
        whole=whole,
        auc_tolerance=0.0,
        train_loss_tolerance=0.0,
    )
    assert resumed["best_round"] == whole["best_round"]
    assert np.isfinite(resumed["final"]["auc"])


def test_a_private_run_scoring_every_round_plans_the_final_evaluation_and_verifies(
    tmp_path: Path, sample: Path
) -> None:
    """Under budgets, with every round scored: the banks plan each round's validation
    evaluation and the kept model's final one, so none is refused, and every ledger
    verifies (each evaluation charged as an evaluation release)."""
    from privacy.budget import PrivacyBudget
    from privacy.verify import verify_run
    from simulations.budgets import BudgetPolicy

    config = RunConfig(out_dir=str(tmp_path), rounds=3, seed=1, secure_aggregation=False,
                       evaluate_every=1, batch_size=32)  # fmt: skip
    policy = BudgetPolicy(default=PrivacyBudget(max_epsilon=4.0))
    plan = plan_simulation(
        config, n_banks=3, partition=PartitionSettings(data=str(sample)), budgets=policy
    )
    run_in_process(plan)
    document = _metrics(tmp_path)
    assert document["refusals"] == []
    assert document["final"]["n_rows"] > 0
    assert document["selection"]["validation_auc"] is not None
    assert all(check.ok for check in verify_run(tmp_path))
    validates = {
        bank.bank_name: len(guard_for(bank).bank.validation) >= MIN_ROWS for bank in plan.banks
    }
    assert any(validates.values())
    for name, summary in document["privacy"].items():
        kinds = [event["kind"] for event in summary["events"]]
        # 3 validations (a bank below 50 validation rows declines them, uncharged), the
        # final evaluation and the governance release
        expected = (3 if validates[name] else 0) + 2
        assert kinds.count("evaluation-release") == expected


def _bank_events(out: Path, event: str) -> dict[str, list[dict[str, Any]]]:
    """Each bank's audit-log entries of kind ``event`` (``OUT/audit/<bank>.jsonl``)."""
    logs = sorted(path for path in (out / "audit").glob("*.jsonl") if path.stem != "coordinator")
    assert logs, f"no bank audit logs in {out / 'audit'}"
    return {
        path.stem: [
            entry
            for entry in (json.loads(line) for line in path.read_text().splitlines())
            if entry["event"] == event
        ]
        for path in logs
    }


@pytest.mark.parametrize("patience", [0, 1])
def test_a_secure_run_with_validation_parts_ends_once_in_every_bank_s_audit_log(
    tmp_path: Path, sample: Path, patience: int
) -> None:
    """Under secure aggregation a bank records run-end once, when it releases its
    held-out evaluation of the kept model: not when it scores a validation part past
    the planned rounds, and also after an early stop well before them."""
    plan = _plan(tmp_path, sample, rounds=6, seed=0, local_steps=100, patience=patience)
    run_in_process(plan)
    document = _metrics(tmp_path)
    assert (document["stopped_early"] is not None) == (patience == 1)
    ends = _bank_events(tmp_path, "run-end")
    evaluations = _bank_events(tmp_path, "evaluate")
    for bank, entries in ends.items():
        assert len(entries) == 1, f"{bank}: {entries}"
        last = evaluations[bank][-1]["data"]
        assert last["server_round"] == document["best_round"] == entries[0]["data"]["server_round"]
        # run-end is the log's last entry: no request of the run is answered after it
        assert verify_audit(tmp_path / "audit" / f"{bank}.jsonl").closed, bank
