"""Write ``report.html`` for a run: read its files, draw the charts, render, save."""

from __future__ import annotations

from pathlib import Path

from coordinator.app.report.contents import read_contents
from coordinator.app.report.figures import draw_figures
from coordinator.app.report.page import render_page

__all__ = ["write_report"]


def write_report(*, metrics: Path, model: Path, report: Path) -> Path:
    """Write the model report of the run whose ``metrics.json`` is ``metrics``.

    Parameters
    ----------
    metrics : pathlib.Path
        The run's ``metrics.json``.
    model : pathlib.Path
        The run's model folder (its card and, for a scorecard, ``scorecard.csv``; a
        boosting run's also ``encoder.json`` and ``xgboost.json``).
    report : pathlib.Path
        Where to write the page (``OUT/report.html``); replaced if it exists.

    Returns
    -------
    pathlib.Path
        ``report``.

    Raises
    ------
    ValueError
        A file holds something other than the form its writer gives it.
    """
    contents = read_contents(metrics, model)
    report.write_text(render_page(contents, draw_figures(contents)), encoding="utf-8")
    return report
