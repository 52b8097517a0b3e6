"""Utility of fedcredit under differential privacy (benchmark, not a test).

Test AUC and KS versus each bank's epsilon for 5 banks on the default split (IID)
and on non-IID splits (Dirichlet alpha = 0.5, and banks by EDUCATION), both models,
several seeds. The runs are the experiment grid ``examples/grids/privacy_utility.toml``
(narrowed by this script's flags), run by :mod:`simulations.experiments` as
``fedcredit experiment run`` runs it: every run a ``fedcredit simulate`` subprocess
in ``--out``/runs/<hash>/, resumable (run the same command again: finished runs are
not repeated). epsilon = inf is the same run without DP. Each bank's epsilon covers
everything it releases: the set-up statistics and DP-SGD on its training rows, and
(in parallel, charged to its held-out rows) the evaluations of its validation part
and of the kept model with the governance release.

Two AUCs per run: the model's exact AUC on the banks' pooled held-out rows, which
only the simulation harness can compute (``simulation.json``, ``exact_final``), is
the utility reported here; the AUC the coordinator computed from the banks' bounded,
summed and (under DP) noisy evaluation releases (``metrics.json``) is reported as its
gap to the exact one. The grid runs ``simulate --reproducible-noise``: every bank's DP
noise and Poisson sampling are keyed from the run's seed (``simulations/noise.py``),
so every run, private or not, repeats exactly at the same seed. Research only: that
noise is predictable from the seed; a bank's real noise is keyed from ``os.urandom``.

Writes ``bench/results/privacy_utility.json``, ``privacy_utility.md`` (README table)
and ``privacy_utility.png``.

Usage::

    .venv/bin/python bench/privacy_utility.py                  # full grid, 3 seeds
    .venv/bin/python bench/privacy_utility.py --seeds 0 --epsilons 1 inf
    .venv/bin/python bench/privacy_utility.py --jobs 2            # two runs at a time

Three local epochs per round: on the EDUCATION split at epsilon = 1 they gave a
higher AUC than one, two or five in a pilot (three seeds each), at the same budget.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from _grids import GridDocument, fixed_settings, grid_parser, load_document, narrowed, run_announced

from simulations.experiments import Grid, GridRun
from simulations.experiments.results import result_rows

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
GRID = "privacy_utility"
SPLITS = ("iid", "dirichlet-0.5", "education")
MODELS = ("logreg", "mlp")


def split_name(options: dict[str, Any]) -> str:
    """A run's split as the table names it: ``iid``, ``dirichlet-0.5``, ``education``."""
    partition = options["partition"]
    if partition == "dirichlet":
        return f"dirichlet-{options['alpha']:g}"
    if partition == "column":
        return str(options["partition_column"]).lower()
    return str(partition)


def _key(epsilon: float) -> float | str:
    return "inf" if math.isinf(epsilon) else epsilon


def bench_grid(args: argparse.Namespace) -> Grid:
    """The example grid narrowed to ``args``' seeds, budgets, rounds, splits and models."""
    document: GridDocument = load_document(GRID)
    document.fixed["rounds"] = args.rounds
    document.vary["seed"] = list(args.seeds)
    document.vary["epsilon"] = ["none" if math.isinf(e) else e for e in args.epsilons]
    grid = document.grid()
    return narrowed(
        grid,
        lambda r: split_name(r.options) in args.splits and r.options["model"] in args.models,
    )


def run_row(grid_run: GridRun, result: dict[str, Any]) -> dict[str, object]:
    """One run's figures as ``privacy_utility.json`` lists them."""
    epsilon = grid_run.options["epsilon"]
    return {
        "split": split_name(grid_run.options),
        "model": grid_run.options["model"],
        "epsilon": "inf" if epsilon is None else epsilon,
        "seed": grid_run.options["seed"],
        "auc": result["auc"],
        "ks": result["ks"],
        "released_auc": result["released_auc"],
        "released_ks": result["released_ks"],
        "max_epsilon_spent": result["max_epsilon_spent"],
        "status": result["status"],
        "wall_seconds": result["wall_seconds"],
    }


def _group(
    runs: list[dict[str, object]], split: str, model: str, key: object
) -> list[dict[str, object]]:
    return [r for r in runs if (r["split"], r["model"], r["epsilon"]) == (split, model, key)]


def summarise(runs: list[dict[str, object]], epsilons: list[float]) -> list[dict[str, object]]:
    """Mean and sd of AUC and KS per (split, model, epsilon)."""
    rows = []
    for split in SPLITS:
        for model in MODELS:
            for epsilon in epsilons:
                group = _group(runs, split, model, _key(epsilon))
                if not group:
                    continue
                aucs = [float(str(r["auc"])) for r in group]
                kss = [float(str(r["ks"])) for r in group]
                gaps = [
                    abs(float(str(r["released_auc"])) - float(str(r["auc"])))
                    for r in group
                    if r.get("released_auc") is not None
                ]
                rows.append(
                    {
                        "split": split,
                        "model": model,
                        "epsilon": _key(epsilon),
                        "runs": len(group),
                        "auc_mean": statistics.fmean(aucs),
                        "auc_sd": statistics.stdev(aucs) if len(aucs) > 1 else 0.0,
                        "ks_mean": statistics.fmean(kss),
                        "ks_sd": statistics.stdev(kss) if len(kss) > 1 else 0.0,
                        "released_auc_gap_mean": statistics.fmean(gaps) if gaps else None,
                        "released_auc_gap_max": max(gaps) if gaps else None,
                    }
                )
    return rows


def markdown(summary: list[dict[str, object]], epsilons: list[float]) -> str:
    """README table: AUC (and KS) mean ± sd per split and model, one column per epsilon."""
    labels = ["∞" if math.isinf(e) else f"{e:g}" for e in epsilons]
    lines = [
        "| split | model | metric | " + " | ".join(f"ε = {label}" for label in labels) + " |",
        "|---|---|---|" + "---|" * len(labels),
    ]
    index = {(r["split"], r["model"], r["epsilon"]): r for r in summary}
    for split in SPLITS:
        for model in MODELS:
            for metric in ("auc", "ks"):
                cells = []
                for epsilon in epsilons:
                    row = index.get((split, model, _key(epsilon)))
                    cells.append(
                        f"{row[metric + '_mean']:.4f} ± {row[metric + '_sd']:.4f}" if row else "—"
                    )
                lines.append(
                    f"| {split} | {model} | {metric.upper()} | " + " | ".join(cells) + " |"
                )
            cells = []
            for epsilon in epsilons:
                row = index.get((split, model, _key(epsilon)))
                gap = row.get("released_auc_gap_mean") if row else None
                cells.append(
                    f"{gap:.4f} (max {row['released_auc_gap_max']:.4f})"
                    if row and gap is not None
                    else "—"
                )
            lines.append(
                f"| {split} | {model} | abs(released - exact) AUC | " + " | ".join(cells) + " |"
            )
    return "\n".join(lines) + "\n"


def plot(summary: list[dict[str, object]], epsilons: list[float], path: Path) -> None:
    """AUC and KS versus epsilon (log scale), non-private level dotted."""
    finite = [e for e in epsilons if not math.isinf(e)]
    figure, axes = plt.subplots(1, 2, figsize=(11, 4), dpi=110)
    for axis, metric in zip(axes, ("auc", "ks"), strict=True):
        for split in SPLITS:
            for model in MODELS:
                rows = {
                    r["epsilon"]: r for r in summary if (r["split"], r["model"]) == (split, model)
                }
                xs = [e for e in finite if e in rows]
                if not xs:
                    continue
                means = [float(str(rows[e][f"{metric}_mean"])) for e in xs]
                sds = [float(str(rows[e][f"{metric}_sd"])) for e in xs]
                drawn = axis.errorbar(
                    xs, means, yerr=sds, marker="o", capsize=3, label=f"{split} {model}"
                )
                if "inf" in rows:
                    level = float(str(rows["inf"][f"{metric}_mean"]))
                    axis.axhline(level, linestyle=":", color=drawn[0].get_color())
        axis.set_xscale("log", base=2)
        axis.set_xlabel("ε per bank (dotted: same run without DP)")
        axis.set_ylabel(f"pooled test {metric.upper()} (mean ± sd)")
        axis.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    figure.suptitle("fedcredit: utility versus record-level privacy budget")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The benchmark's flags (``argv``: default the command line)."""
    parser = grid_parser(__doc__.splitlines()[0], rounds=10, out="bench-privacy-utility")
    parser.add_argument("--epsilons", type=float, nargs="+", default=[0.1, 0.25, 0.5, 1, math.inf])
    parser.add_argument("--splits", nargs="+", choices=SPLITS, default=list(SPLITS))
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    grid = bench_grid(args)
    run_announced(grid, args.out, jobs=args.jobs)
    runs = [
        run_row(grid_run, result)
        for grid_run, result in zip(grid.runs, result_rows(grid, args.out), strict=True)
    ]
    RESULTS.mkdir(parents=True, exist_ok=True)
    print(write_results(runs, args, settings=fixed_settings(grid), complete=True))


def _run_order(run: dict[str, object]) -> tuple[str, str, float, int]:
    epsilon = run["epsilon"]
    value = math.inf if epsilon == "inf" else float(str(epsilon))
    return str(run["split"]), str(run["model"]), value, int(str(run["seed"]))


def write_results(
    runs: list[dict[str, object]], args: argparse.Namespace, *, settings: list[str], complete: bool
) -> str:
    """Write JSON, table and plot; ``settings``: the grid's fixed flags besides --rounds."""
    runs = sorted(runs, key=_run_order)
    summary = summarise(runs, args.epsilons)
    document = {
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "complete": complete,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "rounds": args.rounds,
        "settings": settings,
        "seeds": args.seeds,
        "summary": summary,
        "runs": runs,
    }
    (RESULTS / "privacy_utility.json").write_text(json.dumps(document, indent=2) + "\n")
    table = markdown(summary, args.epsilons)
    (RESULTS / "privacy_utility.md").write_text(table)
    plot(summary, args.epsilons, RESULTS / "privacy_utility.png")
    return table


if __name__ == "__main__":
    main()
