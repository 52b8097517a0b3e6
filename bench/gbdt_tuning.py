"""Choose ``bench/gbdt.py``'s hyperparameters on a validation part of the training rows.

The held-out customers of ``bench/quality.py`` (``HoldOut.for_simulation(fraction=0.2,
seed=seed)``) are set aside and never scored here. Of the remaining (training) rows,
the project's own validation rule keeps 20 % apart (``validation_fraction=0.2``: an
HMAC under another domain, as a bank keeps its validation part). Bins come from the
feature statistics of the rest; every candidate is trained there with
``credit.gbdt.train_central`` (what federated training reproduces exactly at
``subsample = 1``) and its validation AUC is read after several tree counts.

Writes ``bench/results/gbdt_tuning.json`` (``--out``) and prints a table, best first.

Usage::

    .venv/bin/python bench/gbdt_tuning.py              # 3 seeds, every candidate (~7 min)
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from credit.datasets import embedded_data_path
from credit.encoding import fit_encoder
from credit.feature_stats import compute_feature_stats
from credit.gbdt import BoostingParams, bins_from_encoder, raw_matrix, train_central
from credit.metrics import credit_metrics, summarize_scores
from participant.guard.bank import BankSource, prepare_bank
from participant.guard.settings import HoldOut
from simulations.exact import EXACT_SCORE_BINS

RESULTS = Path(__file__).resolve().parents[1] / "bench" / "results"
CANDIDATES = {
    # name: (depth, learning rate, lambda, min child weight, max bins); trained to
    # the largest of --tree-counts, scored at each.
    "d4-lr0.05": (4, 0.05, 1.0, 1.0, 255),
    "d3-lr0.05": (3, 0.05, 1.0, 1.0, 255),
    "d3-lr0.05-l5-mcw5": (3, 0.05, 5.0, 5.0, 255),
    "d4-lr0.03-l5-mcw5": (4, 0.03, 5.0, 5.0, 255),
    "d4-lr0.02-l5-mcw5": (4, 0.02, 5.0, 5.0, 255),
    "d4-lr0.03-l10-mcw10": (4, 0.03, 10.0, 10.0, 255),
    "d5-lr0.02-l10-mcw10": (5, 0.02, 10.0, 10.0, 255),
    "d6-lr0.02-l10-mcw10": (6, 0.02, 10.0, 10.0, 255),
    "d6-lr0.01-l10-mcw20": (6, 0.01, 10.0, 20.0, 255),
    "d4-lr0.03-l5-mcw5-bins63": (4, 0.03, 5.0, 5.0, 63),
}


def validation_aucs(
    seed: int, name: str, tree_counts: list[int]
) -> dict[str, float | dict[str, float]]:
    depth, learning_rate, reg_lambda, min_child_weight, max_bins = CANDIDATES[name]
    params = BoostingParams(
        n_trees=max(tree_counts),
        max_depth=depth,
        learning_rate=learning_rate,
        reg_lambda=reg_lambda,
        min_child_weight=min_child_weight,
        max_bins=max_bins,
    )
    holdout = HoldOut.for_simulation(fraction=0.2, seed=seed, validation_fraction=0.2)
    bank = prepare_bank(BankSource(name="pooled", data_path=embedded_data_path()), holdout)
    target = bank.schema.target
    encoder = fit_encoder(
        bank.schema, stats=compute_feature_stats(bank.train, bank.schema), quantile_bins=max_bins
    )
    bins = bins_from_encoder(encoder)
    started = time.perf_counter()
    ensemble = train_central(
        bins.codes(raw_matrix(bank.train, encoder)),
        bank.train[target].to_numpy(dtype=np.int64),
        params,
        np.random.default_rng(seed),
        bins=bins,
    )
    seconds = time.perf_counter() - started
    codes = bins.codes(raw_matrix(bank.validation, encoder))
    labels = bank.validation[target].to_numpy(dtype=np.int64)
    margin = np.full(len(labels), ensemble.base_margin)
    aucs = {}
    for count, tree in enumerate(ensemble.trees, start=1):
        margin += tree.predict_codes(codes, bins.missing_code)
        if count in tree_counts:
            probabilities = 1.0 / (1.0 + np.exp(-margin))
            summary = summarize_scores(probabilities, labels, EXACT_SCORE_BINS)
            aucs[str(count)] = credit_metrics(summary).auc
    return {"validation_auc": aucs, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--candidates", nargs="+", choices=list(CANDIDATES), default=list(CANDIDATES)
    )
    parser.add_argument("--tree-counts", type=int, nargs="+", default=[100, 200, 300, 400, 600])
    parser.add_argument("--out", type=Path, default=RESULTS / "gbdt_tuning.json")
    args = parser.parse_args()
    runs = []
    for seed in args.seeds:
        for name in args.candidates:
            run = {"seed": seed, "candidate": name, **validation_aucs(seed, name, args.tree_counts)}
            print(json.dumps(run), flush=True)
            runs.append(run)
    ranking = []
    for name in args.candidates:
        for count in args.tree_counts:
            aucs = [r["validation_auc"][str(count)] for r in runs if r["candidate"] == name]  # type: ignore[index]
            ranking.append((statistics.mean(aucs), name, count))
    ranking.sort(reverse=True)
    document = {
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "seeds": args.seeds,
        "candidates": {name: CANDIDATES[name] for name in args.candidates},
        "runs": runs,
        "ranking": [{"candidate": n, "trees": c, "mean_validation_auc": a} for a, n, c in ranking],
    }
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    for auc, name, count in ranking:
        print(f"{name:<22} {count:>4} trees: validation AUC {auc:.4f}")


if __name__ == "__main__":
    main()
