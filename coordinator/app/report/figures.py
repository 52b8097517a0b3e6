"""The model report's charts, drawn with matplotlib and embedded in the page.

Each chart is an SVG drawn without pyplot (no global figure state) and returned as a
``data:image/svg+xml;base64,...`` URI: the page needs no other file and makes no
request, and each SVG keeps its own element ids (inlined, several would clash).
Text stays text (``svg.fonttype = none``), which keeps the charts small; the viewer's
sans-serif font draws it.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from matplotlib.typing import RcKeyType

from coordinator.app.report.boosting import FeatureImportance, TreeRow
from coordinator.app.report.contents import ReportContents, RoundRow
from coordinator.app.report.curves import (
    KsCurve,
    RocCurve,
    ScoreDistribution,
    ks_curve,
    roc_curve,
    score_distribution,
)
from coordinator.app.report.governance import CalibrationSection, FeatureWoe
from coordinator.app.run_state import ScoreHistograms

__all__ = ["ReportFigures", "draw_figures"]

_STYLE: dict[RcKeyType, Any] = {
    "svg.fonttype": "none",
    "svg.hashsalt": "fedcredit-report",
    "font.family": "sans-serif",
    "font.size": 9.0,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
}
_DEFAULTER = "#c0392b"
_NON_DEFAULTER = "#2471a3"
_NEUTRAL = "#7f8c8d"
_SIZE = (5.2, 3.6)
_MOST_FEATURES = 25
"""Most features the information-value and importance charts show (the tables list
every one)."""


@dataclass(frozen=True)
class ReportFigures:
    """Each chart as a data URI (None: the report has no data for it)."""

    rounds: str | None = None
    roc: str | None = None
    ks: str | None = None
    distribution: str | None = None
    calibration: str | None = None
    information_value: str | None = None
    trees: str | None = None
    importance: str | None = None


def draw_figures(contents: ReportContents) -> ReportFigures:
    """Every chart the report's contents allow."""
    scores = contents.scores
    return ReportFigures(
        rounds=_rounds_chart(contents.rounds, scored_on=contents.rounds_scored_on),
        roc=_roc_chart(roc_curve(*_classes(scores))) if scores else None,
        ks=_ks_chart(ks_curve(*_classes(scores))) if scores else None,
        distribution=_distribution_chart(score_distribution(*_classes(scores))) if scores else None,
        calibration=_calibration_chart(contents.calibration) if contents.calibration else None,
        information_value=_iv_chart(contents.woe_iv) if contents.woe_iv else None,
        trees=_trees_chart(contents.boosting.trees) if contents.boosting else None,
        importance=_importance_chart(contents.importance),
    )


def _classes(scores: ScoreHistograms) -> tuple[tuple[float, ...], tuple[float, ...]]:
    return scores.defaulters, scores.non_defaulters


def _svg_uri(draw: Callable[[Axes], None], *, size: tuple[float, float] = _SIZE) -> str:
    """Draw one chart on a new figure; return it as an SVG data URI."""
    with matplotlib.rc_context(_STYLE):
        figure = Figure(figsize=size, layout="constrained")
        draw(figure.add_subplot())
        buffer = io.BytesIO()
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _rounds_chart(rounds: Sequence[RoundRow], *, scored_on: str) -> str | None:
    """AUC and KS per scored round; aborted rounds shaded (None: none scored).

    ``scored_on``: the rows the rounds were scored on (``validation`` or ``test``).
    """
    scored = [
        (row.server_round, row.auc, row.ks)
        for row in rounds
        if row.auc is not None and row.ks is not None
    ]
    if not scored:
        return None

    def draw(axis: Axes) -> None:
        numbers, aucs, kss = zip(*scored, strict=True)
        axis.plot(numbers, aucs, marker="o", label="AUC")
        axis.plot(numbers, kss, marker="s", label="KS")
        aborted = [row.server_round for row in rounds if row.aborted]
        for index, number in enumerate(aborted):
            label = "aborted (model unchanged)" if index == 0 else None
            axis.axvspan(number - 0.4, number + 0.4, color=_DEFAULTER, alpha=0.15, label=label)
        axis.set_xlabel("round")
        axis.set_ylabel(f"pooled {scored_on} metric")
        axis.set_title(f"{scored_on.capitalize()} AUC and KS per round")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.legend()

    return _svg_uri(draw)


def _roc_chart(curve: RocCurve) -> str:
    def draw(axis: Axes) -> None:
        axis.plot(
            curve.false_positive_rate,
            curve.true_positive_rate,
            color=_DEFAULTER,
            label=f"model (AUC {curve.auc:.4f})",
        )
        axis.plot([0, 1], [0, 1], linestyle="--", color=_NEUTRAL, label="random")
        axis.set_xlabel("false-positive rate (non-defaulters flagged)")
        axis.set_ylabel("true-positive rate (defaulters flagged)")
        axis.set_title("ROC curve")
        axis.set_xlim(0, 1)
        axis.set_ylim(0, 1.01)
        axis.legend(loc="lower right")

    return _svg_uri(draw)


def _ks_chart(curve: KsCurve) -> str:
    def draw(axis: Axes) -> None:
        axis.plot(curve.thresholds, curve.defaulters, color=_DEFAULTER, label="defaulters")
        axis.plot(
            curve.thresholds, curve.non_defaulters, color=_NON_DEFAULTER, label="non-defaulters"
        )
        at = int(np.argmin(np.abs(curve.thresholds - curve.threshold)))
        axis.vlines(
            curve.threshold,
            curve.defaulters[at],
            curve.non_defaulters[at],
            color="black",
            linestyle=":",
            label=f"KS {curve.ks:.4f} at {curve.threshold:.2f}",
        )
        axis.set_xlabel("predicted probability of default")
        axis.set_ylabel("share of the class scoring at most this")
        axis.set_title("KS: cumulative score distributions")
        axis.set_xlim(0, 1)
        axis.legend(loc="lower right")

    return _svg_uri(draw)


def _distribution_chart(distribution: ScoreDistribution) -> str:
    def draw(axis: Axes) -> None:
        edges = distribution.edges
        widths = np.diff(edges)
        axis.bar(
            edges[:-1],
            distribution.non_defaulters,
            width=widths,
            align="edge",
            color=_NON_DEFAULTER,
            alpha=0.55,
            label="non-defaulters",
        )
        axis.bar(
            edges[:-1],
            distribution.defaulters,
            width=widths,
            align="edge",
            color=_DEFAULTER,
            alpha=0.55,
            label="defaulters",
        )
        axis.set_xlabel("predicted probability of default")
        axis.set_ylabel("share of the class's rows")
        axis.set_title("Score distribution by outcome")
        axis.set_xlim(0, 1)
        axis.legend()

    return _svg_uri(draw)


def _calibration_chart(calibration: CalibrationSection) -> str:
    filled = [
        (row.mean_predicted, row.observed_rate, row.count)
        for row in calibration.bins
        if row.mean_predicted is not None and row.observed_rate is not None and row.count > 0
    ]

    def draw(axis: Axes) -> None:
        axis.plot([0, 1], [0, 1], linestyle="--", color=_NEUTRAL, label="perfectly calibrated")
        predicted = np.array([point[0] for point in filled])
        observed = np.array([point[1] for point in filled])
        counts = np.array([point[2] for point in filled])
        sizes = 20 + 180 * counts / counts.max() if counts.size else 20
        axis.plot(predicted, observed, color=_DEFAULTER, linewidth=1)
        axis.scatter(
            predicted,
            observed,
            s=sizes,
            color=_DEFAULTER,
            alpha=0.7,
            label=f"bins (area: rows); ECE {calibration.ece:.4f}",
        )
        axis.set_xlabel("mean predicted probability of default")
        axis.set_ylabel("observed default rate")
        axis.set_title("Calibration (reliability diagram)")
        axis.set_xlim(0, 1)
        axis.set_ylim(0, 1)
        axis.legend(loc="upper left")

    return _svg_uri(draw)


def _iv_chart(features: Sequence[FeatureWoe]) -> str:
    shown = list(features[:_MOST_FEATURES])[::-1]  # most informative at the top

    def draw(axis: Axes) -> None:
        axis.barh(
            [item.feature for item in shown], [item.iv for item in shown], color=_NON_DEFAULTER
        )
        for bound in (0.02, 0.1, 0.3):
            axis.axvline(bound, color=_NEUTRAL, linestyle=":", linewidth=1)
        axis.set_xlabel("information value (dotted: 0.02, 0.1, 0.3)")
        axis.set_title("Information value per feature")
        axis.grid(axis="y", visible=False)

    height = max(_SIZE[1], 0.22 * len(shown) + 1.0)
    return _svg_uri(draw, size=(_SIZE[0], height))


def _trees_chart(trees: Sequence[TreeRow]) -> str | None:
    """Seconds per tree, stacked by level depth (None: no tree)."""
    if not trees:
        return None
    depths = max(row.levels for row in trees)
    colours = matplotlib.colormaps["Blues"](np.linspace(0.35, 0.9, max(depths, 1)))

    def draw(axis: Axes) -> None:
        numbers = [row.tree for row in trees]
        below = np.zeros(len(trees))
        for depth in range(depths):
            seconds = np.array(
                [row.level_seconds[depth] if depth < row.levels else 0.0 for row in trees]
            )
            axis.bar(numbers, seconds, bottom=below, color=colours[depth], label=f"depth {depth}")
            below += seconds
        axis.set_xlabel("tree")
        axis.set_ylabel("seconds")
        axis.set_title("Seconds per tree, by level")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_ylim(0, 1.3 * (float(below.max()) or 1.0))  # room for the legend above
        axis.legend(fontsize=7, ncols=min(depths, 4), loc="upper center")

    return _svg_uri(draw)


def _importance_chart(features: Sequence[FeatureImportance]) -> str | None:
    """Total gain of the features used by a split, most first (None: none was)."""
    used = [item for item in features if item.splits > 0]
    if not used:
        return None
    shown = used[:_MOST_FEATURES][::-1]  # most gain at the top

    def draw(axis: Axes) -> None:
        axis.barh(
            [item.feature for item in shown],
            [item.total_gain for item in shown],
            color=_NON_DEFAULTER,
        )
        axis.set_xlabel("total gain (loss reduction of the feature's splits)")
        axis.set_title("Feature importance: total gain")
        axis.grid(axis="y", visible=False)

    height = max(_SIZE[1], 0.22 * len(shown) + 1.0)
    return _svg_uri(draw, size=(_SIZE[0], height))
