"""Render the model report's page: Jinja2, autoescaped, from contents and charts.

Every value from a run's files is escaped (a bank's name or a schema's column is
text, never markup); the charts are data URIs made by :mod:`.figures`. Which
sections the page shows is decided here, once, and the navigation lists exactly
those: a section without data has no heading.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jinja2

from coordinator.app.report._template import PAGE
from coordinator.app.report.contents import ReportContents
from coordinator.app.report.figures import ReportFigures
from coordinator.app.report.governance import iv_strength

__all__ = ["Section", "render_page", "sections_of"]

_MISSING = "—"


@dataclass(frozen=True)
class Section:
    """A section of the page: its anchor (``id``) and heading in the navigation."""

    anchor: str
    title: str


def sections_of(contents: ReportContents, figures: ReportFigures) -> tuple[Section, ...]:
    """The sections ``contents`` has data for, in page order."""
    shown = {
        "summary": contents.final is not None or contents.final_missing is not None,
        "performance": None not in (figures.roc, figures.ks, figures.distribution),
        "rounds": bool(contents.rounds),
        "trees": contents.boosting is not None and bool(contents.boosting.trees),
        "importance": bool(contents.importance),
        "participation": contents.participation is not None,
        "privacy": contents.privacy is not None,
        "calibration": contents.calibration is not None and figures.calibration is not None,
        "fairness": bool(contents.fairness),
        "scorecard": bool(contents.scorecard),
        "woe-iv": bool(contents.woe_iv),
        "configuration": bool(contents.config or contents.secure_aggregation),
        "model-card": contents.model_card is not None,
    }
    return tuple(Section(anchor, _TITLES[anchor]) for anchor, present in shown.items() if present)


_TITLES = {
    "summary": "Final metrics",
    "performance": "ROC, KS, scores",
    "rounds": "Rounds",
    "trees": "Trees",
    "importance": "Feature importance",
    "participation": "Participation",
    "privacy": "Privacy",
    "calibration": "Calibration",
    "fairness": "Fairness",
    "scorecard": "Scorecard",
    "woe-iv": "WoE / IV",
    "configuration": "Configuration",
    "model-card": "Model card",
}


def render_page(contents: ReportContents, figures: ReportFigures) -> str:
    """The report as one self-contained HTML document."""
    sections = sections_of(contents, figures)
    return (
        _environment()
        .get_template("report.html")
        .render(
            c=contents,
            fig=figures,
            sections=sections,
            present={section.anchor for section in sections},
        )
    )


def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.DictLoader({"report.html": PAGE}),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(
        num=_number, count=_count, pct=_percent, sci=_scientific, iv_strength=iv_strength
    )
    return environment


def _defined(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _number(value: float | None, digits: int = 4) -> str:
    """``value`` with ``digits`` decimals (—: undefined)."""
    return f"{value:.{digits}f}" if value is not None and _defined(value) else _MISSING


def _count(value: float | None) -> str:
    """A row count, rounded, with thousands separators (a noisy count is a real number)."""
    return f"{round(value):,}" if value is not None and _defined(value) else _MISSING


def _percent(value: float | None) -> str:
    return f"{100 * value:.1f} %" if value is not None and _defined(value) else _MISSING


def _scientific(value: float | None) -> str:
    return f"{value:.2e}" if value is not None and _defined(value) else _MISSING
