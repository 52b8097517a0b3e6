"""What a bank releases about its held-out rows: bounded, summed, and under a budget noisy.

The coordinator asks a bank to score a global model on the rows it holds out. The
bank answers with a :class:`~credit.metrics.ScoreSummary` (score histograms per class,
Brier and log-loss sums) and nothing else, under the bank's own
:class:`EvaluationPolicy`:

* at most ``max_score_bins`` bins per class (a request for more is refused);
* nothing at all below ``min_holdout_rows`` held-out rows;
* every per-row term bounded (:data:`~credit.metrics.LOG_LOSS_BOUND`), so one row
  moves the release by at most :data:`~credit.metrics.EVALUATION_SENSITIVITY`;
* with a privacy budget, Gaussian noise of ``noise_multiplier * sensitivity`` on
  every entry, charged to the bank's ledger as an ``evaluation-release`` of its
  held-out rows (:meth:`~participant.guard.privacy_guard.PrivacyGuard.charge_evaluation`);
* under secure aggregation the release is masked with the bank's update and the
  coordinator decodes only the consortium's total.

The hold-out never changes (the bank fixes it), so a coordinator cannot move a
chosen customer into a one-row test split or read an exact per-row loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from flwr.app import ArrayRecord

from credit.messages import RoundInstructions
from credit.metrics import EVALUATION_SENSITIVITY, ScoreSummary, summarize_scores
from participant.guard.bank import PreparedBank, encoded_split
from participant.guard.local_update import build_global_model
from participant.guard.settings import EvaluationPolicy

if TYPE_CHECKING:
    from participant.guard.privacy_guard import PrivacyGuard
    from privacy.noise import SecureGaussian

__all__ = ["Evaluation", "evaluate_holdout", "noised", "policy_problem"]


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
    """

    summary: ScoreSummary | None
    declined: str | None = None
    epsilon: float | None = None


def policy_problem(policy: EvaluationPolicy, score_bins: int, bank: str) -> str | None:
    """Why ``policy`` refuses a request for ``score_bins`` bins (None: it does not)."""
    if score_bins > policy.max_score_bins:
        return (
            f"bank '{bank}' releases at most {policy.max_score_bins} score bins per class; "
            f"the run asks for {score_bins}: run with score-bins <= {policy.max_score_bins}"
        )
    return None


def evaluate_holdout(
    bank: PreparedBank,
    instructions: RoundInstructions,
    arrays: ArrayRecord,
    *,
    policy: EvaluationPolicy,
    guard: PrivacyGuard | None,
    run: str,
    server_round: int,
    noise: SecureGaussian | None = None,
) -> Evaluation:
    """Score ``arrays`` (the model of ``server_round``) on the bank's held-out rows.

    Raises
    ------
    privacy.errors.PrivacyBudgetExceeded
        The release would take the held-out rows past the bank's maximum epsilon
        (nothing is released).
    """
    if len(bank.test) < policy.min_holdout_rows:
        return Evaluation(
            summary=None,
            declined=(
                f"bank '{bank.name}' holds out fewer than {policy.min_holdout_rows} rows: "
                "it releases no evaluation"
            ),
        )
    summary = _score(bank, instructions, arrays)
    if guard is None:
        return Evaluation(summary=summary)
    event = guard.charge_evaluation(
        run=run, server_round=server_round, planned_evaluations=instructions.planned_evaluations
    )
    if noise is None:
        from privacy.noise import SecureGaussian  # torch: imported where noise is drawn

        noise = SecureGaussian()
    noisy = noised(summary, event.noise_multiplier, noise)
    return Evaluation(summary=noisy, epsilon=guard.ledger.epsilon)


def noised(summary: ScoreSummary, noise_multiplier: float, noise: SecureGaussian) -> ScoreSummary:
    """``summary`` with Gaussian noise of std ``noise_multiplier * EVALUATION_SENSITIVITY``.

    The noise is added to :meth:`ScoreSummary.to_vector`, whose L2 sensitivity is
    :data:`EVALUATION_SENSITIVITY`: the Gaussian mechanism with that noise multiplier.
    """
    vector = summary.to_vector()
    vector = vector + noise.standard_normal(vector.size) * noise_multiplier * EVALUATION_SENSITIVITY
    return ScoreSummary.from_vector(vector, summary.positives.size)


def _score(
    bank: PreparedBank, instructions: RoundInstructions, arrays: ArrayRecord
) -> ScoreSummary:
    """The model's score histograms and bounded sums on the bank's held-out rows."""
    from participant.guard.training import predict_proba

    model = build_global_model(instructions, arrays)
    split = encoded_split(bank, instructions.encoder)
    return summarize_scores(
        predict_proba(model, split.test_x), split.test_y, instructions.score_bins
    )
