"""The targets and tables of ``bench/governance.py``, from its per-seed measurements."""

from __future__ import annotations

import statistics
from typing import Any

__all__ = ["TARGETS", "markdown", "targets"]

TARGETS = {
    "woe_iv_vs_pooled": 1e-9,
    "scorecard_auc_gap": 0.003,
    "fairness_vs_fairlearn": 1e-9,
    "missing_auc_drop": 0.005,
}


def _mean(values: list[float]) -> dict[str, float]:
    return {
        "mean": statistics.fmean(values),
        "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
        "max": max(values),
        "min": min(values),
    }


def _at_most(values: list[float], threshold: float) -> dict[str, Any]:
    """A target met when the mean over seeds is <= threshold; how many seeds meet it."""
    return {
        "threshold": threshold,
        "values": _mean(values),
        "met": statistics.fmean(values) <= threshold,
        "seeds_met": sum(value <= threshold for value in values),
    }


def targets(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """Each target: threshold, measured value and whether it is met.

    The exact-equality targets take the largest difference over every run; the AUC
    targets the mean over seeds (``seeds_met`` counts the seeds that meet them alone).
    """
    woe_iv = max(max(seed["woe_iv_max_abs_diff"].values()) for seed in per_seed)
    fairness = max(seed["fairness_max_abs_diff"] for seed in per_seed)
    result: dict[str, Any] = {}
    for name, value in (("woe_iv_vs_pooled", woe_iv), ("fairness_vs_fairlearn", fairness)):
        threshold = TARGETS[name]
        result[name] = {"threshold": threshold, "max_abs_diff": value, "met": value <= threshold}
    for name in ("default", "converged"):
        gaps = [seed["scorecard"][name]["gap"] for seed in per_seed]
        result[f"scorecard_auc_gap_{name}"] = _at_most(gaps, TARGETS["scorecard_auc_gap"])
    aucs = [seed["missing_values"]["auc"] for seed in per_seed]
    drops = [a["complete"] - a["blanked"] for a in aucs]
    result["missing_auc_drop"] = _at_most(drops, TARGETS["missing_auc_drop"])
    # Better than dropping: blanked - dropped > 0, i.e. dropped - blanked < 0.
    losses = [a["dropped"] - a["blanked"] for a in aucs]
    beats = _at_most(losses, 0.0)
    beats["met"] = statistics.fmean(losses) < 0
    beats["seeds_met"] = sum(loss < 0 for loss in losses)
    result["missing_beats_dropping"] = beats
    return result


def _cell(values: list[float]) -> str:
    summary = _mean(values)
    return f"{summary['mean']:.4f} ± {summary['sd']:.4f}"


def _met(met: bool) -> str:
    return "yes" if met else "**no**"


def _target_rows(goals: dict[str, Any], n_seeds: int) -> list[str]:
    """One row per target: what, threshold, measured, met."""

    def exact(name: str, what: str) -> str:
        goal = goals[name]
        measured = f"{goal['max_abs_diff']:.1e}"
        return f"| {what} | ≤ 1e-9 | {measured} | {_met(goal['met'])} |"

    def mean(name: str, what: str, threshold: str, sign: int = 1) -> str:
        goal = goals[name]
        value = goal["values"]
        measured = f"{sign * value['mean']:+.4f} (worst seed {sign * value['max']:+.4f})"
        met = f"{_met(goal['met'])} ({goal['seeds_met']} of {n_seeds} seeds)"
        return f"| {what} | {threshold} | {measured} | {met} |"

    return [
        "| target | threshold | measured (mean over seeds) | met |",
        "|---|---|---|---|",
        exact(
            "woe_iv_vs_pooled", "WoE/IV tables, federated vs pooled training rows (max abs diff)"
        ),
        *(
            mean(
                f"scorecard_auc_gap_{name}",
                f"scorecard AUC vs binned logistic regression, {name} training: binned - scorecard",
                "≤ 0.003",
            )
            for name in ("default", "converged")
        ),
        exact(
            "fairness_vs_fairlearn", "fairness vs Fairlearn on pooled predictions (max abs diff)"
        ),
        mean("missing_auc_drop", "missing-value bins: AUC complete - blanked", "≤ 0.005"),
        mean(
            "missing_beats_dropping",
            "missing-value bins vs dropping incomplete rows: AUC blanked - dropped",
            "> 0",
            sign=-1,
        ),
    ]


def _auc_rows(per_seed: list[dict[str, Any]]) -> list[str]:
    """The AUCs behind the targets, mean ± sd over seeds."""
    lines = [
        "| test AUC, same held-out customers | default training | converged training |",
        "|---|---|---|",
    ]
    for key, label in SCORECARD_ROWS:
        cells = [
            _cell([s["scorecard"][n][key] for s in per_seed]) for n in ("default", "converged")
        ]
        lines.append(f"| {label} | {' | '.join(cells)} |")
    lines += ["", "| centralised fit on the same rows and bins | test AUC |", "|---|---|"]
    for key, label in CENTRAL_ROWS:
        lines.append(f"| {label} | {_cell([s['central'][key] for s in per_seed])} |")
    lines += [
        "",
        "| missing values (binned, default training) | all held-out | complete held-out |",
        "|---|---|---|",
    ]
    for key, label in MISSING_ROWS:
        everyone = _cell([s["missing_values"]["auc"][key] for s in per_seed])
        complete = _cell([s["missing_values"]["auc_complete_customers"][key] for s in per_seed])
        lines.append(f"| {label} | {everyone} | {complete} |")
    return lines


def markdown(document: dict[str, Any]) -> str:
    """The README tables: targets, then the AUCs behind them."""
    settings = document["settings"]
    default, converged = settings["default"], settings["converged"]
    footer = (
        f"Banks by EDUCATION, secure aggregation, no DP; seeds {document['seeds']}, mean ± sd. "
        f"Default training (the run's defaults): {default['rounds']} rounds of "
        f"{default['local_steps']} local steps; converged: {converged['rounds']} rounds of "
        f"{converged['local_epochs']} local epochs (both: learning rate "
        f"{default['learning_rate']:g}, batch {default['batch_size']}, validation part "
        f"{default['validation_fraction']:g} of each bank's training rows, best round kept)."
    )
    per_seed = document["per_seed"]
    lines = [
        *_target_rows(document["targets"], len(per_seed)),
        "",
        *_auc_rows(per_seed),
        "",
        footer,
    ]
    return "\n".join(lines) + "\n"


SCORECARD_ROWS = (
    ("binned_auc", "binned logistic regression (one-hot quantile bins)"),
    ("woe_model_auc", "logistic regression on WoE (= unrounded scorecard)"),
    ("scorecard_auc", "integer scorecard"),
)
MISSING_ROWS = (
    ("complete", "complete data"),
    ("blanked", "blanked, missing bins"),
    ("dropped", "blanked, incomplete rows dropped (blanks scored as the median)"),
)
CENTRAL_ROWS = (
    ("binned_onehot", "one-hot quantile bins (as `--encoding binned`)"),
    ("binned_onehot_l2", "one-hot quantile bins, L2 (C = 0.01)"),
    ("merged_onehot", "one-hot of the WoE run's merged bins"),
    ("woe", "WoE of the WoE run's merged bins"),
    ("woe_l2", "WoE of the WoE run's merged bins, L2 (C = 0.01)"),
    ("woe_scorecard", "WoE of the WoE run's merged bins, integer scorecard"),
    ("woe_prebins_20", "WoE of bins merged from 20 quantile bins instead of 10"),
)
