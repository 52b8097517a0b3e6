"""A grid's report: AUC against each varied numeric option (seeds as error bars), and a page.

From ``DIR/results.csv`` (:mod:`simulations.experiments.results`): for every varied
option whose values are two or more numbers (``seed`` aside: ``epsilon``, ``alpha``,
``banks``, ``dropout_rate``, ``rounds``, whichever the grid varied),
``DIR/auc-vs-<option>.png`` draws the mean exact AUC over the seeds (error bars: the
sample sd, ddof=1; 0 with one seed) against the option, one line per combination of
the other varied options that take more than one value (a bundle fills in options it
does not set: ``alpha`` is 0.5 on every split of the privacy-utility grid). A
``none`` value of the option (``epsilon = "none"``: the run without DP) is drawn as a
dotted horizontal line at its mean, in its line's colour. Only finished runs
(``completed`` or ``stopped: ...``) are plotted. ``DIR/report.html``
(:mod:`simulations.experiments.page`) shows the plots and a table of every run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from credit.errors import ConfigError
from simulations.experiments.page import PAGE_FILE, Plot, render_page, summary_of
from simulations.experiments.results import METRIC_COLUMNS, RESULTS_FILE

__all__ = [
    "ReportFiles",
    "auc_summary",
    "numeric_options",
    "read_results",
    "varied_options",
    "write_report",
]


@dataclass(frozen=True)
class ReportFiles:
    """What :func:`write_report` wrote: one PNG per numeric option, and the page."""

    plots: tuple[Path, ...]
    page: Path


_SEED = "seed"
_NONE = "none"


def read_results(out: Path) -> pd.DataFrame:
    """``out/results.csv`` as text columns (``ConfigError`` when it is missing)."""
    path = out / RESULTS_FILE
    if not path.exists():
        raise ConfigError(
            f"no {RESULTS_FILE}; run `fedcredit experiment run GRID.toml --out {out}` first",
            source=str(out),
        )
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def varied_options(frame: pd.DataFrame) -> list[str]:
    """The varied option columns: those between ``run`` and the metrics."""
    return [column for column in frame.columns if column != "run" and column not in METRIC_COLUMNS]


def numeric_options(frame: pd.DataFrame) -> list[str]:
    """Varied options (``seed`` aside) whose values, ``none`` aside, are two or more numbers."""
    numeric = []
    for option in varied_options(frame):
        values = frame.loc[frame[option] != _NONE, option]
        parsed = pd.to_numeric(values, errors="coerce")
        if option != _SEED and not parsed.isna().any() and parsed.nunique() >= 2:
            numeric.append(option)
    return numeric


def auc_summary(frame: pd.DataFrame, option: str) -> pd.DataFrame:
    """Mean and sd of the AUC over the seeds, per ``option`` value and line.

    Returns
    -------
    pandas.DataFrame
        Columns ``line`` (the other varied options that take more than one value,
        ``"k=v, ..."``; ``""`` when none),
        ``option`` (a float, NaN for ``none``), ``auc_mean``, ``auc_sd`` and ``runs``;
        sorted by line and option.
    """
    finished = frame[(frame["status"] == "completed") | frame["status"].str.startswith("stopped")]
    others = [
        name
        for name in varied_options(frame)
        if name not in (option, _SEED) and finished[name].nunique() > 1
    ]
    data = pd.DataFrame(
        {
            "line": finished[others].apply(
                lambda row: ", ".join(f"{name}={row[name]}" for name in others), axis=1
            )
            if others
            else "",
            "option": pd.to_numeric(finished[option].where(finished[option] != _NONE)),
            "auc": pd.to_numeric(finished["auc"]),
        }
    )
    grouped = data.groupby(["line", "option"], dropna=False)["auc"]
    summary = grouped.agg(auc_mean="mean", auc_sd="std", runs="count").reset_index()
    summary["auc_sd"] = summary["auc_sd"].fillna(0.0)
    return summary.sort_values(["line", "option"], na_position="last").reset_index(drop=True)


def write_report(out: Path) -> ReportFiles:
    """Write ``out/auc-vs-<option>.png`` for each numeric option and ``out/report.html``."""
    frame = read_results(out)
    options = numeric_options(frame)
    plots = [_plot(auc_summary(frame, option), option, out) for option in options]
    summary = summary_of(
        frame,
        varied_options(frame),
        [Plot.of(option, path) for option, path in zip(options, plots, strict=True)],
        title=out.resolve().name,
    )
    page = out / PAGE_FILE
    page.write_text(render_page(summary), encoding="utf-8")
    return ReportFiles(plots=tuple(plots), page=page)


def _plot(summary: pd.DataFrame, option: str, out: Path) -> Path:
    figure, axis = plt.subplots(figsize=(7, 4.5), dpi=110)
    for line, rows in summary.groupby("line", sort=True):
        points = rows[rows["option"].notna()]
        drawn = axis.errorbar(
            points["option"],
            points["auc_mean"],
            yerr=points["auc_sd"],
            marker="o",
            capsize=3,
            label=str(line) or "AUC",
        )
        for level in rows.loc[rows["option"].isna(), "auc_mean"]:
            axis.axhline(level, linestyle=":", color=drawn[0].get_color())
    values = summary["option"].dropna()
    if values.min() > 0 and values.max() / values.min() >= 10:
        axis.set_xscale("log")
    unset = f" (dotted: {option} = none)" if summary["option"].isna().any() else ""
    axis.set_xlabel(option + unset)
    axis.set_ylabel("pooled test AUC (mean ± sd over seeds)")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7)
    figure.tight_layout()
    path = out / f"auc-vs-{option.replace('_', '-')}.png"
    figure.savefig(path)
    plt.close(figure)
    return path
