"""The bank's answer to a ``gbdt-evaluate`` query: the finished ensemble scored on its
held-out rows, released as score histograms and sums (never scores).

The query carries the ensemble (:class:`~credit.messages.gbdt.GbdtEnsemble`: trees and
base score) and the run's binned encoder (:class:`~credit.messages.gbdt.GbdtEncoding`);
the bank rebuilds the ensemble on the encoder's bins (every split's threshold is
checked against them), scores its held-out rows and releases what a logistic-regression
run's evaluation releases (:func:`~credit.metrics.summarize_scores`): under its
evaluation policy (score bins, fewest held-out rows) and, with a budget, charged to the
held-out rows' ledger and noised (:func:`~participant.guard.evaluation.noised`). In the
clear, or masked as the bank's input of a secure round (weight 0, the run's code).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from flwr.app import RecordDict

from credit import message_keys
from credit.gbdt import Ensemble, Tree, raw_matrix
from credit.messages import EvaluationDeclined, QueryInstructions, score_summary_to_content
from credit.messages import secagg as secagg_parts
from credit.messages.gbdt import EnsembleDocument, GbdtEncoding, GbdtEnsemble
from credit.metrics import ScoreSummary, evaluation_vector, summarize_scores
from participant.guard.bank import PreparedBank
from participant.guard.evaluation import noised, policy_problem
from participant.guard.gbdt_level import bank_bins
from participant.guard.handlers import BankRequest, GuardRefusal, checked_bank, privacy_guard
from participant.guard.secagg_client import mask_totals, receive_keys
from privacy.errors import PrivacyBudgetExceeded
from privacy.noise_keys import NoisePurpose

if TYPE_CHECKING:
    from participant.guard.privacy_guard import PrivacyGuard

__all__ = ["ensemble_of", "gbdt_evaluate"]

_INTEGER_FIELDS = ("left_children", "right_children", "split_features", "split_bins", "counts")


def _tree(fields: dict[str, list[Any]]) -> Tree:
    typed = {
        name: tuple(
            int(v) if name in _INTEGER_FIELDS else bool(v) if name == "default_left" else float(v)
            for v in values
        )
        for name, values in fields.items()
    }
    return Tree(**typed)  # type: ignore[arg-type]


def ensemble_of(document: EnsembleDocument, bank: PreparedBank, encoding: GbdtEncoding) -> Ensemble:
    """The ensemble ``document`` describes, on the bins of ``encoding``.

    Raises
    ------
    GuardRefusal
        Trees that do not parse, or splits whose thresholds are not the bins'.
    """
    bins = bank_bins(bank, encoding.encoder)
    try:
        trees = tuple(_tree(fields) for fields in document.trees)
        return Ensemble(trees=trees, base_score=document.base_score, bins=bins)
    except (TypeError, ValueError) as exc:
        raise GuardRefusal("gbdt-ensemble", f"bank '{bank.name}': {exc}") from exc


def gbdt_evaluate(request: BankRequest, query: QueryInstructions) -> RecordDict:
    """The ensemble's score histograms and sums on the bank's held-out rows (module docstring).

    Raises
    ------
    GuardRefusal
        A run of another schema or split, more score bins than the bank's policy
        releases, an ensemble not on the bank's schema's bins, or a plain release from a
        bank that requires secure aggregation.
    """
    asked = GbdtEnsemble.take(request.content)
    encoding = GbdtEncoding.take(request.content)
    inputs = secagg_parts.TrainInputs.take_optional(request.content)
    bank = checked_bank(request, query)
    problem = policy_problem(request.settings.evaluation, asked.score_bins, bank.name)
    if problem is not None:
        raise GuardRefusal("evaluation-policy", problem)
    if inputs is None and request.settings.require_secure_aggregation:
        raise GuardRefusal(
            "plain-update",
            f"bank '{bank.name}' releases its evaluation only through secure aggregation; "
            "the query asks for it in the clear: run with secure aggregation on",
        )
    code = None if inputs is None else receive_keys(request.secagg, inputs)
    ensemble = ensemble_of(asked.ensemble, bank, encoding)
    guard = privacy_guard(bank, request.settings, noise_keys=request.noise_keys)
    summary, declined = _released(request, bank, query, ensemble, encoding, asked.score_bins, guard)
    if inputs is not None and code is not None:
        masked = mask_totals(
            request.secagg,
            server_round=inputs.server_round,
            code=code,
            totals=evaluation_vector(summary, asked.score_bins),
        )
        content = RecordDict({message_keys.ARRAYS: masked})
    elif summary is None:
        content = RecordDict()
        EvaluationDeclined(reason=declined or "declined").put(content)
    else:
        content = score_summary_to_content(
            summary, scores_key=message_keys.SCORES, sums_key=message_keys.METRICS
        )
    if guard is not None:
        guard.summary().put(content)
    return content


def _released(
    request: BankRequest,
    bank: PreparedBank,
    query: QueryInstructions,
    ensemble: Ensemble,
    encoding: GbdtEncoding,
    score_bins: int,
    guard: PrivacyGuard | None,
) -> tuple[ScoreSummary | None, str | None]:
    """The released summary (noisy under a budget), or None and why it is declined."""
    policy = request.settings.evaluation
    if len(bank.test) < policy.min_holdout_rows:
        return None, f"bank '{bank.name}' holds out fewer than {policy.min_holdout_rows} rows"
    predicted = ensemble.predict_proba(raw_matrix(bank.test, encoding.encoder))
    observed = bank.test[bank.schema.target].to_numpy(dtype=np.int64)
    summary = summarize_scores(np.asarray(predicted, dtype=np.float64), observed, score_bins)
    if guard is None:
        return summary, None
    run = query.run_key(request.flower_run_id)
    try:
        event = guard.charge_evaluation(
            run=run, server_round=1, planned_evaluations=query.planned_evaluations
        )
    except PrivacyBudgetExceeded as refusal:
        return None, f"evaluation: {refusal}"
    noise = guard.noise(event, NoisePurpose.EVALUATION_RELEASE)
    return noised(summary, event.noise_multiplier, noise), None
