"""XGBoost as the oracle: the exported model scores and explains as ours does, and its
own ``hist`` training on the same bins reaches the same AUC."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xgboost as xgb
from sklearn.metrics import roc_auc_score

from credit.gbdt import (
    BoostingParams,
    Ensemble,
    FeatureBins,
    contributions,
    feature_importance,
    reason_features,
    save_xgboost_json,
    train_central,
)
from tests.credit.gbdt.conftest import BinnedRows


def _train(rows: BinnedRows, params: BoostingParams) -> Ensemble:
    return train_central(rows.codes, rows.labels, params, np.random.default_rng(0), bins=rows.bins)


@pytest.fixture(scope="module", params=["credit", "missing"])
def exported(
    request: pytest.FixtureRequest,
    credit_rows: BinnedRows,
    missing_rows: BinnedRows,
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[BinnedRows, Ensemble, xgb.Booster]:
    rows = credit_rows if request.param == "credit" else missing_rows
    ensemble = _train(rows, BoostingParams(n_trees=8, max_depth=4, learning_rate=0.3))
    path = tmp_path_factory.mktemp("xgb") / "model.json"
    save_xgboost_json(ensemble, path)
    return rows, ensemble, xgb.Booster(model_file=str(path))


def _matrix(rows: BinnedRows) -> xgb.DMatrix:
    return xgb.DMatrix(rows.values, feature_names=list(rows.bins.names))


def test_xgboost_scores_the_exported_model_as_we_do(
    exported: tuple[BinnedRows, Ensemble, xgb.Booster],
) -> None:
    rows, ensemble, booster = exported
    margin = booster.predict(_matrix(rows), output_margin=True)
    np.testing.assert_allclose(margin, ensemble.margin(rows.values), rtol=0, atol=2e-6)
    np.testing.assert_allclose(
        booster.predict(_matrix(rows)), ensemble.predict_proba(rows.values), rtol=0, atol=1e-6
    )
    # The same leaf for every row and tree: float32 thresholds route rows alike.
    leaves = booster.predict(_matrix(rows), pred_leaf=True).astype(np.int64)
    ours = np.column_stack([tree.leaves_from_values(rows.values) for tree in ensemble.trees])
    np.testing.assert_array_equal(leaves, ours)


def test_contributions_equal_xgboost_treeshap(
    exported: tuple[BinnedRows, Ensemble, xgb.Booster],
) -> None:
    rows, ensemble, booster = exported
    subset = rows.values[:300]
    ours = contributions(ensemble, subset)
    theirs = booster.predict(
        xgb.DMatrix(subset, feature_names=list(rows.bins.names)), pred_contribs=True
    )
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-5)
    np.testing.assert_allclose(ours.sum(axis=1), ensemble.margin(subset), rtol=0, atol=1e-9)
    assert np.abs(ours[:, :-1]).max() > 0.01


def test_reasons_are_the_largest_positive_contributions() -> None:
    matrix = np.array([[0.3, -0.2, 0.3, 0.1, -1.0], [-0.1, -0.2, 0.0, -0.3, 2.0]])
    reasons = reason_features(matrix, ("a", "b", "c", "d"), top_k=2)
    assert reasons == (("a", "c"), ())
    with pytest.raises(ValueError, match=r"5 columns \(features, then the bias\)"):
        reason_features(matrix[:, :4], ("a", "b", "c", "d"))


def test_importance_equals_xgboost_scores(
    exported: tuple[BinnedRows, Ensemble, xgb.Booster],
) -> None:
    _, ensemble, booster = exported
    importance = feature_importance(ensemble)
    for kind, ours in (
        ("weight", importance.splits),
        ("total_gain", importance.total_gain),
        ("total_cover", importance.total_cover),
    ):
        theirs = booster.get_score(importance_type=kind)
        expected = [theirs.get(name, 0.0) for name in importance.names]
        np.testing.assert_allclose(ours, expected, rtol=1e-5)


def test_xgboost_hist_on_the_same_bins_reaches_the_same_auc(credit_rows: BinnedRows) -> None:
    """XGBoost trained on the bin codes (each code its own bin) against our trainer."""
    train, test = np.arange(0, 1500), np.arange(1500, 2000)
    params = BoostingParams(n_trees=30, max_depth=3, learning_rate=0.2, base_score=0.25)
    ours = train_central(
        credit_rows.codes[train],
        credit_rows.labels[train],
        params,
        np.random.default_rng(0),
        bins=credit_rows.bins,
    )
    codes = credit_rows.codes.astype(np.float32)
    codes[credit_rows.codes == credit_rows.bins.missing_code] = np.nan
    booster = xgb.train(
        {
            "objective": "binary:logistic",
            "tree_method": "hist",
            "max_bin": 256,
            "max_depth": params.max_depth,
            "eta": params.learning_rate,
            "lambda": params.reg_lambda,
            "min_child_weight": params.min_child_weight,
            "base_score": params.base_score,
            "nthread": 1,
        },
        xgb.DMatrix(codes[train], label=credit_rows.labels[train]),
        num_boost_round=params.n_trees,
    )
    theirs = booster.predict(xgb.DMatrix(codes[test]))
    labels = credit_rows.labels[test]
    ours_auc = roc_auc_score(labels, ours.margin_from_codes(credit_rows.codes[test]))
    assert abs(ours_auc - roc_auc_score(labels, theirs)) < 0.002
    assert ours_auc > 0.7
    # On these rows the trees themselves agree (quantised gradients move no split here).
    ours_proba = ours.predict_proba(credit_rows.values[test])
    np.testing.assert_allclose(theirs, ours_proba, rtol=0, atol=1e-5)


def test_a_missing_versus_present_split_exports_as_the_largest_float32(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    values = rng.normal(size=(400, 1)).astype(np.float32)
    missing = rng.random(400) < 0.3
    values[missing, 0] = np.nan
    values[0, 0] = 3e38  # a huge regular value still goes left
    rows = FeatureBins(names=("x",), edges=((-1.0, 0.0, 1.0),))
    labels = missing.astype(np.int64)
    ensemble = train_central(
        rows.codes(values),
        labels,
        BoostingParams(n_trees=1, max_depth=1),
        np.random.default_rng(0),
        bins=rows,
    )
    (tree,) = ensemble.trees
    assert tree.thresholds[0] == float(np.finfo(np.float32).max) and not tree.default_left[0]
    path = tmp_path / "model.json"
    save_xgboost_json(ensemble, path)
    margin = xgb.Booster(model_file=str(path)).predict(
        xgb.DMatrix(values, feature_names=["x"]), output_margin=True
    )
    np.testing.assert_allclose(margin, ensemble.margin(values), rtol=0, atol=2e-6)


def test_trees_without_a_split_export_as_single_leaves(tmp_path: Path) -> None:
    bins = FeatureBins(names=("x",), edges=((0.0,),))
    values = np.array([[-1.0], [1.0], [np.nan], [2.0]], dtype=np.float32)
    params = BoostingParams(n_trees=2, gamma=1e6, base_score=0.3)
    ensemble = train_central(
        bins.codes(values), np.array([0, 1, 1, 0]), params, np.random.default_rng(0), bins=bins
    )
    assert [tree.n_nodes for tree in ensemble.trees] == [1, 1]
    path = tmp_path / "model.json"
    save_xgboost_json(ensemble, path)
    matrix = xgb.DMatrix(values, feature_names=["x"])
    booster = xgb.Booster(model_file=str(path))
    np.testing.assert_allclose(
        booster.predict(matrix, output_margin=True), ensemble.margin(values), rtol=0, atol=2e-6
    )
    np.testing.assert_allclose(
        booster.predict(matrix, pred_contribs=True), contributions(ensemble, values), atol=2e-6
    )
