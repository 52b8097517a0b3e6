"""The evaluations of a run's models: each round settled, and the run's end.

Round r's model is scored one exchange after its training, where the run's cadence
(``evaluate-every``) asks for it: by the banks' train replies of round r + 1 (its
train messages carry the request), or by an evaluate-only exchange when those replies
brought no usable evaluation or when no round follows. With validation parts the
rounds are scored on them, and the run ends with the **final evaluation**: the kept
model (the best validated round's, else the last one's) scored on the held-out rows,
with the governance release (calibration and fairness sums; without validation parts
the last model's evaluation carries it). Under secure aggregation an evaluate-only
exchange is a secure round of its own; mid-run, an evaluation lost with the next
round's secure sum leaves its round not evaluated instead.

A round *settles* when its evaluation comes in (or is known not to come): its result
is recorded, audited, checkpointed and reported, and the best round or the final
score histograms move on (:meth:`RunEvaluations.settle`).

At the run's end (and before a failed round fails the run) an evaluate-only exchange
that fails (too few replies, its secure sum aborted, or no usable evaluation) does not
raise: the round it scored stays not evaluated, and a failed final evaluation leaves
the kept model without its held-out metrics, calibration and fairness
(``RunState.final_missing`` says why). Neither is asked again, of other banks or by a
resumed run: a second secure sum of the same releases over another set of banks would
expose the difference, and a bank makes the governance release once per run. A
resumed run whose kept model is the one whose final evaluation it asked for before
keeps that evaluation's record. Mid-run, an evaluate-only exchange in the clear that
brings no usable evaluation fails the run (:meth:`RunEvaluations.evaluate_lost`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from flwr.app import ArrayRecord, Message

from coordinator.app.aggregation import Aggregation, SummedEvaluation
from coordinator.app.audit_trail import CoordinatorAudit
from coordinator.app.bank_replies import ReplyBook, train_evaluation
from coordinator.app.checkpoint import save_checkpoint
from coordinator.app.exchange import BankExchange, Stage
from coordinator.app.governance import governance_layout, governance_outcome
from coordinator.app.instructions import round_instructions
from coordinator.app.run_state import (
    BestRound,
    PendingRound,
    RoundResult,
    RunState,
    ScoreHistograms,
    SelectedModel,
)
from coordinator.app.selection import selection_lines
from coordinator.errors import RoundAborted, RoundFailed
from credit.governance.release import GovernanceLayout
from credit.messages import EvaluateRequest, EvaluationDeclined, EvaluationRows
from credit.metrics import CreditMetrics, ScoreSummary, credit_metrics
from credit.run_config import RunConfig

__all__ = ["Members", "RunEvaluations"]

Members = dict[int, str]
"""The run's connected banks asked in an exchange: node id -> bank name."""


class RunEvaluations:
    """The evaluations of one run's models, from its first round to its end.

    Parameters
    ----------
    config : RunConfig
        The run configuration.
    aggregation : Aggregation
        The run's aggregation (plain FedAvg, or secure aggregation).
    exchange : BankExchange
        Sends a stage's messages.
    book : ReplyBook
        Sorts the banks' replies and keeps their ledgers and refusals.
    audit : CoordinatorAudit
        The run's audit log (each settled round is an entry).
    private : bool
        Whether the banks train under privacy budgets: it sets the default cadence,
        and the governance sums are noisy.
    on_round : callable
        Called with each settled round's :class:`RoundResult` and the planned rounds.
    on_event : callable
        Called with one-line progress messages.
    """

    def __init__(
        self,
        *,
        config: RunConfig,
        aggregation: Aggregation,
        exchange: BankExchange,
        book: ReplyBook,
        audit: CoordinatorAudit,
        private: bool,
        on_round: Callable[[RoundResult, int], None],
        on_event: Callable[[str], None],
    ) -> None:
        self._config = config
        self._aggregation = aggregation
        self._exchange = exchange
        self._book = book
        self._audit = audit
        self._private = private
        self._on_round = on_round
        self._on_event = on_event

    # -- during the rounds --------------------------------------------------------------

    def evaluates(self, server_round: int) -> bool:
        """Whether the run's cadence scores the model of ``server_round``."""
        return self._config.evaluates(server_round, private=self._private)

    @property
    def rows(self) -> EvaluationRows:
        """The rows the rounds' evaluations score: the validation parts, if the run has them."""
        if self._config.selects_best_round:
            return EvaluationRows.VALIDATION
        return EvaluationRows.TEST

    def ask_in(self, messages: Sequence[Message], pending: PendingRound) -> None:
        """Ask in each train message for the evaluation of the model it carries (``pending``'s)."""
        request = EvaluateRequest(server_round=pending.server_round, rows=self.rows)
        for message in messages:
            request.put(message.content)

    def settle_from(self, state: RunState, pending: PendingRound, replies: list[Message]) -> None:
        """Settle ``pending`` with the evaluations train ``replies`` carry (if any is usable)."""

        def parse(reply: Message) -> ScoreSummary | None:
            if EvaluationDeclined.present(reply.content):
                return None  # the bank's policy or budget: nothing released
            return train_evaluation(reply, score_bins=self._config.score_bins)

        answers = self._book.evaluations(replies, parse, pending.server_round)
        summaries = [summary for summary in answers if summary is not None]
        if summaries:
            self.settle(state, pending, ScoreSummary.combine(summaries))
        elif answers:  # every bank that answered declined: asking again changes nothing
            self._on_event(f"round {pending.server_round}: every bank declined to evaluate")
            self.settle(state, pending, None)

    def evaluate_lost(self, state: RunState, members: Members) -> None:
        """The pending round's evaluation did not come with the round after it.

        In the clear an evaluate-only exchange asks for it; under secure aggregation
        it was lost with the round's secure sum and the round stays unscored (a secure
        sum of its own would cost three exchanges mid-run).

        Raises
        ------
        RoundFailed
            As :meth:`_evaluate_model` (in the clear).
        """
        pending = state.pending
        if pending is None:
            return
        if self._aggregation.sums_evaluations:
            self._on_event(
                f"round {pending.server_round}'s evaluation was lost with round "
                f"{pending.server_round + 1}'s secure sum: not evaluated"
            )
            self.settle(state, pending, None)
            return
        self._evaluate_pending(state, members)

    def score_last(self, state: RunState, members: Members, *, final: bool) -> None:
        """Score the last model, if its evaluation is pending; a failure is recorded, not raised.

        Before a failed round fails the run, and at the run's end. ``final``: this is
        the kept model's final evaluation (no validation parts), with the governance
        release. When the evaluate exchange fails the round is recorded as not
        evaluated (and, ``final``, ``state.final_missing`` says why), so that neither
        this run nor a resumed one asks for that evaluation again.
        """
        pending = state.pending
        if pending is None:
            return
        try:
            self._evaluate_pending(state, members, last=final)
        except RoundFailed as failed:
            self._on_event(f"round {pending.server_round}'s model could not be scored: {failed}")
            if final:
                _final_failed(state, pending.server_round, failed)
                missing = state.final_missing
                self._on_event(f"final evaluation on the held-out rows: missing: {missing}")
            self.settle(state, pending, None)

    def settle(
        self,
        state: RunState,
        pending: PendingRound,
        summary: ScoreSummary | None,
        *,
        seconds: float = 0.0,
        exchanges: dict[str, float] | None = None,
    ) -> None:
        """Complete ``pending`` with the pooled metrics of the summed ``summary``.

        The round's result is recorded, audited (with the model scored, the global
        model, and the epsilon as of the round's training), checkpointed and reported,
        in that order. ``seconds`` and ``exchanges`` are an evaluate-only exchange's.
        Without a summary (or one that holds a single class: noise can do that to a
        small hold-out) the round is recorded as not evaluated; with metrics, its
        histograms become the run's final ones (``state.final_scores``), or, with
        validation parts, a better validation AUC than any before makes it the best
        round (``state.best``: its model is ``state.arrays`` when it settles).
        """
        metrics = self._metrics_of(pending.server_round, summary)
        if self._config.selects_best_round:
            if metrics is not None and (state.best is None or state.best.beaten_by(metrics.auc)):
                state.best = BestRound(pending.server_round, metrics.auc, state.arrays)
        elif metrics is not None and summary is not None:
            state.final_scores = ScoreHistograms.settled(pending.server_round, summary)
        result = pending.result(metrics, seconds=seconds, exchanges=exchanges)
        state.rounds.append(result)
        state.pending = None
        self._audit.round(result, state.arrays, pending.epsilon)
        save_checkpoint(Path(self._config.out_dir), state, pending.server_round)
        self._on_round(result, self._config.rounds)

    # -- the run's end ------------------------------------------------------------------

    def end(self, state: RunState, members: Members) -> None:
        """The run's last evaluations: of the last round's model, then (validation parts)
        the kept model's final evaluation.

        A failed evaluate exchange here does not fail the run, which has trained and
        paid for its rounds (see the module's docstring).
        """
        pending = state.pending
        if not self._config.selects_best_round:
            if pending is not None:
                self.score_last(state, members, final=True)
            return
        if pending is not None and state.best is not None:
            self.score_last(state, members, final=False)  # its validation AUC
        elif pending is not None:  # no round validated: nothing to choose between
            self.settle(state, pending, None)
        self._evaluate_selected(state, members)

    def _evaluate_selected(self, state: RunState, members: Members) -> None:
        """The final evaluation: the kept model scored on the held-out rows, with governance.

        The kept model is the best validated round's (:attr:`RunState.best`), or the
        last one's when no round was validated; it is the model the run writes
        (:meth:`RunState.kept_arrays`) and its metrics the run's final ones
        (``state.selected``), or why they are missing (``state.final_missing``). The
        global model (``state.arrays``) stays the last round's, from which a resumed
        run that adds rounds trains on.
        """
        best, last = state.best, _last_round(state)
        if last == 0:
            return  # no round trained: no model to keep
        arrays = best.arrays if best is not None else state.arrays
        server_round = best.server_round if best is not None else last
        earlier = state.selected
        if earlier is not None and earlier.server_round == server_round:
            self._keep_earlier_final(state, earlier, last)
            return
        started, since = time.monotonic(), len(self._exchange.timings)
        layout = governance_layout(state.schema, self._config)
        state.final_scores = None  # a resumed run's earlier final evaluation: another model
        line = None
        try:
            summed = self._evaluate_model(
                state, members, arrays=arrays, server_round=server_round, layout=layout,
                rows=EvaluationRows.TEST,
            )  # fmt: skip
        except RoundFailed as failed:
            _final_failed(state, server_round, failed)
            metrics = None
        else:
            outcome = governance_outcome(summed, layout, noisy=self._private)
            metrics = self._metrics_of(server_round, summed.summary)
            if metrics is not None and summed.summary is not None:
                state.final_scores = ScoreHistograms.settled(server_round, summed.summary)
            state.governance, state.final_missing, line = outcome.document, None, outcome.line
        state.selected = SelectedModel(
            server_round=server_round,
            metrics=metrics,
            validation_auc=None if best is None else best.auc,
            last_round=last,
            seconds=time.monotonic() - started,
            exchanges=self._exchange.seconds_of(server_round, since),
        )
        save_checkpoint(Path(self._config.out_dir), state, last)
        for text in selection_lines(state.selected, missing=state.final_missing):
            self._on_event(text)
        if line is not None:
            self._on_event(line)

    def _keep_earlier_final(self, state: RunState, earlier: SelectedModel, last: int) -> None:
        """A resumed run keeps the model whose final evaluation it asked for before.

        That evaluation's record (its metrics, or why they are missing) stands: the
        banks are not asked for the same release again.
        """
        state.selected = dataclasses.replace(earlier, last_round=last)
        save_checkpoint(Path(self._config.out_dir), state, last)
        self._on_event(
            f"round {earlier.server_round}'s model, kept again, had its final evaluation "
            "before the run resumed: not asked again"
        )
        for text in selection_lines(state.selected, missing=state.final_missing):
            self._on_event(text)

    # -- the evaluate-only exchange -------------------------------------------------------

    def _evaluate_pending(self, state: RunState, members: Members, *, last: bool = False) -> None:
        """The evaluate-only exchange: the run's ``members`` score the pending round's model.

        That model is the global model (``state.arrays``): a pending round is always
        the last one trained. Under secure aggregation it is a secure round of its own.
        ``last``: it is the run's last model, whose evaluation also asks for the
        governance release (calibration and fairness sums: ``state.governance``, see
        :mod:`coordinator.app.governance`).

        Raises
        ------
        RoundFailed
            As :meth:`_evaluate_model`.
        """
        pending = state.pending
        if pending is None:
            return
        server_round = pending.server_round
        started, since = time.monotonic(), len(self._exchange.timings)
        layout = governance_layout(state.schema, self._config) if last else None
        summed = self._evaluate_model(
            state, members, arrays=state.arrays, server_round=server_round, layout=layout,
            rows=self.rows,
        )  # fmt: skip
        outcome = None
        if layout is not None:  # kept before the round settles: its checkpoint holds it
            outcome = governance_outcome(summed, layout, noisy=self._private)
            state.governance = outcome.document
            state.final_missing = None  # a resumed run's new last model was scored
        exchanges = self._exchange.seconds_of(server_round, since)
        seconds = time.monotonic() - started
        self.settle(state, pending, summed.summary, seconds=seconds, exchanges=exchanges)
        if outcome is not None:
            self._on_event(outcome.line)

    def _evaluate_model(
        self,
        state: RunState,
        members: Members,
        *,
        arrays: ArrayRecord,
        server_round: int,
        layout: GovernanceLayout | None,
        rows: EvaluationRows,
    ) -> SummedEvaluation:
        """One evaluate-only exchange: the ``members`` score ``arrays`` (round ``server_round``'s
        model) on their ``rows`` (and make the governance release of ``layout``, if any).

        Under secure aggregation it is a secure round of its own.

        Raises
        ------
        RoundFailed
            Fewer than ``min_banks`` replies without errors, too few banks left for the
            secure sum, or no usable evaluation.
        """
        aggregation = self._aggregation
        instructions = round_instructions(self._config, state, server_round, private=self._private)
        try:
            messages = aggregation.evaluation_messages(
                arrays, instructions, sorted(members), layout, rows
            )
            replies = self._exchange(messages, Stage.EVALUATE, server_round)

            def parse(reply: Message) -> Message:
                return aggregation.check_evaluation(reply, instructions, layout)

            answered = self._book.sort(replies, parse, server_round).answers
            summed = (
                aggregation.sum_evaluations(answered, instructions, layout)
                if answered
                else SummedEvaluation(None)
            )
        except RoundAborted as abort:
            raise RoundFailed(
                stage=Stage.EVALUATE,
                server_round=server_round,
                received=abort.remaining,
                required=abort.required,
                reasons=[str(abort)],
            ) from None
        if not answered:
            raise RoundFailed(
                stage=Stage.EVALUATE, server_round=server_round, received=0, required=1, reasons=[]
            )
        if summed.summary is None:
            self._on_event(f"round {server_round}: every bank declined to evaluate")
        return summed

    def _metrics_of(self, server_round: int, summary: ScoreSummary | None) -> CreditMetrics | None:
        """The pooled metrics of a summed ``summary`` (None: none, or a single class)."""
        if summary is None:
            return None
        try:
            return credit_metrics(summary)
        except ValueError as exc:
            self._on_event(f"round {server_round}: not evaluated ({exc})")
            return None


def _final_failed(state: RunState, server_round: int, failed: RoundFailed) -> None:
    """Record that the final evaluation of ``server_round``'s model failed, and why.

    Nothing of another model stands in for it: the final histograms and the
    governance report are cleared (a resumed run may hold an earlier model's).
    """
    detail = f"{failed.received} usable replies, {failed.required} required"
    if failed.reasons:
        detail += ": " + "; ".join(failed.reasons)
    state.final_missing = (
        f"the evaluation of round {server_round}'s model on the held-out rows failed "
        f"({detail}); its held-out metrics, calibration and fairness are missing, and it "
        "is not asked again (the banks make that release once per run)"
    )
    state.final_scores = None
    state.governance = None


def _last_round(state: RunState) -> int:
    """The last round the run trained (or aborted): 0 before the first."""
    return state.rounds[-1].server_round if state.rounds else 0
