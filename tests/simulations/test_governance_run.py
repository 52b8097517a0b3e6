"""The last model's calibration and fairness from the banks' governance release, in process.

Whole consortia (the real ServerApp body, RunDriver, ClientApp handlers, secure
aggregation, ledgers; Flower's transport replaced by
:class:`tests.support.fake_grid.FakeGrid`) write ``metrics.json``'s ``calibration`` and
``fairness``. Without privacy budgets the banks' sums are exact, in the clear and under
secure aggregation (its 64-bit ring with 32 fraction bits for these sums), so the
report equals the same statistics computed directly on the pooled held-out rows with
the saved model's predictions, and Fairlearn's ``MetricFrame`` on those predictions.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fairlearn.metrics as fm
import numpy as np
import pandas as pd
import pytest
from numpy.typing import NDArray

from credit.governance.calibration import calibration_report, calibration_sums
from credit.governance.fairness import fairness_report, fairness_sums
from credit.governance.groups import Grouping
from credit.governance.recalibration import brier_change, fit_isotonic, fit_platt
from credit.governance.release import governance_sensitivity, schema_groupings
from credit.metrics import EVALUATION_SENSITIVITY
from credit.model_card import load_model
from credit.run_config import RunConfig
from credit.schema import DatasetSchema
from participant.guard.in_process import guard_for
from participant.guard.settings import EvaluationPolicy
from privacy.budget import PrivacyBudget
from privacy.verify import verify_run
from simulations.budgets import BudgetPolicy
from simulations.engine import SimulationPlan, plan_simulation
from tests.support.consortium import run_in_process

CUTOFF = 0.3
"""The run's decision cut-off (a multiple of 1/100: the default score bins)."""
DECLINING = "bank-4"
"""The secure run's bank that holds out too few rows for its policy: it adds zeros."""


@dataclass(frozen=True)
class Run:
    """A finished run: its plan and ``metrics.json``."""

    plan: SimulationPlan
    out: Path
    document: dict[str, Any]


def _run(out: Path, n_banks: int, *, declining: Sequence[str] = (), **settings: Any) -> Run:
    config = RunConfig(rounds=1, out_dir=str(out), seed=5, decision_cutoff=CUTOFF, **settings)
    plan = plan_simulation(config, n_banks=n_banks)
    too_few = EvaluationPolicy(min_holdout_rows=10**6)
    banks = tuple(
        bank.model_copy(update={"evaluation": too_few}) if bank.bank_name in declining else bank
        for bank in plan.banks
    )
    plan = dataclasses.replace(plan, banks=banks)
    run_in_process(plan)
    document = json.loads((out / "metrics.json").read_text())
    return Run(plan=plan, out=out, document=document)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    return {
        "plain": _run(tmp_path_factory.mktemp("plain"), 3, secure_aggregation=False),
        "secure": _run(tmp_path_factory.mktemp("secure"), 4, declining=[DECLINING]),
    }


@dataclass(frozen=True)
class Pooled:
    """The releasing banks' held-out rows, pooled, with the saved model's predictions."""

    rows: pd.DataFrame
    predicted: NDArray[np.float64]
    observed: NDArray[np.int64]


def _pooled(run: Run) -> Pooled:
    model = load_model(run.out / "model")
    parts, predicted = [], []
    for settings in run.plan.banks:
        if settings.bank_name == DECLINING:
            continue
        test = guard_for(settings).bank.test
        parts.append(test)
        predicted.append(model.predict_proba(test))
    rows = pd.concat(parts, ignore_index=True)
    target = guard_for(run.plan.banks[0]).bank.schema.target
    return Pooled(rows, np.concatenate(predicted), rows[target].to_numpy(dtype=np.int64))


def _assert_close(actual: Any, expected: Any, where: str = "") -> None:
    """Equal structure; numbers within 1e-9 (booleans, None and text exactly)."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict) and set(actual) == set(expected), where
        for key in expected:
            _assert_close(actual[key], expected[key], f"{where}/{key}")
    elif isinstance(expected, list | tuple):
        assert isinstance(actual, list) and len(actual) == len(expected), where
        for index, (got, want) in enumerate(zip(actual, expected, strict=True)):
            _assert_close(got, want, f"{where}[{index}]")
    elif isinstance(expected, float) and not isinstance(actual, bool):
        assert actual == pytest.approx(expected, abs=1e-9), where
    else:
        assert actual == expected, where


@pytest.mark.parametrize("name", ["plain", "secure"])
def test_calibration_equals_the_pooled_held_out_rows(runs: dict[str, Run], name: str) -> None:
    run = runs[name]
    pooled = _pooled(run)
    sums = calibration_sums(pooled.predicted, pooled.observed, 10)
    direct = calibration_report(sums)
    isotonic, platt = fit_isotonic(sums), fit_platt(sums)

    calibration = run.document["calibration"]

    assert direct.n_rows == len(pooled.rows)
    _assert_close(
        {key: calibration[key] for key in ("ece", "brier", "n_rows", "bins")}, direct.as_dict()
    )
    assert direct.brier == pytest.approx(np.mean((pooled.predicted - pooled.observed) ** 2))
    recalibration = calibration["recalibration"]
    for method, fitted in (("isotonic", isotonic), ("platt", platt)):
        change = brier_change(sums, fitted)
        _assert_close(
            [recalibration[method][key] for key in ("brier_before", "brier_after", "exact")],
            [change.before, change.after, change.exact],
            method,
        )
    _assert_close(recalibration["isotonic"]["values"], list(isotonic.values))
    _assert_close(
        [recalibration["platt"][k] for k in ("slope", "intercept")], [platt.slope, platt.intercept]
    )
    assert recalibration["isotonic"]["exact"] is True and recalibration["platt"]["exact"] is False


@pytest.mark.parametrize("name", ["plain", "secure"])
def test_fairness_equals_the_pooled_held_out_rows(
    runs: dict[str, Run], name: str, schema: DatasetSchema
) -> None:
    run = runs[name]
    pooled = _pooled(run)
    fairness = run.document["fairness"]

    assert list(fairness) == ["SEX", "EDUCATION", "MARRIAGE", "AGE"]
    for grouping in schema_groupings(schema):
        values = pooled.rows[grouping.column]
        sums = fairness_sums(values, grouping, pooled.predicted, pooled.observed, cutoff=CUTOFF)
        _assert_close(fairness[grouping.column], fairness_report(sums, grouping).as_dict())


def _labels(pooled: Pooled, grouping: Grouping) -> NDArray[np.str_]:
    return np.asarray(grouping.labels)[grouping.indices(pooled.rows[grouping.column])]


@pytest.mark.parametrize("name", ["plain", "secure"])
def test_fairness_equals_fairlearns_metric_frame(
    runs: dict[str, Run], name: str, schema: DatasetSchema
) -> None:
    run = runs[name]
    pooled = _pooled(run)
    truth = pooled.observed
    declined = (pooled.predicted >= CUTOFF).astype(np.int64)
    for grouping in schema_groupings(schema):
        report = run.document["fairness"][grouping.column]
        labels = _labels(pooled, grouping)
        frame = fm.MetricFrame(
            metrics={
                "selection_rate": fm.selection_rate,
                "tpr": fm.true_positive_rate,
                "fpr": fm.false_positive_rate,
                "count": fm.count,
            },
            y_true=truth,
            y_pred=declined,
            sensitive_features=labels,
        ).by_group
        assert sorted(report["groups"]) == sorted(frame.index)
        for group, entry in report["groups"].items():
            reference = frame.loc[group]
            assert entry["n"] == reference["count"]
            assert 1 - entry["approval_rate"] == pytest.approx(
                reference["selection_rate"], abs=1e-9
            )
            assert entry["fpr"] == pytest.approx(reference["fpr"], abs=1e-9)
            if entry["tpr"] is None:  # no defaulters: Fairlearn says 0, the report None
                assert reference["tpr"] == 0.0
            else:
                assert entry["tpr"] == pytest.approx(reference["tpr"], abs=1e-9)
        with_defaulters = np.isin(labels, np.unique(labels[truth == 1]))
        parity = fm.demographic_parity_difference(truth, declined, sensitive_features=labels)
        opportunity = fm.equal_opportunity_difference(
            truth[with_defaulters],
            declined[with_defaulters],
            sensitive_features=labels[with_defaulters],
        )
        false_alarms = fm.MetricFrame(
            metrics=fm.false_positive_rate,
            y_true=truth,
            y_pred=declined,
            sensitive_features=labels,
        ).difference()
        ratio = fm.demographic_parity_ratio(truth, 1 - declined, sensitive_features=labels)
        assert report["demographic_parity_difference"] == pytest.approx(parity, abs=1e-9)
        assert report["equal_opportunity_difference"] == pytest.approx(opportunity, abs=1e-9)
        assert report["equalized_odds_difference"] == pytest.approx(
            max(opportunity, false_alarms), abs=1e-9
        )
        assert report["adverse_impact_ratio"] == pytest.approx(ratio, abs=1e-9)


def test_the_report_says_whose_sums_it_holds(runs: dict[str, Run]) -> None:
    plain, secure = runs["plain"].document, runs["secure"].document

    assert plain["governance"]["banks"] == plain["calibration"]["banks"] == 3
    # bank-4 holds out too few rows: it adds zeros to the secure sum, as for its evaluation
    assert secure["governance"]["banks"] == secure["calibration"]["banks"] == 3
    assert secure["calibration"]["n_rows"] == secure["final"]["n_rows"]
    assert len(secure["participants"]) == 4
    assert secure["governance"] == {
        "banks": 3,
        "decision_cutoff": CUTOFF,
        "calibration_bins": 10,
        "score_bins": 100,
        "protected": ["SEX", "EDUCATION", "MARRIAGE", "AGE"],
        "noisy": False,
    }


def test_a_private_run_charges_one_governance_release_and_verifies(tmp_path: Path) -> None:
    config = RunConfig(out_dir=str(tmp_path), rounds=1, batch_size=256, secure_aggregation=False)
    policy = BudgetPolicy(default=PrivacyBudget(max_epsilon=1.0))
    run_in_process(plan_simulation(config, n_banks=2, budgets=policy))

    document = json.loads((tmp_path / "metrics.json").read_text())
    assert document["governance"]["banks"] == 2 and document["governance"]["noisy"] is True
    assert {"calibration", "fairness"} <= set(document)
    sensitivity = governance_sensitivity(4)
    for ledger in document["privacy"].values():
        releases = [e for e in ledger["events"] if e["kind"] == "evaluation-release"]
        (plan,) = [p for p in ledger["plans"] if p["kind"] == "evaluation"]
        # The last model's evaluation, and one more release: the governance sums.
        assert [e["max_grad_norm"] for e in releases] == [EVALUATION_SENSITIVITY, sensitivity]
        assert plan["planned_rounds"] == config.announced_evaluations(private=True) + 1 == 2
        assert {e["noise_multiplier"] for e in releases} == {plan["noise_multiplier"]}
        assert 0.9 < ledger["epsilon"] <= 1.0
    checks = verify_run(tmp_path)
    assert all(check.ok for check in checks), [check.problems for check in checks]
    assert math.isclose(sensitivity, math.sqrt(17))
