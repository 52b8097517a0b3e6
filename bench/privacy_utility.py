"""Utility of fedcredit under differential privacy (benchmark, not a test).

Test AUC and KS versus each bank's epsilon for 5 banks on the default split (IID)
and on non-IID splits (Dirichlet alpha = 0.5, and banks by EDUCATION), both models,
several seeds. Every run is a ``fedcredit simulate`` subprocess; epsilon = inf is the
same run without DP. Each bank's epsilon covers everything it releases: the set-up
statistics and DP-SGD on its training rows, and (in parallel, charged to its held-out
rows) the evaluations of its validation part and of the kept model with the
governance release.

Two AUCs per run: the model's exact AUC on the banks' pooled held-out rows, which
only the simulation harness can compute (``simulation.json``, ``exact_final``), is
the utility reported here; the AUC the coordinator computed from the banks' bounded,
summed and (under DP) noisy evaluation releases (``metrics.json``) is reported as its
gap to the exact one.

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
import tempfile
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import UTC, datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from _simulate import simulate

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
SPLITS = {
    "iid": ["--partition", "iid", "--banks", "5"],
    "dirichlet-0.5": ["--partition", "dirichlet", "--alpha", "0.5", "--banks", "5"],
    "education": ["--partition", "column", "--partition-column", "EDUCATION"],
}
MODELS = {
    "logreg": ["--model", "logreg", "--encoding", "binned"],
    "mlp": ["--model", "mlp", "--encoding", "standardized"],
}
COMMON = ["--batch-size", "256", "--learning-rate", "0.05", "--local-epochs", "3"]


def _key(epsilon: float) -> float | str:
    return "inf" if math.isinf(epsilon) else epsilon


def run_one(
    split: str, model: str, epsilon: float, seed: int, rounds: int, work: Path
) -> dict[str, object]:
    """One ``fedcredit simulate`` run; its final metrics and privacy spend."""
    privacy = [] if math.isinf(epsilon) else ["--epsilon", str(epsilon)]
    arguments = [*SPLITS[split], *MODELS[model], *COMMON, *privacy]
    arguments += ["--rounds", str(rounds), "--seed", str(seed)]
    document, seconds = simulate(arguments, work / f"{split}-{model}-{epsilon}-{seed}")
    spent = [ledger["epsilon"] for ledger in document["privacy"].values()]
    out = work / f"{split}-{model}-{epsilon}-{seed}"
    exact = json.loads((out / "simulation.json").read_text())["exact_final"]
    released = document["final"]
    return {
        "split": split,
        "model": model,
        "epsilon": _key(epsilon),
        "seed": seed,
        "auc": exact["auc"],
        "ks": exact["ks"],
        "released_auc": released.get("auc"),
        "released_ks": released.get("ks"),
        "max_epsilon_spent": max(spent) if spent else None,
        "status": document["status"],
        "wall_seconds": seconds,
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epsilons", type=float, nargs="+", default=[0.1, 0.25, 0.5, 1, math.inf])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--splits", nargs="+", choices=list(SPLITS), default=list(SPLITS))
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument(
        "--jobs", type=int, default=1, help="simulations at a time (AUC is unaffected)"
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="keep the runs already in privacy_utility.json (same rounds) and do the rest",
    )
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    runs: list[dict[str, object]] = _previous_runs(args) if args.resume else []
    done = {(r["split"], r["model"], r["epsilon"], r["seed"]) for r in runs}
    todo = [
        (split, model, epsilon, seed)
        for seed in args.seeds
        for split in args.splits
        for model in args.models
        for epsilon in args.epsilons
        if (split, model, _key(epsilon), seed) not in done
    ]
    with tempfile.TemporaryDirectory() as work, ThreadPoolExecutor(args.jobs) as pool:
        futures = [
            pool.submit(run_one, split, model, epsilon, seed, args.rounds, Path(work))
            for split, model, epsilon, seed in todo
        ]
        for future in as_completed(futures):
            run = future.result()
            print(
                f"{run['split']!s:<14} {run['model']!s:<7} eps={run['epsilon']!s:<4} "
                f"seed {run['seed']}: AUC {float(str(run['auc'])):.4f} "
                f"KS {float(str(run['ks'])):.4f} (released AUC {run['released_auc']}) "
                f"({float(str(run['wall_seconds'])):.0f} s)",
                flush=True,
            )
            runs.append(run)
            write_results(runs, args, complete=False)
    table = write_results(runs, args, complete=True)
    print(table)


def _previous_runs(args: argparse.Namespace) -> list[dict[str, object]]:
    path = RESULTS / "privacy_utility.json"
    if not path.exists():
        return []
    previous = json.loads(path.read_text())
    if previous["rounds"] != args.rounds or previous["settings"] != COMMON:
        raise SystemExit(f"{path} was measured with other settings; run without --resume")
    runs: list[dict[str, object]] = previous["runs"]
    return runs


def _run_order(run: dict[str, object]) -> tuple[str, str, float, int]:
    epsilon = run["epsilon"]
    value = math.inf if epsilon == "inf" else float(str(epsilon))
    return str(run["split"]), str(run["model"]), value, int(str(run["seed"]))


def write_results(
    runs: list[dict[str, object]], args: argparse.Namespace, *, complete: bool
) -> str:
    """Write JSON (after every run, so a long benchmark keeps what it measured), table, plot."""
    runs = sorted(runs, key=_run_order)
    summary = summarise(runs, args.epsilons)
    document = {
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "complete": complete,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "rounds": args.rounds,
        "settings": COMMON,
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
