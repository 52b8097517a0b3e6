"""Model quality of fedcredit simulate across splits and models (benchmark, not a test).

Runs the experiment grid ``examples/grids/quality.toml`` (narrowed by this script's
flags) with :mod:`simulations.experiments`, as ``fedcredit experiment run`` runs it:
every (split, model, seed) a ``fedcredit simulate`` subprocess in ``--out``/runs/<hash>/,
resumable. Then a centralised LightGBM reference on exactly the same held-out
customers; writes ``bench/results/quality.json`` and a Markdown table
``bench/results/quality.md`` (pasted into README.md).

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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from _grids import GridDocument, grid_parser, load_document, run_announced

from simulations.experiments import Grid, GridRun
from simulations.experiments.runner import METRICS_FILE, read_record, run_folder

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
GRID = "quality"
SPLITS = ("iid-5", "dirichlet-0.5-5", "education", "central")
MODELS = ("logreg", "mlp")


def split_name(options: dict[str, Any]) -> str:
    """A run's split as the table names it: ``iid-5``, ``dirichlet-0.5-5``, ``education``,
    ``central`` (all rows in one bank, no secure aggregation)."""
    partition, banks = options["partition"], options["banks"]
    if partition == "iid" and banks == 1 and not options["secure_aggregation"]:
        return "central"
    if partition == "dirichlet":
        return f"dirichlet-{options['alpha']:g}-{banks}"
    if partition == "column":
        return str(options["partition_column"]).lower()
    return f"{partition}-{banks}"


def bench_grid(args: argparse.Namespace) -> Grid:
    """The example grid with ``args``' seeds and rounds."""
    document: GridDocument = load_document(GRID)
    document.fixed["rounds"] = args.rounds
    document.vary["seed"] = list(args.seeds)
    return document.grid()


def run_simulation(grid_run: GridRun, out: Path) -> dict[str, object]:
    """One finished run's figures as ``quality.json`` lists them (the released metrics)."""
    folder = run_folder(out, grid_run)
    document = json.loads((folder / METRICS_FILE).read_text())
    record = read_record(folder)
    options = grid_run.options
    return {
        "split": split_name(options),
        "model": options["model"],
        "encoding": options["encoding"],
        "seed": options["seed"],
        "rounds": options["rounds"],
        "banks": len(document["participants"]),
        "auc": document["final"]["auc"],
        "ks": document["final"]["ks"],
        "auc_by_round": [r["auc"] for r in document["rounds"]],
        "wall_seconds": record.wall_seconds if record else None,
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


def markdown(summary: list[dict[str, object]], lgbm: list[dict[str, object]], training: str) -> str:
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
    lines.append(f"{training}; mean ± sd over seeds.")
    return "\n".join(lines) + "\n"


def training_text(grid_run: GridRun) -> str:
    """How each run trained, from its options (``30 rounds, 50 local steps, batch 64``)."""
    options = grid_run.options
    epochs = options["local_epochs"]
    local = f"{epochs} local epochs" if epochs else f"{options['local_steps']} local steps"
    return f"{options['rounds']} rounds, {local}, batch {options['batch_size']}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The benchmark's flags (``argv``: default the command line)."""
    parser = grid_parser(__doc__.splitlines()[0], rounds=30, out="bench-quality")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    grid = bench_grid(args)
    run_announced(grid, args.out, jobs=args.jobs)
    results = [run_simulation(grid_run, args.out) for grid_run in grid.runs]
    for result in results:
        print(
            f"{result['split']!s:<16} {result['model']!s:<7} seed {result['seed']}: "
            f"AUC {float(str(result['auc'])):.4f} KS {float(str(result['ks'])):.4f}",
            flush=True,
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
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
    table = markdown(summary, lgbm, training_text(grid.runs[0]))
    (RESULTS / "quality.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
