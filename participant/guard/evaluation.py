"""What a bank releases about its held-out rows: bounded, summed, and under a budget noisy.

The coordinator asks a bank to score a global model on the rows it holds out, or (the
run's per-round evaluations, for model selection) on its validation part. The
bank answers with a :class:`~credit.metrics.ScoreSummary` (score histograms per class,
Brier and log-loss sums) and, with its evaluation of a run's last model, its
governance release (:mod:`credit.governance.release`: calibration sums, and fairness
sums per protected column of its own schema), and nothing else, under the bank's own
:class:`EvaluationPolicy`:

* at most ``max_score_bins`` bins per class (a request for more is refused);
* at most ``max_calibration_bins`` calibration bins, and a decision cut-off on the
  run's score-bin grid only, so that the per-group confusion counts at the cut-off
  are sums of the per-group histograms (:func:`governance_problem`);
* nothing at all below ``min_holdout_rows`` rows scored (held-out rows, or rows of
  the validation part);
* the governance release about the held-out rows only;
* every per-row term bounded (:data:`~credit.metrics.LOG_LOSS_BOUND`), so one row
  moves the release by at most :data:`~credit.metrics.EVALUATION_SENSITIVITY`;
* with a privacy budget, Gaussian noise of ``noise_multiplier * sensitivity`` on
  every entry, charged to the bank's ledger as an ``evaluation-release`` of its
  held-out rows (an evaluation of the validation part too: those rows are never
  trained on either, so charging them with the held-out rows is conservative;
  :meth:`~participant.guard.privacy_guard.PrivacyGuard.charge_evaluation`);
  the governance sums are a second such release at the same noise multiplier with
  their own sensitivity, once per run
  (:meth:`~participant.guard.privacy_guard.PrivacyGuard.charge_governance`);
* under secure aggregation the release is masked with the bank's update and the
  coordinator decodes only the consortium's total.

The hold-out never changes (the bank fixes it), so a coordinator cannot move a
chosen customer into a one-row test split or read an exact per-row loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from flwr.app import ArrayRecord
from numpy.typing import NDArray

from credit.governance.release import GovernanceLayout, GovernanceSums, governance_sums
from credit.messages import EvaluationRows, GovernanceRequest, RoundInstructions
from credit.metrics import EVALUATION_SENSITIVITY, ScoreSummary, summarize_scores
from participant.guard.bank import PreparedBank, encoded_split
from participant.guard.local_update import build_global_model
from participant.guard.settings import EvaluationPolicy
from privacy.errors import PrivacyBudgetExceeded
from privacy.noise_keys import NoisePurpose

if TYPE_CHECKING:
    from participant.guard.privacy_guard import PrivacyGuard
    from privacy.noise import SecureGaussian

__all__ = [
    "Evaluation",
    "evaluate_holdout",
    "governance_layout",
    "governance_problem",
    "noised",
    "policy_problem",
]

_ON_GRID = 1e-9
"""How far ``cutoff * score_bins`` may lie from a whole number (floating point)."""


@dataclass(frozen=True)
class Evaluation:
    """A bank's answer to a request for evaluation.

    Attributes
    ----------
    summary : ScoreSummary or None
        What the bank releases (noisy under a budget); None: it releases nothing.
    declined : str or None
        Why nothing is released (too few held-out rows); None when released.
    epsilon : float or None
        Epsilon of the bank's held-out rows after the release (banks with a budget).
    governance : GovernanceSums or None
        The governance release (noisy under a budget); None: not asked, or declined.
    governance_declined : str or None
        Why the governance sums asked for are not released (the run made its one
        governance release already, or the budget refuses it); None otherwise.
    """

    summary: ScoreSummary | None
    declined: str | None = None
    epsilon: float | None = None
    governance: GovernanceSums | None = None
    governance_declined: str | None = None


def policy_problem(policy: EvaluationPolicy, score_bins: int, bank: str) -> str | None:
    """Why ``policy`` refuses a request for ``score_bins`` bins (None: it does not)."""
    if score_bins > policy.max_score_bins:
        return (
            f"bank '{bank}' releases at most {policy.max_score_bins} score bins per class; "
            f"the run asks for {score_bins}: run with score-bins <= {policy.max_score_bins}"
        )
    return None


def governance_problem(
    policy: EvaluationPolicy, asked: GovernanceRequest, score_bins: int, bank: str
) -> str | None:
    """Why ``policy`` refuses a governance request (None: it does not).

    More calibration bins than the policy releases are refused, and so is a cut-off
    off the run's score-bin grid (a multiple of ``1 / score_bins``): a cut-off between
    two scores would split the customers of one score bin and could isolate one of
    them, while at a bin edge the confusion counts add up the per-group histograms
    the bank releases anyway.
    """
    if asked.calibration_bins > policy.max_calibration_bins:
        return (
            f"bank '{bank}' releases at most {policy.max_calibration_bins} calibration bins; "
            f"the run asks for {asked.calibration_bins}"
        )
    steps = asked.decision_cutoff * score_bins
    if abs(steps - round(steps)) > _ON_GRID:
        return (
            f"bank '{bank}' takes a decision cut-off on the run's score-bin grid only "
            f"(multiples of 1/{score_bins}); the run asks for {asked.decision_cutoff:g}"
        )
    return None


def governance_layout(
    bank: PreparedBank, asked: GovernanceRequest, score_bins: int
) -> GovernanceLayout:
    """What the bank's governance release holds: groups of its own schema, the run's bins."""
    return GovernanceLayout.of(
        bank.schema,
        calibration_bins=asked.calibration_bins,
        score_bins=score_bins,
        cutoff=asked.decision_cutoff,
    )


def evaluate_holdout(
    bank: PreparedBank,
    instructions: RoundInstructions,
    arrays: ArrayRecord,
    *,
    policy: EvaluationPolicy,
    guard: PrivacyGuard | None,
    run: str,
    server_round: int,
    governance: GovernanceLayout | None = None,
    rows: EvaluationRows = EvaluationRows.TEST,
) -> Evaluation:
    """Score ``arrays`` (the model of ``server_round``) on the bank's held-out rows.

    With ``rows`` = ``validation``: on its validation part instead (no governance).

    With ``governance`` (checked against the policy first: :func:`governance_problem`)
    the bank also releases its governance sums of the same predictions: under a
    budget charged after the evaluation, and declined (the evaluation still
    released) when the ledger refuses them.

    Raises
    ------
    privacy.errors.PrivacyBudgetExceeded
        The evaluation would take the held-out rows past the bank's maximum epsilon
        or its run's planned evaluations (nothing is released).
    """
    if governance is not None and rows != EvaluationRows.TEST:
        raise ValueError("the governance release is about the held-out rows only")
    scored = bank.test if rows == EvaluationRows.TEST else bank.validation
    if len(scored) < policy.min_holdout_rows:
        which = "holds out" if rows == EvaluationRows.TEST else "validates on"
        return Evaluation(
            summary=None,
            declined=(
                f"bank '{bank.name}' {which} fewer than {policy.min_holdout_rows} rows: "
                "it releases no evaluation"
            ),
        )
    predicted, observed = _predictions(bank, instructions, arrays, rows)
    summary = summarize_scores(predicted, observed, instructions.score_bins)
    sums = None
    if governance is not None:
        sums = governance_sums(bank.test, predicted, observed, governance)
    if guard is None:
        return Evaluation(summary=summary, governance=sums)
    event = guard.charge_evaluation(
        run=run, server_round=server_round, planned_evaluations=instructions.planned_evaluations
    )
    noise = guard.noise(event, NoisePurpose.EVALUATION_RELEASE)
    noisy = noised(summary, event.noise_multiplier, noise)
    if sums is None or governance is None:
        return Evaluation(summary=noisy, epsilon=guard.ledger.epsilon)
    try:
        released = _noisy_governance(sums, governance, guard, run, server_round)
    except PrivacyBudgetExceeded as refusal:
        return Evaluation(
            summary=noisy,
            epsilon=guard.ledger.epsilon,
            governance_declined=f"governance: {refusal}",
        )
    return Evaluation(summary=noisy, epsilon=guard.ledger.epsilon, governance=released)


def _noisy_governance(
    sums: GovernanceSums,
    layout: GovernanceLayout,
    guard: PrivacyGuard,
    run: str,
    server_round: int,
) -> GovernanceSums:
    """Charge the governance release; the sums with noise of std ``z * layout.sensitivity``.

    Raises
    ------
    privacy.errors.PrivacyBudgetExceeded
        The ledger refuses the release (nothing recorded, nothing released).
    """
    event = guard.charge_governance(
        run=run, server_round=server_round, sensitivity=layout.sensitivity
    )
    vector = sums.to_vector()
    deviation = event.noise_multiplier * event.max_grad_norm
    noise = guard.noise(event, NoisePurpose.GOVERNANCE_RELEASE)
    return GovernanceSums.from_vector(
        vector + noise.standard_normal(vector.size) * deviation, layout
    )


def noised(summary: ScoreSummary, noise_multiplier: float, noise: SecureGaussian) -> ScoreSummary:
    """``summary`` with Gaussian noise of std ``noise_multiplier * EVALUATION_SENSITIVITY``.

    The noise is added to :meth:`ScoreSummary.to_vector`, whose L2 sensitivity is
    :data:`EVALUATION_SENSITIVITY`: the Gaussian mechanism with that noise multiplier.
    """
    vector = summary.to_vector()
    vector = vector + noise.standard_normal(vector.size) * noise_multiplier * EVALUATION_SENSITIVITY
    return ScoreSummary.from_vector(vector, summary.positives.size)


def _predictions(
    bank: PreparedBank, instructions: RoundInstructions, arrays: ArrayRecord, rows: EvaluationRows
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """The model's predicted default probabilities of the ``rows`` scored, and their labels."""
    from participant.guard.training import predict_proba

    model = build_global_model(instructions, arrays)
    split = encoded_split(bank, instructions.encoder)
    if rows == EvaluationRows.VALIDATION:
        return predict_proba(model, split.validation_x), split.validation_y
    return predict_proba(model, split.test_x), split.test_y
