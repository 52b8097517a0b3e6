"""Gradient-boosted trees on shared bins, centralised part (benchmark, not a test).

For every seed, on exactly the held-out customers of ``bench/quality.py``
(``HoldOut.for_simulation(fraction=0.2, seed=seed)``): bin edges from the feature
statistics of the training rows (what the banks' summed statistics give, ``grid-bins``
1024, up to 255 quantile bins), then

* ``credit.gbdt.train_central`` (the trainer federated training reproduces exactly);
* the lossless check: the same rows split over 5 IID banks, histograms summed level by
  level (a plain sum standing in for the secure sum), trees compared with central;
* XGBoost ``tree_method="hist"`` on the same bins (the bin codes as data, one XGBoost
  bin per code) with the same hyperparameters;
* LightGBM with ``bench/quality.py``'s settings (the README's reference).

Writes ``bench/results/gbdt.json`` (``--out``) and the Markdown table next to it. The federated runs
(``fedcredit simulate --model gbdt``, secure aggregation, DP) are added on top of this.

Usage::

    .venv/bin/python bench/gbdt.py                    # 3 seeds, 300 trees
    .venv/bin/python bench/gbdt.py --seeds 0 --trees 50
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from credit.datasets import embedded_data_path
from credit.encoding import fit_encoder
from credit.feature_stats import compute_feature_stats
from credit.gbdt import (
    BankBoosting,
    BoostingParams,
    Ensemble,
    FeatureBins,
    TreeGrower,
    base_score_from_counts,
    bins_from_encoder,
    raw_matrix,
    sample_features,
    train_central,
)
from credit.loading import load_bank_csv
from credit.schema import load_schema
from participant.guard.bank import held_out_rows
from participant.guard.settings import HoldOut

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
BANKS = 5


def metrics(labels: NDArray[np.int64], scores: NDArray[np.float64]) -> dict[str, float]:
    from sklearn.metrics import roc_auc_score, roc_curve

    fpr, tpr, _ = roc_curve(labels, scores)
    return {"auc": float(roc_auc_score(labels, scores)), "ks": float(np.max(tpr - fpr))}


def federated_sum(
    codes: NDArray[np.uint8],
    labels: NDArray[np.int64],
    owner: NDArray[np.int64],
    params: BoostingParams,
    bins: FeatureBins,
    rng: np.random.Generator,
) -> Ensemble:
    """The level loop over banks, histograms summed in the clear (lossless check)."""
    base_score = base_score_from_counts(int(labels.sum()), len(labels))
    banks = [
        BankBoosting(codes[owner == b], labels[owner == b], bins=bins, base_score=base_score)
        for b in range(BANKS)
    ]
    trees = []
    for _ in range(params.n_trees):
        mask = sample_features(bins.n_features, params.colsample_bytree, rng)
        grower = TreeGrower(params=params, bins=bins, feature_mask=mask)
        for bank in banks:
            bank.start_tree(subsample=1.0, rng=None)
        while not grower.finished:
            splits = grower.grow_level(sum(bank.histogram(grower.open_nodes) for bank in banks))
            for bank in banks:
                bank.apply_splits(splits)
        tree = grower.tree()
        for bank in banks:
            bank.finish_tree(tree)
        trees.append(tree)
    return Ensemble(trees=tuple(trees), base_score=base_score, bins=bins)


def xgboost_same_bins(
    codes: NDArray[np.uint8],
    labels: NDArray[np.int64],
    train: NDArray[np.bool_],
    params: BoostingParams,
    bins: FeatureBins,
    base_score: float,
) -> NDArray[np.float32]:
    import xgboost

    data = codes.astype(np.float32)
    data[codes == bins.missing_code] = np.nan
    booster = xgboost.train(
        {
            "objective": "binary:logistic",
            "tree_method": "hist",
            "max_bin": 256,
            "max_depth": params.max_depth,
            "eta": params.learning_rate,
            "lambda": params.reg_lambda,
            "gamma": params.gamma,
            "min_child_weight": params.min_child_weight,
            "colsample_bytree": params.colsample_bytree,
            "base_score": base_score,
            "nthread": 1,
        },
        xgboost.DMatrix(data[train], label=labels[train]),
        num_boost_round=params.n_trees,
    )
    scores: NDArray[np.float32] = booster.predict(xgboost.DMatrix(data[~train]))
    return scores


def lightgbm_scores(frame, schema, train: NDArray[np.bool_], seed: int) -> NDArray[np.float64]:  # type: ignore[no-untyped-def]
    import lightgbm

    features = list(schema.input_features)
    model = lightgbm.LGBMClassifier(
        n_estimators=300, learning_rate=0.03, num_leaves=15, random_state=seed, verbose=-1
    )
    model.fit(frame.loc[train, features], frame.loc[train, schema.target])
    scores: NDArray[np.float64] = model.predict_proba(frame.loc[~train, features])[:, 1]
    return scores


def run_seed(seed: int, params: BoostingParams) -> dict[str, object]:
    schema = load_schema()
    frame = load_bank_csv(embedded_data_path(), schema).frame
    train = ~held_out_rows(frame, schema, HoldOut.for_simulation(fraction=0.2, seed=seed))
    stats = compute_feature_stats(frame.loc[train], schema)
    encoder = fit_encoder(schema, stats=stats, quantile_bins=params.max_bins)
    bins = bins_from_encoder(encoder)
    codes = bins.codes(raw_matrix(frame, encoder))
    labels = frame[schema.target].to_numpy(dtype=np.int64)
    started = time.perf_counter()
    central = train_central(
        codes[train], labels[train], params, np.random.default_rng(seed), bins=bins
    )
    seconds_per_tree = (time.perf_counter() - started) / params.n_trees
    owner = np.random.default_rng(seed).integers(0, BANKS, size=int(train.sum()))
    pooled = federated_sum(
        codes[train], labels[train], owner, params, bins, np.random.default_rng(seed)
    )
    test_labels = labels[~train]
    ours = metrics(test_labels, central.margin_from_codes(codes[~train]))
    summed = metrics(test_labels, pooled.margin_from_codes(codes[~train]))
    xgb = metrics(
        test_labels,
        xgboost_same_bins(codes, labels, train, params, bins, central.base_score).astype(
            np.float64
        ),
    )
    lgbm = metrics(test_labels, lightgbm_scores(frame, schema, train, seed))
    return {
        "seed": seed,
        "gbdt_central": ours,
        "gbdt_5_banks_summed": summed,
        "identical_trees": pooled == central,
        "auc_difference_summed": abs(summed["auc"] - ours["auc"]),
        "xgboost_hist_same_bins": xgb,
        "lightgbm_central": lgbm,
        "seconds_per_tree_central": seconds_per_tree,
        "bins": [int(b) for b in bins.regular_bins],
    }


def markdown(runs: list[dict[str, object]], params: BoostingParams) -> str:
    def cell(key: str, metric: str) -> str:
        values = [run[key][metric] for run in runs]  # type: ignore[index]
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{statistics.mean(values):.4f} ± {spread:.4f}"

    lines = ["| model (central, same held-out customers) | test AUC | test KS |", "|---|---|---|"]
    for key, name in (
        ("gbdt_central", "fedcredit GBDT, central trainer"),
        ("gbdt_5_banks_summed", "fedcredit GBDT, 5 IID banks, summed histograms"),
        ("xgboost_hist_same_bins", "XGBoost hist, same bins"),
        ("lightgbm_central", "LightGBM (bench/quality.py reference)"),
    ):
        lines.append(f"| {name} | {cell(key, 'auc')} | {cell(key, 'ks')} |")
    identical = all(run["identical_trees"] for run in runs)
    per_tree = statistics.mean(float(run["seconds_per_tree_central"]) for run in runs)  # type: ignore[arg-type]
    lines.append("")
    lines.append(
        f"{params.n_trees} trees, depth {params.max_depth}, learning rate "
        f"{params.learning_rate}, λ {params.reg_lambda}, up to {params.max_bins} bins; "
        f"{len(runs)} seeds. 5-bank trees identical to central: {identical}. "
        f"Central training {per_tree:.3f} s per tree."
    )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--trees", type=int, default=300)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--learning-rate", type=float, default=0.05)
    parser.add_argument("--out", type=Path, default=RESULTS / "gbdt.json")
    args = parser.parse_args()
    params = BoostingParams(
        n_trees=args.trees, max_depth=args.depth, learning_rate=args.learning_rate
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    runs = []
    for seed in args.seeds:
        run = run_seed(seed, params)
        print(json.dumps(run), flush=True)
        runs.append(run)
    document = {
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "params": params.model_dump(),
        "runs": runs,
    }
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    table = markdown(runs, params)
    args.out.with_suffix(".md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
