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
* LightGBM with ``bench/quality.py``'s settings (the README's reference);

and, per split of ``bench/quality.py`` (the same banks: :func:`simulations.partition.partition_data`
at the seed, as ``fedcredit simulate`` splits), every federated system of
:data:`FEDERATED_SYSTEMS` with the same number of trees in all and the same depth:

* ``flower_xgb_bagging``: Flower's ``FedXgbBagging`` on Flower's Simulation Engine
  (``bench/_flower_xgb_bagging.py``), each bank adding one tree a round.

Every model is scored on the held-out customers with :mod:`credit.metrics` (exact:
:data:`~simulations.exact.EXACT_SCORE_BINS` score bins). The default hyperparameters
were chosen on a validation part of the training rows only (``bench/gbdt_tuning.py``),
never on the held-out customers.

Writes ``bench/results/gbdt.json`` (``--out``) and the Markdown tables next to it. The
federated fedcredit runs (``fedcredit simulate --model gbdt``, secure aggregation, DP)
are one more entry of :data:`FEDERATED_SYSTEMS`.

Usage::

    .venv/bin/python bench/gbdt.py                    # 3 seeds, 300 trees
    .venv/bin/python bench/gbdt.py --seeds 0 --trees 50 --splits education
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from _flower_xgb_bagging import BankRows, bagging_rounds, run_bagging, xgboost_params
from numpy.typing import NDArray

from credit.datasets import embedded_data_path
from credit.encoding import FeatureEncoder, fit_encoder
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
from credit.metrics import credit_metrics, summarize_scores
from credit.schema import DatasetSchema, load_schema
from participant.guard.bank import held_out_rows
from participant.guard.settings import HoldOut
from simulations.exact import EXACT_SCORE_BINS
from simulations.partition import partition_data
from simulations.settings import PartitionScheme, PartitionSettings

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
BANKS = 5
SPLITS: dict[str, tuple[PartitionSettings, int]] = {
    # bench/quality.py's splits: (partition settings, banks for iid and dirichlet).
    "iid-5": (PartitionSettings(partition=PartitionScheme.IID), 5),
    "dirichlet-0.5-5": (PartitionSettings(partition=PartitionScheme.DIRICHLET, alpha=0.5), 5),
    "education": (
        PartitionSettings(partition=PartitionScheme.COLUMN, partition_column="EDUCATION"),
        5,
    ),
}


@dataclass(frozen=True, eq=False)
class SeedData:
    """One seed's rows, hold-out, bins and matrices, shared by every system."""

    seed: int
    frame: pd.DataFrame
    schema: DatasetSchema
    train: NDArray[np.bool_]
    encoder: FeatureEncoder
    bins: FeatureBins
    raw: NDArray[np.float32]
    codes: NDArray[np.uint8]
    labels: NDArray[np.int64]
    base_score: float


def seed_data(seed: int, params: BoostingParams) -> SeedData:
    """The embedded rows, ``bench/quality.py``'s held-out customers at ``seed``, the bins."""
    schema = load_schema()
    frame = load_bank_csv(embedded_data_path(), schema).frame
    train = ~held_out_rows(frame, schema, HoldOut.for_simulation(fraction=0.2, seed=seed))
    stats = compute_feature_stats(frame.loc[train], schema)
    encoder = fit_encoder(schema, stats=stats, quantile_bins=params.max_bins)
    bins = bins_from_encoder(encoder)
    raw = raw_matrix(frame, encoder)
    labels = frame[schema.target].to_numpy(dtype=np.int64)
    return SeedData(
        seed=seed,
        frame=frame,
        schema=schema,
        train=train,
        encoder=encoder,
        bins=bins,
        raw=raw,
        codes=bins.codes(raw),
        labels=labels,
        base_score=base_score_from_counts(int(labels[train].sum()), int(train.sum())),
    )


def metrics(labels: NDArray[np.int64], probabilities: NDArray[np.floating]) -> dict[str, float]:
    """Test AUC and KS of default probabilities, by :mod:`credit.metrics` (exact bins)."""
    scores = credit_metrics(summarize_scores(probabilities, labels, EXACT_SCORE_BINS))
    return {"auc": scores.auc, "ks": scores.ks}


def probabilities(margins: NDArray[np.float64]) -> NDArray[np.float64]:
    result: NDArray[np.float64] = 1.0 / (1.0 + np.exp(-margins))
    return result


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


def central_systems(data: SeedData, params: BoostingParams) -> dict[str, object]:
    """The central trainer, the 5-bank summed check, XGBoost on the same bins, LightGBM."""
    train, codes, labels, bins = data.train, data.codes, data.labels, data.bins
    started = time.perf_counter()
    central = train_central(
        codes[train], labels[train], params, np.random.default_rng(data.seed), bins=bins
    )
    seconds_per_tree = (time.perf_counter() - started) / params.n_trees
    owner = np.random.default_rng(data.seed).integers(0, BANKS, size=int(train.sum()))
    pooled = federated_sum(
        codes[train], labels[train], owner, params, bins, np.random.default_rng(data.seed)
    )
    test_labels = labels[~train]
    ours = metrics(test_labels, probabilities(central.margin_from_codes(codes[~train])))
    summed = metrics(test_labels, probabilities(pooled.margin_from_codes(codes[~train])))
    xgb = xgboost_same_bins(codes, labels, train, params, bins, central.base_score)
    lgbm = lightgbm_scores(data.frame, data.schema, train, data.seed)
    return {
        "gbdt_central": ours,
        "gbdt_5_banks_summed": summed,
        "identical_trees": pooled == central,
        "auc_difference_summed": abs(summed["auc"] - ours["auc"]),
        "xgboost_hist_same_bins": metrics(test_labels, xgb),
        "lightgbm_central": metrics(test_labels, lgbm),
        "seconds_per_tree_central": seconds_per_tree,
        "bins": [int(b) for b in bins.regular_bins],
    }


def bank_rows(data: SeedData, split: str) -> list[BankRows]:
    """The banks of ``split`` at the seed (as ``fedcredit simulate`` splits), training rows only."""
    settings, n_banks = SPLITS[split]
    partitions = partition_data(settings, n_banks=n_banks, schema_file="", seed=data.seed)
    if len(partitions.frame) != len(data.frame):
        raise RuntimeError(
            f"split '{split}' read {len(partitions.frame)} rows, not {len(data.frame)}"
        )
    banks = []
    for part in partitions.partitions:
        rows = part.rows[data.train[part.rows]]
        banks.append(BankRows(name=part.name, features=data.raw[rows], labels=data.labels[rows]))
    return banks


def flower_xgb_bagging(data: SeedData, split: str, params: BoostingParams) -> dict[str, object]:
    """Flower's FedXgbBagging over the split's banks: ``params.n_trees`` trees in all."""
    import xgboost

    banks = bank_rows(data, split)
    rounds = bagging_rounds(params.n_trees, len(banks))
    started = time.perf_counter()
    model = run_bagging(banks, xgboost_params(params, base_score=data.base_score), rounds=rounds)
    seconds = time.perf_counter() - started
    booster = xgboost.Booster(model_file=bytearray(model))
    scores = booster.predict(xgboost.DMatrix(data.raw[~data.train]))
    return {
        **metrics(data.labels[~data.train], scores),
        "banks": len(banks),
        "rounds": rounds,
        "trees": booster.num_boosted_rounds(),
        "wall_seconds": seconds,
    }


FederatedSystem = Callable[[SeedData, str, BoostingParams], dict[str, object]]
FEDERATED_SYSTEMS: dict[str, FederatedSystem] = {
    # Each returns at least auc, ks, banks and trees for one split at one seed.
    "flower_xgb_bagging": flower_xgb_bagging,
}
FEDERATED_NAMES = {"flower_xgb_bagging": "Flower XGBoost bagging (FedXgbBagging)"}


def run_seed(seed: int, params: BoostingParams, splits: list[str]) -> dict[str, object]:
    data = seed_data(seed, params)
    run: dict[str, object] = {"seed": seed, **central_systems(data, params)}
    for system, measure in FEDERATED_SYSTEMS.items():
        run[system] = {split: measure(data, split, params) for split in splits}
    return run


def _mean_sd(values: list[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} ± {spread:.4f}"


def federated_table(runs: list[dict[str, object]], splits: list[str]) -> list[str]:
    lines = [
        "| split | system | banks | trees | test AUC | test KS |",
        "|---|---|---|---|---|---|",
    ]
    for split in splits:
        for system in FEDERATED_SYSTEMS:
            rows = [run[system][split] for run in runs]  # type: ignore[index]
            banks, trees = rows[0]["banks"], rows[0]["trees"]
            aucs, kss = [row["auc"] for row in rows], [row["ks"] for row in rows]
            name = FEDERATED_NAMES.get(system, system)
            lines.append(
                f"| {split} | {name} | {banks} | {trees} | {_mean_sd(aucs)} | {_mean_sd(kss)} |"
            )
    return lines


def markdown(runs: list[dict[str, object]], params: BoostingParams, splits: list[str]) -> str:
    def cell(key: str, metric: str) -> str:
        return _mean_sd([run[key][metric] for run in runs])  # type: ignore[index]

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
    if splits:
        lines += [*federated_table(runs, splits), ""]
    lines.append(
        f"{params.n_trees} trees, depth {params.max_depth}, learning rate "
        f"{params.learning_rate}, λ {params.reg_lambda}, min child weight "
        f"{params.min_child_weight}, up to {params.max_bins} bins; "
        f"{len(runs)} seeds (mean ± sd). 5-bank trees identical to central: {identical}. "
        f"Central training {per_tree:.3f} s per tree."
    )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--trees", type=int, default=300)
    parser.add_argument("--depth", type=int, default=5)
    parser.add_argument("--learning-rate", type=float, default=0.02)
    parser.add_argument("--reg-lambda", type=float, default=10.0)
    parser.add_argument("--min-child-weight", type=float, default=10.0)
    parser.add_argument("--max-bins", type=int, default=255)
    parser.add_argument(
        "--splits",
        nargs="*",
        choices=list(SPLITS),
        default=list(SPLITS),
        help="splits the federated systems run on (none: the central part only)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "gbdt.json")
    args = parser.parse_args()
    params = BoostingParams(
        n_trees=args.trees,
        max_depth=args.depth,
        learning_rate=args.learning_rate,
        reg_lambda=args.reg_lambda,
        min_child_weight=args.min_child_weight,
        max_bins=args.max_bins,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    runs = []
    for seed in args.seeds:
        run = run_seed(seed, params, args.splits)
        print(json.dumps(run), flush=True)
        runs.append(run)
    document = {
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "params": params.model_dump(),
        "splits": args.splits,
        "runs": runs,
    }
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    table = markdown(runs, params, args.splits)
    args.out.with_suffix(".md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
