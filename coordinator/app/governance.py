"""The run's calibration and fairness report, from the banks' summed governance release.

With the evaluation of the run's last model the coordinator asks every bank for its
governance release (:mod:`credit.governance.release`): calibration sums on
:data:`~credit.governance.calibration.DEFAULT_CALIBRATION_BINS` public probability
bins and, per protected column of the schema, fairness sums at the run's
``decision-cutoff`` on its score bins (:func:`governance_layout`). From their sum it
writes ``metrics.json``'s ``calibration`` and ``fairness`` (:func:`governance_outcome`),
and under ``governance`` how many banks' sums they hold. A bank that declines (too few
held-out rows, or its ledger refuses the release) adds nothing to the sum.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from coordinator.app.aggregation import SummedEvaluation
from credit.governance.calibration import DEFAULT_CALIBRATION_BINS
from credit.governance.release import GovernanceLayout, governance_report
from credit.run_config import RunConfig
from credit.schema import DatasetSchema

__all__ = ["GovernanceOutcome", "governance_layout", "governance_outcome"]


def governance_layout(schema: DatasetSchema, config: RunConfig) -> GovernanceLayout:
    """The governance release a run asks for: public bins, its cut-off, the schema's groups."""
    return GovernanceLayout.of(
        schema,
        calibration_bins=DEFAULT_CALIBRATION_BINS,
        score_bins=config.score_bins,
        cutoff=config.decision_cutoff,
    )


@dataclass(frozen=True)
class GovernanceOutcome:
    """What the run keeps of the governance release.

    Attributes
    ----------
    document : dict
        ``metrics.json``'s part: ``governance`` (banks whose sums arrived, cut-off,
        bins, protected columns, whether the sums are noisy) always; ``calibration``
        and ``fairness`` when at least one bank's sums arrived (``calibration`` only
        when the settled sums hold rows).
    line : str
        One line for the run's events.
    """

    document: dict[str, Any]
    line: str


def governance_outcome(
    summed: SummedEvaluation, layout: GovernanceLayout, *, noisy: bool
) -> GovernanceOutcome:
    """The report of the summed governance sums in ``summed`` (``noisy``: banks under DP)."""
    document: dict[str, Any] = {
        "governance": {
            "banks": summed.governance_banks,
            "decision_cutoff": layout.cutoff,
            "calibration_bins": layout.calibration_bins,
            "score_bins": layout.score_bins,
            "protected": [grouping.column for grouping in layout.groupings],
            "noisy": noisy,
        }
    }
    if summed.governance is None:
        return GovernanceOutcome(document, "calibration and fairness: no bank released its sums")
    report = governance_report(summed.governance, layout, banks=summed.governance_banks)
    calibration = report.calibration_document()
    if calibration is not None:
        document["calibration"] = calibration
    document["fairness"] = report.fairness_document()
    ece = "no rows" if report.calibration is None else f"ECE {report.calibration.ece:.4f}"
    line = (
        f"calibration ({ece}) and fairness of {len(report.fairness)} protected columns at "
        f"cut-off {layout.cutoff:g} from {summed.governance_banks} banks' sums"
    )
    return GovernanceOutcome(document, line)
