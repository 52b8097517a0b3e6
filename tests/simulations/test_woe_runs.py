"""WoE/IV tables and the scorecard of whole consortia, in this process.

Three banks under secure aggregation, the real set-up release (per-class counts in
secure round 0), training, evaluation and output files, with Flower's transport
replaced by :class:`tests.support.fake_grid.FakeGrid`:

* without DP the run's ``woe_iv`` tables equal the tables of the banks' pooled training
  rows on the same bins (``credit.governance.woe``), to 1e-9: federated WoE/IV equals
  pooled, end to end;
* ``--encoding woe`` trains a logistic regression on WoE inputs and writes
  ``model/scorecard.csv``, whose unrounded scores are the saved model's probabilities
  (1e-9) and whose AUC is the model's; its AUC is within 0.005 of the binned run's on
  the same seed (measured: 0.7793 binned, 0.7752 woe, as released);
* with budgets each bank charges exactly one set-up release, of sensitivity sqrt(19)
  (13 numeric and 6 categorical model inputs), and ``privacy verify`` passes.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

from credit.encoding import EncodingKind, FeatureEncoder
from credit.feature_stats import released_features
from credit.governance import ScoreScaling, count_bins, woe_table
from credit.governance.woe import WoeTable
from credit.model_card import load_model
from credit.run_config import RunConfig
from credit.schema import DatasetSchema, embedded_schema_path, load_schema
from credit.woe_binning import layout_of, scorecard_of, tables_from_document
from participant.guard.in_process import guard_for
from privacy.budget import PrivacyBudget
from privacy.verify import verify_run
from simulations.budgets import BudgetPolicy
from simulations.engine import SimulationPlan, plan_simulation
from tests.support.consortium import run_in_process

BANKS = 3
SETTINGS: dict[str, Any] = {"rounds": 3, "local_epochs": 3, "seed": 0}
"""Three rounds of three local epochs: both encodings have nearly converged."""
AUC_GAP = 0.005
"""How far the WoE run's AUC may fall below the binned run's (measured 0.0041)."""


@pytest.fixture(scope="module")
def binned_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SimulationPlan]:
    out = tmp_path_factory.mktemp("binned")
    plan = plan_simulation(RunConfig(out_dir=str(out), **SETTINGS), n_banks=BANKS)
    run_in_process(plan)
    return out, plan


@pytest.fixture(scope="module")
def woe_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SimulationPlan]:
    out = tmp_path_factory.mktemp("woe")
    config = RunConfig(out_dir=str(out), encoding=EncodingKind.WOE, **SETTINGS)
    plan = plan_simulation(config, n_banks=BANKS)
    run_in_process(plan)
    return out, plan


def _metrics(out: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((out / "metrics.json").read_text())
    return document


def _rows(plan: SimulationPlan, *, held_out: bool) -> pd.DataFrame:
    """Every bank's training (or held-out) rows, as its guard split them."""
    parts = []
    for settings in plan.banks:
        bank = guard_for(settings).bank
        parts.append(bank.test if held_out else bank.train)
    return pd.concat(parts, ignore_index=True)


def _pooled_tables(
    encoder: FeatureEncoder, rows: pd.DataFrame, schema: DatasetSchema
) -> dict[str, WoeTable]:
    labels = rows[schema.target].to_numpy()
    indices = encoder.bin_indices(rows)
    return {
        e.name: woe_table(count_bins(indices[e.name], labels, layout_of(e)))
        for e in (*encoder.numeric, *encoder.categorical)
    }


def _assert_pooled(document: dict[str, Any], pooled: dict[str, WoeTable]) -> None:
    assert list(document) == list(pooled)
    for name, table in pooled.items():
        reported = document[name]
        assert [row["bin"] for row in reported["bins"]] == list(table.labels), name
        assert [row["events"] for row in reported["bins"]] == table.counts.events.tolist()
        assert [row["non_events"] for row in reported["bins"]] == table.counts.non_events.tolist()
        woe = np.array([row["woe"] for row in reported["bins"]])
        np.testing.assert_allclose(woe, table.woe, rtol=0, atol=1e-9, err_msg=name)
        assert reported["iv"] == pytest.approx(table.iv, abs=1e-9)


def test_a_secure_run_reports_the_woe_iv_tables_of_the_pooled_training_rows(
    binned_run: tuple[Path, SimulationPlan], schema: DatasetSchema
) -> None:
    out, plan = binned_run
    document = _metrics(out)
    assert document["secure_aggregation"] is not None and "scorecard" not in document
    encoder = load_model(out / "model").encoder
    pooled = _pooled_tables(encoder, _rows(plan, held_out=False), schema)

    _assert_pooled(document["woe_iv"], pooled)
    assert document["woe_iv"]["PAY_0"]["iv"] > 0.5  # the strongest characteristic
    assert len(document["woe_iv"]) == 19


def test_a_woe_run_writes_a_scorecard_that_reproduces_its_model(
    woe_run: tuple[Path, SimulationPlan], schema: DatasetSchema
) -> None:
    out, plan = woe_run
    document = _metrics(out)
    assert document["scorecard"] == {
        "pdo": 20.0,
        "base_score": 600.0,
        "base_odds": 50.0,
        "file": "model/scorecard.csv",
    }
    model = load_model(out / "model")
    assert model.encoder.kind is EncodingKind.WOE and model.spec.n_inputs == 19
    tables = tables_from_document(document["woe_iv"])
    # The reported tables are the pooled training rows' on the merged bins.
    _assert_pooled(
        document["woe_iv"], _pooled_tables(model.encoder, _rows(plan, held_out=False), schema)
    )

    state = model.module.state_dict()
    scorecard = scorecard_of(
        model.encoder,
        tables,
        weights=state["0.weight"].numpy(),
        bias=float(state["0.bias"].numpy()[0]),
        scaling=ScoreScaling(),
    )
    written = pd.read_csv(out / "model" / "scorecard.csv", keep_default_na=False)
    expected = scorecard.to_frame()
    assert list(written.columns) == ["feature", "bin", "woe", "coefficient", "points"]
    assert written[["feature", "bin"]].astype(str).equals(expected[["feature", "bin"]].astype(str))
    np.testing.assert_array_equal(written["points"], expected["points"])
    np.testing.assert_allclose(written["woe"], expected["woe"], rtol=1e-15)
    np.testing.assert_allclose(written["coefficient"], expected["coefficient"], rtol=1e-15)

    held_out = _rows(plan, held_out=True)
    indices = model.encoder.bin_indices(held_out)
    columns = np.column_stack([indices[name] for name in model.encoder.features])
    score = scorecard.score(columns)
    scaling = scorecard.scaling
    from_score = 1.0 / (1.0 + np.exp((score - scaling.offset) / scaling.factor))
    exact = _probabilities_in_float64(model.module, model.encoder.transform(held_out))
    np.testing.assert_allclose(from_score, exact, rtol=0, atol=1e-9)
    np.testing.assert_allclose(model.predict_proba(held_out), exact, rtol=0, atol=1e-6)
    labels = held_out[schema.target].to_numpy()
    assert roc_auc_score(labels, -score) == roc_auc_score(labels, exact)
    integer = scorecard.integer_score(columns)
    assert np.all(np.abs(integer - score) <= 19 / 2)
    # The model report shows both (it reads metrics.json and scorecard.csv back).
    report = (out / "report.html").read_text(encoding="utf-8")
    assert '<section id="scorecard">' in report and '<section id="woe-iv">' in report


def _probabilities_in_float64(module: torch.nn.Module, inputs: np.ndarray) -> np.ndarray:
    """The saved logistic regression's probabilities, computed in float64."""
    double = copy.deepcopy(module).double().eval()
    with torch.no_grad():
        logits = double(torch.from_numpy(inputs.astype(np.float64))).squeeze(-1)
    probabilities: np.ndarray = torch.sigmoid(logits).numpy()
    return probabilities


def test_the_woe_run_s_auc_is_within_a_few_thousandths_of_the_binned_run_s(
    binned_run: tuple[Path, SimulationPlan], woe_run: tuple[Path, SimulationPlan]
) -> None:
    binned = _metrics(binned_run[0])["final"]["auc"]
    woe = _metrics(woe_run[0])["final"]["auc"]
    assert binned - AUC_GAP <= woe, (binned, woe)


def test_a_private_run_charges_one_set_up_release_of_sensitivity_sqrt_f(tmp_path: Path) -> None:
    config = RunConfig(out_dir=str(tmp_path), rounds=1, batch_size=512, encoding=EncodingKind.WOE)
    policy = BudgetPolicy(default=PrivacyBudget(max_epsilon=2.0))
    run_in_process(plan_simulation(config, n_banks=BANKS, budgets=policy))

    document = _metrics(tmp_path)
    assert document["status"] == "completed" and document["refusals"] == []
    for ledger in document["privacy"].values():
        setup = [e for e in ledger["events"] if e["kind"] == "gaussian-release"]
        assert len(setup) == 1
        assert setup[0]["max_grad_norm"] == pytest.approx(math.sqrt(19))
        assert 0.0 < ledger["epsilon"] <= 2.0
    checks = verify_run(tmp_path)
    assert all(check.ok for check in checks), [check.problems for check in checks]
    # Verify recomputes sqrt(F) from the run's schema: with one of 23 model inputs
    # (protected columns as features) the releases' sensitivity is refused.
    wider = tmp_path.parent / f"{tmp_path.name}-wider.toml"
    wider.write_text(
        "protected_as_features = true\n" + embedded_schema_path().read_text(encoding="utf-8")
    )
    assert released_features(load_schema(wider)) == 23
    claimed = {**document, "config": {**document["config"], "schema": str(wider)}}
    claimed["schema"] = {**document["schema"], "sha256": load_schema(wider).schema_hash()}
    (tmp_path / "metrics.json").write_text(json.dumps(claimed))
    problems = [p for check in verify_run(tmp_path) for p in check.problems]
    assert len(problems) == 2 * BANKS  # each bank's summary, in metrics.json and its file
    assert all(
        "sensitivity 4.3589, but the run's schema has 23 model inputs" in p for p in problems
    )
    (tmp_path / "metrics.json").write_text(json.dumps(document))
    # Noisy tables, settled: whole, non-negative counts; the scorecard is still written.
    for table in document["woe_iv"].values():
        counts = [row[k] for row in table["bins"] for k in ("events", "non_events")]
        assert all(count >= 0 and count == int(count) for count in counts)
    assert (tmp_path / "model" / "scorecard.csv").is_file()
