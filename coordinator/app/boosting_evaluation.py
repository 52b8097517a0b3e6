"""A boosting run's held-out evaluation: the banks score the finished ensemble.

One ``gbdt-evaluate`` query to every bank of the run carries the ensemble (trees, base
score) and the run's encoder; each bank scores its held-out rows and releases score
histograms and sums (:mod:`participant.guard.gbdt_evaluation`: its evaluation policy,
noisy under a budget). In the clear the coordinator sums them; under secure
aggregation they are the inputs of one more secure round (the run's code, weight 0),
whose keys the last level's unmask exchange collected, and the coordinator decodes
only their sum. AUC, KS and the rest come from the sum (:func:`credit.metrics.
credit_metrics`), as for a logistic-regression run; the summed score histograms are kept
as such a run keeps its final ones (:class:`~coordinator.app.run_state.ScoreHistograms`:
``metrics.json``'s ``score_histograms``, from which the report draws its curves), with
the ensemble's number of trees (XGBoost's boosting rounds) as their round.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

from flwr.app import Message, MessageType

from coordinator.app.bank_replies import ReplyBook
from coordinator.app.boosting import BoostingRun
from coordinator.app.exchange import BankExchange, Stage, messages_to
from coordinator.app.run_state import ScoreHistograms
from coordinator.app.secagg_server import SecureAggregation
from coordinator.errors import RoundAborted, RoundFailed
from credit.messages import EvaluationDeclined, QueryInstructions, score_summary_from_content
from credit.messages.gbdt import EnsembleDocument, GbdtEncoding, GbdtEnsemble
from credit.metrics import (
    CreditMetrics,
    ScoreSummary,
    credit_metrics,
    evaluation_from_sum,
    evaluation_vector,
)
from privacy.secagg.fixed_point import FixedPoint

__all__ = ["HeldOutEvaluation", "ensemble_part", "evaluate_ensemble"]


@dataclass(frozen=True)
class HeldOutEvaluation:
    """The consortium's evaluation of the ensemble (``metrics`` None: none; ``missing`` why).

    ``scores``: the summed score histograms ``metrics`` come from (None with ``metrics``).
    """

    metrics: CreditMetrics | None
    banks: int
    missing: str | None = None
    scores: ScoreHistograms | None = None


def ensemble_part(run: BoostingRun, score_bins: int) -> GbdtEnsemble:
    """The message part that carries ``run``'s ensemble to the banks."""
    document = EnsembleDocument(
        trees=tuple(
            {name: list(values) for name, values in asdict(tree).items()} for tree in run.trees
        ),
        base_score=run.base_score,
    )
    return GbdtEnsemble(ensemble=document, score_bins=score_bins)


def evaluate_ensemble(
    *,
    exchange: BankExchange,
    book: ReplyBook,
    query: QueryInstructions,
    parts: tuple[GbdtEnsemble, GbdtEncoding],
    banks: Mapping[int, str],
    secure: SecureAggregation | None,
    secure_round: int,
) -> HeldOutEvaluation:
    """The summed held-out evaluation of the ensemble in ``parts`` (module docstring).

    A failed exchange (too few replies, an aborted secure sum) or no usable evaluation
    does not fail the run: ``missing`` says why.
    """
    try:
        if secure is None:
            summary, counted = _plain(exchange, book, query, parts, banks)
        else:
            summary, counted = _secure(exchange, book, query, parts, banks, secure, secure_round)
    except (RoundFailed, RoundAborted) as failed:
        return HeldOutEvaluation(metrics=None, banks=0, missing=f"evaluation failed: {failed}")
    if summary is None:
        return HeldOutEvaluation(metrics=None, banks=0, missing="no bank released an evaluation")
    try:
        metrics = credit_metrics(summary)
    except ValueError as exc:
        return HeldOutEvaluation(metrics=None, banks=counted, missing=str(exc))
    trees = len(parts[0].ensemble.trees)
    return HeldOutEvaluation(
        metrics=metrics, banks=counted, scores=ScoreHistograms.settled(trees, summary)
    )


def _plain(
    exchange: BankExchange,
    book: ReplyBook,
    query: QueryInstructions,
    parts: tuple[GbdtEnsemble, GbdtEncoding],
    banks: Mapping[int, str],
) -> tuple[ScoreSummary | None, int]:
    score_bins = parts[0].score_bins
    messages = messages_to(sorted(banks), MessageType.QUERY, query, *parts)
    replies = exchange(messages, Stage.EVALUATE, 0)

    def parse(reply: Message) -> ScoreSummary | None:
        if EvaluationDeclined.present(reply.content):
            return None
        return score_summary_from_content(reply.content, score_bins=score_bins)

    answered = book.sort(replies, parse, 0)
    summaries = [summary for summary in answered.answers if summary is not None]
    if not summaries:
        return None, 0
    return ScoreSummary.combine(summaries), len(summaries)


def _secure(
    exchange: BankExchange,
    book: ReplyBook,
    query: QueryInstructions,
    parts: tuple[GbdtEnsemble, GbdtEncoding],
    banks: Mapping[int, str],
    secure: SecureAggregation,
    secure_round: int,
) -> tuple[ScoreSummary | None, int]:
    score_bins = parts[0].score_bins
    length = evaluation_vector(None, score_bins).size
    nodes = sorted(banks)
    messages = secure.words_messages(
        secure_round, query, length, nodes, code=secure.code, parts=parts
    )
    replies = exchange(messages, Stage.EVALUATE, secure_round)
    answered = book.sort(replies, lambda reply: reply, secure_round)
    total, _ = secure.sum_words(answered.answers, query, secure_round, next_round=0, members=nodes)
    totals = FixedPoint.for_totals(participants=len(secure.roster), ring_bits=secure.code.ring_bits)
    return evaluation_from_sum(totals.decode_total(total), score_bins)
