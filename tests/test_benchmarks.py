"""The benchmarks still run: a tiny measurement of each, with its output contract.

``bench/`` is not a package of the app; its helper modules import as ``bench._name``
from the repository root.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tomli_w

from bench._flower_xgb_bagging import (
    BankRows,
    bagged_model,
    local_tree,
    make_client_app,
    xgboost_params,
)
from bench._governance_checks import (
    MCAR_COLUMN,
    MNAR_COLUMN,
    blank,
    blanked_schema_document,
    fairness_difference,
    integer_scores,
    woe_iv_difference,
)
from credit.datasets import embedded_data_path
from credit.encoding import FeatureEncoder, StatsSource, fit_encoder
from credit.gbdt import BoostingParams
from credit.governance import ScoreScaling, count_bins, woe_table, write_scorecard_csv
from credit.governance.fairness import fairness_report, fairness_sums
from credit.governance.release import schema_groupings
from credit.governance.woe import WoeTable
from credit.loading import load_bank_csv
from credit.schema import load_schema
from credit.woe_binning import fit_woe_encoder, layout_of, scorecard_of, woe_iv_document
from tests.support.fake_grid import FakeGrid

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_secure_aggregation_benchmark_measures_both_systems(tmp_path: Path) -> None:
    out = tmp_path / "secagg.json"
    command = [sys.executable, "-m", "bench.secagg", "--sizes", "3x100", "--rounds", "2"]
    command += ["--repeats", "1", "--out", str(out)]
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    document = json.loads(out.read_text())
    assert document["complete"] is True
    (row,) = document["summary"]
    for system, secure in (("fedcredit", "secure"), ("flower", "secaggplus")):
        assert row[system]["ratio"] > 0
        for mode in (secure, "plain"):
            assert row[system][mode]["seconds_per_round"] > 0
    signing = row["fedcredit"]["secure"]
    assert signing["signature_ms_per_bank_per_round"] > 0
    # At 3 banks over 2 rounds: 2N a round (every member's signed keys and survivor-set
    # signature) and the roster's N enrollments, verified once per run.
    assert signing["signatures_per_bank_per_round"]["verify"] >= 2 * 3 + 3 / 2
    assert out.with_suffix(".md").read_text().startswith("| banks x params |")


# bench/governance.py: its measurements on known inputs (fast), and a tiny run (slow).


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    """The first 3,000 embedded rows, validated."""
    frame = load_bank_csv(embedded_data_path(), load_schema()).frame
    return frame.iloc[:3000].reset_index(drop=True)


def _binned() -> FeatureEncoder:
    return fit_encoder(load_schema(), source=StatsSource.PUBLIC)


def _tables(encoder: FeatureEncoder, rows: pd.DataFrame) -> dict[str, WoeTable]:
    labels = rows[load_schema().target].to_numpy()
    indices = encoder.bin_indices(rows)
    return {
        e.name: woe_table(count_bins(indices[e.name], labels, layout_of(e)))
        for e in (*encoder.numeric, *encoder.categorical)
    }


def test_the_woe_iv_oracle_agrees_with_the_tables_and_sees_a_difference(
    rows: pd.DataFrame,
) -> None:
    encoder = _binned()
    document = woe_iv_document(_tables(encoder, rows))
    target = load_schema().target

    assert woe_iv_difference(document, encoder, rows, target) <= 1e-12
    document["PAY_0"]["bins"][2]["woe"] += 1e-6
    assert woe_iv_difference(document, encoder, rows, target) == pytest.approx(1e-6, rel=1e-3)
    document["PAY_0"]["bins"][2]["events"] += 1
    assert woe_iv_difference(document, encoder, rows, target) == 1


def test_integer_scores_are_the_scorecard_files_points(rows: pd.DataFrame, tmp_path: Path) -> None:
    fit = fit_woe_encoder(_binned(), _tables(_binned(), rows))
    weights = -np.linspace(0.2, 1.2, len(fit.encoder.features))
    scorecard = scorecard_of(
        fit.encoder, fit.tables, weights=weights, bias=-1.3, scaling=ScoreScaling()
    )
    path = write_scorecard_csv(scorecard, tmp_path / "scorecard.csv")
    indices = fit.encoder.bin_indices(rows)
    columns = np.column_stack([indices[name] for name in fit.encoder.features])

    scores = integer_scores(path, fit.encoder, rows)

    np.testing.assert_array_equal(scores, scorecard.integer_score(columns))


def test_the_fairness_oracle_is_fairlearn_and_sees_a_difference(rows: pd.DataFrame) -> None:
    schema = load_schema()
    predicted = np.random.default_rng(0).beta(2, 6, size=len(rows))
    observed = rows[schema.target].to_numpy()
    document = {
        grouping.column: fairness_report(
            fairness_sums(rows[grouping.column], grouping, predicted, observed, cutoff=0.3),
            grouping,
        ).as_dict()
        for grouping in schema_groupings(schema)
    }

    assert fairness_difference(document, schema, rows, predicted, 0.3) <= 1e-9
    document["SEX"]["groups"]["2"]["approval_rate"] += 1e-6
    assert fairness_difference(document, schema, rows, predicted, 0.3) >= 1e-6


def test_the_blanked_data_set_is_deterministic_and_valid(
    rows: pd.DataFrame, tmp_path: Path
) -> None:
    blanked, incomplete = blank(rows, seed=3)
    again, _ = blank(rows, seed=3)
    schema_file = tmp_path / "blanked.toml"
    schema_file.write_text(tomli_w.dumps(blanked_schema_document()), encoding="utf-8")
    blanked.to_csv(tmp_path / "blanked.csv", index=False)

    assert blanked.equals(again)
    (mcar, mcar_share), (mnar, mnar_share) = MCAR_COLUMN, MNAR_COLUMN
    assert blanked[mcar].isna().mean() == pytest.approx(mcar_share, abs=0.025)
    assert blanked[mnar].isna().mean() == pytest.approx(mnar_share, abs=0.02)
    # Not at random: a chance proportional to the rank puts the blanked values' mean
    # rank at 2/3 of the way up (1/2 at random).
    percentile = rows[mnar].rank(pct=True)
    assert percentile[blanked[mnar].isna()].mean() == pytest.approx(2 / 3, abs=0.04)
    np.testing.assert_array_equal(incomplete, blanked[[mcar, mnar]].isna().any(axis=1))
    loaded = load_bank_csv(tmp_path / "blanked.csv", load_schema(schema_file)).frame
    assert loaded[mcar].isna().sum() == blanked[mcar].isna().sum()


@pytest.mark.slow
def test_the_governance_benchmark_measures_every_target(tmp_path: Path) -> None:
    out = tmp_path / "governance.json"
    command = [sys.executable, "bench/governance.py", "--seeds", "0", "--rounds", "1"]
    command += ["--converged-rounds", "1", "--converged-epochs", "1", "--out", str(out)]
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert completed.returncode == 0, completed.stderr[-3000:]
    document = json.loads(out.read_text())
    goals = document["targets"]
    assert goals["woe_iv_vs_pooled"]["met"] and goals["fairness_vs_fairlearn"]["met"]
    assert all(isinstance(goal["met"], bool) for goal in goals.values())
    (seed,) = document["per_seed"]
    assert set(seed["woe_iv_max_abs_diff"]) == {
        "binned-default",
        "woe-default",
        "binned-converged",
        "woe-converged",
    }
    assert 0.6 < seed["missing_values"]["auc"]["blanked"] < 0.9
    assert out.with_suffix(".md").read_text().startswith("| target | threshold |")


@pytest.mark.slow
def test_the_scoring_benchmark_measures_service_batch_and_soak(tmp_path: Path) -> None:
    out = tmp_path / "scoring.json"
    command = [sys.executable, "-m", "bench.scoring", "--rows", "3000", "--seconds", "1"]
    command += ["--rounds", "1", "--soak", "6", "--clients", "4", "--out", str(out)]
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert completed.returncode == 0, completed.stderr[-3000:]
    document = json.loads(out.read_text())
    for part in document["service"].values():
        for load in ("single_client", "closed_loop", "paced"):
            assert part[load]["requests"] > 0 and part[load]["errors"] == 0
    assert [part["rows"] for part in document["batch"].values()] == [3000, 3000]
    assert document["soak"]["errors"] == 0 and document["soak"]["memory_mb"]
    assert document["verification"]["verify_ms"] > 0
    assert out.with_suffix(".md").read_text().startswith("| measurement | target |")


@pytest.mark.slow
def test_the_scale_benchmark_measures_every_size_and_mode(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    command = [sys.executable, "-m", "bench.scale", "--sizes", "4", "5", "--rounds", "1"]
    command += ["--rows-per-bank", "300", "--out", str(out)]
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert completed.returncode == 0, completed.stderr[-3000:]
    document = json.loads(out.read_text())
    sizes = document["sizes"]
    assert [(entry["banks"], entry["dp"]) for entry in sizes] == [
        (4, False),
        (4, True),
        (5, False),
        (5, True),
    ]
    for entry in sizes:
        assert entry["seconds_per_round"] > 0 and len(entry["round_seconds"]) == 1
        assert entry["peak_rss_mb"] > 100 and entry["graph"] in ("complete", "sparse")
        assert entry["unmask_exchange_seconds_per_round"] >= 0
        assert (entry["max_epsilon_spent"] is not None) is entry["dp"]
        # the coordinator's unmask work: set-up (0), round 1, the last evaluation (2);
        # a round aborted by the dropouts did none, one it unmasked opened t shares or more
        unmasked = entry["secagg_costs"]["coordinator"]
        assert unmasked and {c["secure_round"] for c in unmasked} <= {0, 1, 2}
        for cost in unmasked:
            assert cost["reconstructions"] == 0 or cost["reconstructions"] >= entry["threshold"]
    assert document["targets"] == {}  # measured at 1,000 banks only
    assert out.with_suffix(".md").read_text().startswith("| banks | DP | graph |")
    assert out.with_suffix(".png").stat().st_size > 0


def _scale_metrics(*, graph: str | None, costs: dict[str, object] | None) -> dict[str, object]:
    """A secure 3-round run's metrics.json as bench/scale.py reads it."""
    secure = {"protocol": f"SecAgg ({graph} graph)", "threshold": 7, "costs": costs}
    return {
        "rounds": [
            {"seconds": 2.0, "exchanges": {"unmask": 0.5}, "dropped": ["bank-1"]},
            {"seconds": 4.0, "exchanges": {"unmask": 0.25}, "dropped": []},
            {"seconds": 6.0, "exchanges": {}, "dropped": ["bank-2", "bank-3"]},
        ],
        "secure_aggregation": secure if graph else None,
        "privacy": {"bank-1": {"epsilon": 0.5}, "bank-2": {"epsilon": 0.9}},
        "final": {"auc": 0.75},
    }


def test_the_scale_benchmark_reads_a_runs_rounds_memory_and_graph() -> None:
    from bench.scale import measurements, targets

    coordinator = [{"secure_round": 1, "reconstructions": 900, "key_agreements": 4}]
    document = _scale_metrics(graph="sparse", costs={"coordinator": coordinator})
    sparse = measurements(document, banks=1000, mode="dp", wall=100.0, peak_mb=9000.0)
    assert (sparse["seconds_per_round"], sparse["setup_seconds"]) == (4.0, 88.0)
    assert sparse["dropped_per_round"] == [1, 0, 2] and sparse["graph"] == "sparse"
    assert sparse["unmask_exchange_seconds_per_round"] == 0.25
    assert (sparse["peak_rss_mb_per_bank"], sparse["max_epsilon_spent"]) == (9.0, 0.9)
    assert sparse["secagg_costs"] == {"coordinator": coordinator}
    document = _scale_metrics(graph=None, costs=None)
    plain = measurements(document, banks=10, mode="plain", wall=20.0, peak_mb=100.0)
    assert plain["secure_aggregation"] is False and plain["graph"] is None
    assert plain["secagg_costs"] is None
    assert targets([sparse, plain]) == {
        "seconds_per_round_dp": {"target": 60.0, "measured": 4.0, "met": True},
        "peak_rss_mb_dp": {"target": 16384.0, "measured": 9000.0, "met": True},
    }


@pytest.mark.slow  # Flower's bagging starts Ray: minutes
def test_the_gbdt_benchmark_compares_central_banks_and_references(tmp_path: Path) -> None:
    out = tmp_path / "gbdt.json"
    command = [sys.executable, "bench/gbdt.py", "--seeds", "0", "--trees", "20", "--depth", "2"]
    command += ["--speed-trees", "1", "--speed-banks", "3", "--speed-depths", "2"]
    command += ["--dp-repeats", "1", "--flower-trees", "0", "--out", str(out)]
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    document = json.loads(out.read_text())
    (run,) = document["runs"]
    assert run["identical_trees"] is True and run["auc_difference_summed"] == 0.0
    for model in ("gbdt_central", "xgboost_hist_same_bins", "lightgbm_central"):
        assert 0.6 < run[model]["auc"] < 0.9
    bagging, ours = run["flower_xgb_bagging"], run["fedcredit_gbdt"]
    assert list(bagging) == list(ours) == ["iid-5", "dirichlet-0.5-5", "education"]
    assert [row["banks"] for row in bagging.values()] == [5, 5, 4]  # EDUCATION: 1, 2, 3, other
    assert [row["banks"] for row in ours.values()] == [5, 5, 4]
    for row in bagging.values():
        assert row["trees"] == row["rounds"] * row["banks"] == 20
        assert 0.6 < row["auc"] < 0.9 and 0 < row["ks"] < 1
    for row in ours.values():  # secure aggregation: the central trees on the split's rows
        assert row["identical_trees"] is True and row["auc_difference_central"] == 0.0
        assert row["pooled_rows_are_the_training_rows"] is True
        assert (
            row["trees"] == 20 and row["levels"] == 40 and row["auc"] == run["gbdt_central"]["auc"]
        )
    assert [(r["banks"], r["depth"], r["secure_aggregation"]) for r in document["speed"]] == [
        (3, 2, True),
        (3, 2, False),
    ]
    secure = document["speed"][0]
    assert secure["critical_path_seconds_per_tree"] <= secure["seconds_per_tree"]
    assert [(r["epsilon"], r["banks"]) for r in run["dp"]][:3] == [(1.0, 4), (4.0, 4), (None, 4)]
    for row in run["dp"]:
        assert row["epsilon"] is None or 0 < row["max_epsilon_spent"] <= row["epsilon"]
        assert 0.5 < row["auc"] < 0.9
    table = out.with_suffix(".md").read_text()
    assert table.startswith("| model (central")
    assert "| education | Flower XGBoost bagging (FedXgbBagging) |" in table
    assert "| education | fedcredit GBDT, secure aggregation | 4 | 20 |" in table


def _audit_entry(event: str, time: str, data: dict[str, object]) -> str:
    return json.dumps({"event": event, "time": f"2026-11-30T18:00:{time}+00:00", "data": data})


def test_the_flower_exchange_phases_come_from_the_audit_logs(tmp_path: Path) -> None:
    from bench._flower_exchanges import exchange_phases

    coordinator = [
        _audit_entry("exchange", "00.000", {"stage": "unmask", "sent": {"seq": 1}}),
        _audit_entry("exchange", "01.000", {"stage": "gbdt-level", "sent": {"seq": 2}}),
        _audit_entry("exchange", "01.500", {"stage": "consistency", "sent": {"seq": 3}}),
    ]
    (tmp_path / "coordinator.jsonl").write_text("\n".join(coordinator) + "\n")
    for bank, (level, consistency) in enumerate([("00.100", "01.200"), ("00.400", "01.300")]):
        lines = [
            _audit_entry("coordinator-head", level, {"seq": 2}),
            _audit_entry("coordinator-head", consistency, {"seq": 3}),
        ]
        (tmp_path / f"bank-{bank + 1}.jsonl").write_text("\n".join(lines) + "\n")

    phases = exchange_phases(tmp_path)

    assert set(phases) == {"gbdt-level", "consistency"}
    expected = {"exchanges": 1, "total": 1.0, "to_first_bank": 0.1, "bank_spread": 0.3}
    assert phases["gbdt-level"] == pytest.approx({**expected, "last_bank_to_end": 0.6})
    assert phases["consistency"] == pytest.approx(
        {
            "exchanges": 1,
            "total": 0.5,
            "to_first_bank": 0.2,
            "bank_spread": 0.1,
            "last_bank_to_end": 0.2,
        }
    )


# bench/_flower_xgb_bagging.py: Flower's XGBoost bagging, the benchmark's comparison (fast).


def _tiny_bank(seed: int, rows: int = 300) -> BankRows:
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(rows, 3)).astype(np.float32)
    features[rng.random(rows) < 0.1, 2] = np.nan
    labels = (features[:, 0] + rng.normal(scale=0.5, size=rows) > 0).astype(np.int64)
    return BankRows(name=f"bank-{seed}", features=features, labels=labels)


XGB_PARAMS = xgboost_params(
    BoostingParams(n_trees=4, max_depth=2, learning_rate=0.3), base_score=0.4
)


def _margins(model: bytes, features: np.ndarray) -> np.ndarray:
    import xgboost

    booster = xgboost.Booster(model_file=bytearray(model))
    margins: np.ndarray = booster.predict(xgboost.DMatrix(features), output_margin=True)
    return margins


def test_a_bank_boosts_one_tree_on_its_rows_on_top_of_the_global_model() -> None:
    import xgboost
    from flwr.serverapp.strategy.strategy_utils import aggregate_bagging

    bank = _tiny_bank(0)
    first = local_tree(b"", bank, XGB_PARAMS)
    second = local_tree(first, bank, XGB_PARAMS)
    assert xgboost.Booster(model_file=bytearray(second)).num_boosted_rounds() == 1
    alone = xgboost.train(
        dict(XGB_PARAMS), xgboost.DMatrix(bank.features, label=bank.labels), num_boost_round=2
    )
    expected = alone.predict(xgboost.DMatrix(bank.features), output_margin=True)
    bagged = _margins(aggregate_bagging(first, second), bank.features)
    np.testing.assert_allclose(bagged, expected, rtol=0, atol=1e-6)


def test_flower_bagging_adds_each_banks_tree_boosted_on_the_global_model() -> None:
    import xgboost

    banks = [_tiny_bank(0), _tiny_bank(1)]
    probe = np.concatenate([bank.features for bank in banks])
    with FakeGrid(make_client_app(banks, XGB_PARAMS), num_nodes=2, run_config={}) as grid:
        model = bagged_model(grid, rounds=2, n_banks=2)
    assert not grid.failures
    booster = xgboost.Booster(model_file=bytearray(model))
    assert booster.num_boosted_rounds() == 4

    def tree(index: int) -> np.ndarray:
        return _margins(bytes(booster[index : index + 1].save_raw("json")), probe)

    first_round = bytes(booster[0:2].save_raw("json"))
    for index, start in ((0, b""), (1, b""), (2, first_round), (3, first_round)):
        from_a_bank = [_margins(local_tree(start, bank, XGB_PARAMS), probe) for bank in banks]
        assert sum(np.allclose(tree(index), margins, atol=1e-6) for margins in from_a_bank) == 1
