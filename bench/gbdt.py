"""Gradient-boosted trees on shared bins: central, fedcredit federated, references (benchmark).

For every seed, on exactly the held-out customers of ``bench/quality.py``
(``HoldOut.for_simulation(fraction=0.2, seed=seed)``): bin edges from the feature
statistics of the training rows (what the banks' summed statistics give, ``grid-bins``
1024, up to 255 quantile bins; ``bench/_gbdt_data.py``), then

* ``credit.gbdt.train_central`` (the trainer federated training reproduces exactly);
* the same rows split over 5 IID banks, histograms summed level by level in the clear;
* XGBoost ``tree_method="hist"`` on the same bins (the bin codes as data, one XGBoost
  bin per code) with the same hyperparameters;
* LightGBM with ``bench/quality.py``'s settings (the README's reference);

and, per split of ``bench/quality.py`` (the same banks: :func:`simulations.partition.partition_data`
at the seed, as ``fedcredit simulate`` splits), every federated system of
:data:`FEDERATED_SYSTEMS` with the same number of trees in all and the same depth:

* ``fedcredit_gbdt``: fedcredit's federated boosting in this process, secure
  aggregation on (``bench/_gbdt_federated.py``: the banks' guards, the coordinator's
  level loop, one round of the real SecAgg protocol per level), its trees compared with
  ``train_central`` on the split's pooled training rows (lossless check);
* ``flower_xgb_bagging``: Flower's ``FedXgbBagging`` on Flower's Simulation Engine
  (``bench/_flower_xgb_bagging.py``), each bank adding one tree a round.

Then, on the first seed, seconds per tree by banks and by depth (secure and plain
sums; ``--speed-*``), one ``fedcredit simulate --model gbdt --secure-aggregation`` run
over Flower with its exchanges timed from the audit logs (``--flower-trees``;
``bench/_flower_exchanges.py``), and at every seed the test AUC of small ensembles
under a per-bank DP budget (ε 1, 4, ∞; ``--dp-split``).

Every model is scored on the held-out customers with :mod:`credit.metrics` (exact:
:data:`~simulations.exact.EXACT_SCORE_BINS` score bins). The default hyperparameters
were chosen on a validation part of the training rows only (``bench/gbdt_tuning.py``),
never on the held-out customers.

Writes ``bench/results/gbdt.json`` (``--out``) and the Markdown tables next to it
(``bench/_gbdt_report.py``, with ``bench/results/quality.json``'s federated logistic
regression and MLP rows beside).

Usage::

    .venv/bin/python bench/gbdt.py                    # 3 seeds, 300 trees
    .venv/bin/python bench/gbdt.py --seeds 0 --trees 10 --speed-trees 2 --flower-trees 0
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from _flower_exchanges import exchange_phases
from _flower_xgb_bagging import bagging_rounds, run_bagging, xgboost_params
from _gbdt_data import SPLITS, SeedData, bank_rows, metrics, probabilities, seed_data
from _gbdt_federated import DP_CONFIGS, DP_DELTA, fedcredit_gbdt, private, speed
from _gbdt_report import markdown
from _simulate import simulate
from numpy.typing import NDArray

from credit.gbdt import (
    BankBoosting,
    BoostingParams,
    Ensemble,
    FeatureBins,
    TreeGrower,
    base_score_from_counts,
    sample_features,
    train_central,
)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
BANKS = 5


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
    "fedcredit_gbdt": fedcredit_gbdt,
    "flower_xgb_bagging": flower_xgb_bagging,
}


def over_flower(trees: int, depth: int, out: Path) -> dict[str, object]:
    """``fedcredit simulate --model gbdt`` over Flower (5 IID banks, secure aggregation):
    the coordinator's seconds per level and per tree from ``metrics.json``."""
    arguments = ["--model", "gbdt", "--banks", str(BANKS), "--trees", str(trees)]
    arguments += ["--max-depth", str(depth), "--secure-aggregation", "--seed", "0"]
    document, wall = simulate(arguments, out)
    seconds = [float(level["seconds"]) for level in document["levels"]]
    return {
        "banks": BANKS,
        "trees": trees,
        "depth": depth,
        "levels": len(seconds),
        "seconds_per_tree": sum(seconds) / trees,
        "seconds_per_level": sum(seconds) / len(seconds),
        "wall_seconds": wall,
        "exchanges": exchange_phases(out / "audit"),
    }


def run_seed(seed: int, params: BoostingParams, args: argparse.Namespace) -> dict[str, object]:
    data = seed_data(seed, params.max_bins)
    run: dict[str, object] = {"seed": seed, **central_systems(data, params)}
    for system, measure in FEDERATED_SYSTEMS.items():
        run[system] = {split: measure(data, split, params) for split in args.splits}
    if args.dp_split != "none":
        data_for = {c.max_bins: seed_data(seed, c.max_bins) for c in DP_CONFIGS.values()}
        run["dp"] = private(data_for, args.dp_split, repeats=args.dp_repeats)
    return run


def arguments() -> argparse.Namespace:
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
    parser.add_argument(
        "--speed-trees", type=int, default=10, help="trees per speed point (0: none)"
    )
    parser.add_argument("--speed-banks", type=int, nargs="+", default=[5, 10, 20])
    parser.add_argument("--speed-depths", type=int, nargs="+", default=[2, 4, 6])
    parser.add_argument("--dp-split", choices=[*SPLITS, "none"], default="education")
    parser.add_argument("--dp-repeats", type=int, default=3, help="DP runs per ε and seed")
    parser.add_argument("--flower-trees", type=int, default=20, help="trees over Flower (0: none)")
    parser.add_argument("--out", type=Path, default=RESULTS / "gbdt.json")
    return parser.parse_args()


def main() -> None:
    args = arguments()
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
        run = run_seed(seed, params, args)
        print(json.dumps(run), flush=True)
        runs.append(run)
    document: dict[str, object] = {
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "params": params.model_dump(),
        "splits": args.splits,
        "dp_delta": DP_DELTA,
        "runs": runs,
    }
    if args.speed_trees:
        speed_params = params.model_copy(update={"n_trees": args.speed_trees})
        document["speed"] = speed(
            seed_data(args.seeds[0], params.max_bins),
            speed_params,
            banks=args.speed_banks,
            depths=args.speed_depths,
        )
    if args.flower_trees:
        with tempfile.TemporaryDirectory() as folder:
            document["over_flower"] = over_flower(
                args.flower_trees, max(args.speed_depths), Path(folder) / "run"
            )
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    table = markdown(document)
    args.out.with_suffix(".md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
