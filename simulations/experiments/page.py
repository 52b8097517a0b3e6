"""The experiment summary page: ``DIR/report.html``, Jinja2 autoescaped, self-contained.

Every value from ``results.csv`` is escaped (an option's value or a failed run's
error is text, never markup); the plots are embedded as ``data:image/png`` URIs, so
the page makes no request but its own file.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import jinja2
import pandas as pd

from simulations.experiments._page_template import PAGE

__all__ = ["PAGE_FILE", "Cell", "Plot", "Summary", "render_page", "summary_of"]

PAGE_FILE = "report.html"
_MISSING = "—"
_DIGITS = {
    "auc": 4,
    "ks": 4,
    "released_auc": 4,
    "released_ks": 4,
    "wall_seconds": 1,
    "peak_rss_mb": 0,
    "max_epsilon_spent": 3,
}
"""Decimals of each numeric column in the page's table (the CSV keeps every digit)."""


@dataclass(frozen=True)
class Plot:
    """One embedded plot: the option on its x axis, its file name and its ``data:`` URI."""

    option: str
    file: str
    uri: str

    @classmethod
    def of(cls, option: str, path: Path) -> Plot:
        """The PNG at ``path`` as an embedded plot."""
        encoded = base64.b64encode(path.read_bytes()).decode("ascii")
        return cls(option=option, file=path.name, uri="data:image/png;base64," + encoded)


@dataclass(frozen=True)
class Cell:
    """A table cell: its text and CSS classes (``n``, ``hash``, ``failed``, ``absent``)."""

    text: str
    kind: str = ""


@dataclass(frozen=True)
class Summary:
    """What the page shows (every field already text or counts)."""

    title: str
    varied: tuple[str, ...]
    finished: int
    failed: int
    not_run: int
    wall_seconds: str
    peak_rss_mb: str
    plots: tuple[Plot, ...]
    columns: tuple[str, ...]
    numeric: frozenset[str]
    rows: tuple[tuple[Cell, ...], ...]


def summary_of(
    frame: pd.DataFrame, varied: Sequence[str], plots: Sequence[Plot], *, title: str
) -> Summary:
    """The page's contents from ``results.csv`` read as text (``frame``) and its plots."""
    status = frame["status"]
    finished = (status == "completed") | status.str.startswith("stopped")
    wall = pd.to_numeric(frame["wall_seconds"].replace("", None)).dropna()
    peak = pd.to_numeric(frame["peak_rss_mb"].replace("", None)).dropna()
    return Summary(
        title=title,
        varied=tuple(varied),
        finished=int(finished.sum()),
        failed=int(status.str.startswith("failed").sum()),
        not_run=int((status == "not run").sum()),
        wall_seconds=f"{wall.sum():,.0f} s" if len(wall) else "",
        peak_rss_mb=f"{peak.max():,.0f} MiB" if len(peak) else "",
        plots=tuple(plots),
        columns=tuple(frame.columns),
        numeric=frozenset(_DIGITS) & set(frame.columns),
        rows=tuple(
            tuple(_cell(str(column), str(value)) for column, value in row.items())
            for _, row in frame.iterrows()
        ),
    )


def _cell(column: str, value: str) -> Cell:
    if column == "run":
        return Cell(value, "hash")
    if value == "":
        return Cell(_MISSING, "n absent" if column in _DIGITS else "absent")
    if column in _DIGITS:
        return Cell(f"{float(value):,.{_DIGITS[column]}f}", "n")
    if column == "status" and value.startswith("failed"):
        return Cell(value, "failed")
    return Cell(value)


def render_page(summary: Summary) -> str:
    """The summary as one self-contained HTML document."""
    environment = jinja2.Environment(
        loader=jinja2.DictLoader({PAGE_FILE: PAGE}),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return environment.get_template(PAGE_FILE).render(s=summary)
