"""Model quality of fedcredit simulate across splits and models (benchmark, not a test).

Runs ``fedcredit simulate`` as a subprocess for every (split, model, seed) and a
centralised LightGBM reference on exactly the same held-out customers, then writes
``bench/results/quality.json`` and a Markdown table ``bench/results/quality.md``
(pasted into README.md).

Usage::

    .venv/bin/python bench/quality.py                 # 3 seeds, 30 rounds
    .venv/bin/python bench/quality.py --seeds 0 --rounds 10
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from _simulate import simulate

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
SPLITS = {
    "iid-5": ["--partition", "iid", "--banks", "5"],
    "dirichlet-0.5-5": ["--partition", "dirichlet", "--alpha", "0.5", "--banks", "5"],
    "education": ["--partition", "column", "--partition-column", "EDUCATION"],
    "central": ["--partition", "iid", "--banks", "1", "--no-secure-aggregation"],
}
MODELS = {
    "logreg": ["--model", "logreg", "--encoding", "binned"],
    "mlp": ["--model", "mlp", "--encoding", "standardized"],
}


def run_simulation(split: str, model: str, seed: int, rounds: int, work: Path) -> dict[str, object]:
    arguments = [*SPLITS[split], *MODELS[model], "--rounds", str(rounds), "--seed", str(seed)]
    document, seconds = simulate(arguments, work / f"{split}-{model}-{seed}")
    return {
        "split": split,
        "model": model,
        "encoding": MODELS[model][3],
        "seed": seed,
        "rounds": rounds,
        "banks": len(document["participants"]),
        "auc": document["final"]["auc"],
        "ks": document["final"]["ks"],
        "auc_by_round": [r["auc"] for r in document["rounds"]],
        "wall_seconds": seconds,
    }


def lightgbm_reference(seed: int) -> dict[str, object]:
    """Centralised LightGBM on the same held-out customers as the simulations."""
    import lightgbm
    from sklearn.metrics import roc_auc_score, roc_curve

    from credit.datasets import embedded_data_path
    from credit.loading import load_bank_csv
    from credit.schema import load_schema
    from participant.guard.bank import held_out_rows
    from participant.guard.settings import HoldOut

    schema = load_schema()
    frame = load_bank_csv(embedded_data_path(), schema).frame
    test = held_out_rows(frame, schema, HoldOut.for_simulation(fraction=0.2, seed=seed))
    features = list(schema.input_features)
    model = lightgbm.LGBMClassifier(
        n_estimators=300, learning_rate=0.03, num_leaves=15, random_state=seed, verbose=-1
    )
    model.fit(frame.loc[~test, features], frame.loc[~test, schema.target])
    scores = model.predict_proba(frame.loc[test, features])[:, 1]
    labels = frame.loc[test, schema.target].to_numpy()
    fpr, tpr, _ = roc_curve(labels, scores)
    return {
        "seed": seed,
        "auc": float(roc_auc_score(labels, scores)),
        "ks": float(np.max(tpr - fpr)),
    }


def summarise(results: list[dict[str, object]]) -> list[dict[str, object]]:
    rows = []
    for split in SPLITS:
        for model in MODELS:
            runs = [r for r in results if r["split"] == split and r["model"] == model]
            if not runs:
                continue
            aucs = [float(r["auc"]) for r in runs]  # type: ignore[arg-type]
            kss = [float(r["ks"]) for r in runs]  # type: ignore[arg-type]
            rows.append(
                {
                    "split": split,
                    "model": model,
                    "runs": len(runs),
                    "auc_mean": statistics.fmean(aucs),
                    "auc_sd": statistics.stdev(aucs) if len(aucs) > 1 else 0.0,
                    "ks_mean": statistics.fmean(kss),
                    "ks_sd": statistics.stdev(kss) if len(kss) > 1 else 0.0,
                }
            )
    return rows


def markdown(summary: list[dict[str, object]], lgbm: list[dict[str, object]], rounds: int) -> str:
    lines = [
        "| split | model | test AUC | test KS | runs |",
        "|---|---|---|---|---|",
    ]
    for row in summary:
        lines.append(
            f"| {row['split']} | {row['model']} | {row['auc_mean']:.4f} ± {row['auc_sd']:.4f} "
            f"| {row['ks_mean']:.4f} ± {row['ks_sd']:.4f} | {row['runs']} |"
        )
    aucs = [float(r["auc"]) for r in lgbm]  # type: ignore[arg-type]
    kss = [float(r["ks"]) for r in lgbm]  # type: ignore[arg-type]
    sd = statistics.stdev(aucs) if len(aucs) > 1 else 0.0
    ks_sd = statistics.stdev(kss) if len(kss) > 1 else 0.0
    lines.append(
        f"| central (reference) | LightGBM | {statistics.fmean(aucs):.4f} ± {sd:.4f} "
        f"| {statistics.fmean(kss):.4f} ± {ks_sd:.4f} | {len(aucs)} |"
    )
    lines.append("")
    lines.append(f"{rounds} rounds, 1 local epoch, batch 64; mean ± sd over seeds.")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    results = []
    with tempfile.TemporaryDirectory() as work:
        for seed in args.seeds:
            for split in SPLITS:
                for model in MODELS:
                    result = run_simulation(split, model, seed, args.rounds, Path(work))
                    print(
                        f"{split:<16} {model:<7} seed {seed}: AUC {result['auc']:.4f} "
                        f"KS {result['ks']:.4f} ({result['wall_seconds']:.0f} s)",
                        flush=True,
                    )
                    results.append(result)
    lgbm = [lightgbm_reference(seed) for seed in args.seeds]
    summary = summarise(results)
    document = {
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "rounds": args.rounds,
        "seeds": args.seeds,
        "summary": summary,
        "lightgbm_central": lgbm,
        "runs": results,
    }
    (RESULTS / "quality.json").write_text(json.dumps(document, indent=2) + "\n")
    table = markdown(summary, lgbm, args.rounds)
    (RESULTS / "quality.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
