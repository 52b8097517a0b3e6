"""One federated run, driven by the coordinator over Flower's Grid.

How a run flows (each arrow pair is one message exchange)::

    coordinator                                   each bank
    ───────────                                   ─────────
    wait for min_banks nodes
    query "feature-stats"  ───────────────────▶   validate file, hold out its test rows,
                           ◀───────────────────   aggregates of train rows (no rows)
    combine aggregates, fit encoder
    for round r = 1..R:
        train(weights of r-1, encoder,
              from r = 2: "evaluate r-1") ────▶   score the weights received on own test
                                                  rows, then local SGD on train rows
                           ◀───────────────────   round r-1's score histograms and loss
                                                  sums, new weights (or a masked update)
        round r-1's pooled AUC, KS, ... from the summed histograms: its result is
        complete (audited, reported, checkpointed)
        aggregate (plain FedAvg, or secure aggregation: coordinator.app.aggregation,
        whose unmask exchange also collects round r+1's keys)
        checkpoint: round r trained, its evaluation pending
    evaluate(weights of R) ───────────────────▶   score own test rows
                           ◀───────────────────   score histograms, loss sums
    round R's metrics: its result is complete

So a plain round is one exchange, a secure one two, and the run ends with one
evaluate-only exchange. That exchange also follows a round whose train replies
brought no usable evaluation of the round before (or that ended before asking
anyone: secure aggregation without enough keys), and scores the last model when the
run ends early: privacy budgets leave too few banks willing to train
(:class:`~coordinator.errors.RunStopped`), or a round fails.

A set-up or train exchange with fewer than ``min_banks`` replies without errors
raises :class:`~coordinator.errors.RoundFailed` and fails the run; the last trained
round's model is scored first if its evaluation was pending. An evaluate-only
exchange that fails (too few replies, its secure sum aborted, or no usable
evaluation) leaves its round not evaluated and is never asked again: at the run's
end the run still completes with its kept model, and when the failed exchange was
the final evaluation, ``metrics.json`` says why the kept model's held-out metrics,
calibration and fairness are missing (``final_missing``). A round that loses too many
banks to (simulated) dropouts, or to losses at secure aggregation's own stages, is
aborted (:class:`~coordinator.errors.RoundAborted`): the model stays, the round is
recorded as aborted and the run goes on. When privacy budgets leave too few banks
willing to train, the run stops with the last model.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

from flwr.app import ArrayRecord, Message, MessageType
from flwr.serverapp import Grid

from coordinator.app.aggregation import Aggregation, SummedEvaluation
from coordinator.app.audit_trail import CoordinatorAudit
from coordinator.app.bank_replies import ReplyBook, TrainReply, train_evaluation, train_reply
from coordinator.app.checkpoint import load_checkpoint, save_checkpoint
from coordinator.app.exchange import BankExchange, Stage, messages_to
from coordinator.app.governance import governance_layout, governance_outcome
from coordinator.app.joining import (
    SetupReply,
    aggregation_for,
    fit_run_encoding,
    setup_reply_parser,
)
from coordinator.app.run_state import (
    BestRound,
    PendingRound,
    RoundResult,
    RunState,
    ScoreHistograms,
    SelectedModel,
    TrainOutcome,
)
from coordinator.app.secagg_server import BankDropped, SecureAggregation
from coordinator.app.selection import selection_lines, stop_reason
from coordinator.errors import RoundAborted, RoundFailed, RunStopped
from credit.encoding import StatsSource
from credit.errors import MalformedMessage
from credit.feature_stats import FeatureStats, combine_feature_stats, vector_length
from credit.governance.release import GovernanceLayout
from credit.messages import (
    EvaluateRequest,
    EvaluationDeclined,
    EvaluationRows,
    QueryInstructions,
    Refusal,
    RoundInstructions,
    RunInstructions,
    Task,
    secagg,
)
from credit.metrics import CreditMetrics, ScoreSummary, credit_metrics
from credit.model_spec import ModelSpec
from credit.run_config import RunConfig
from credit.schema import load_schema

__all__ = ["RunDriver"]

RoundCallback = Callable[[RoundResult, int], None]
EventCallback = Callable[[str], None]
T = TypeVar("T")


class RunDriver:
    """Drive set-up, training and evaluation rounds for one run.

    Parameters
    ----------
    grid : flwr.serverapp.Grid
        Flower's handle on the connected nodes.
    config : RunConfig
        The run configuration.
    on_round : callable, optional
        Called with each :class:`RoundResult` and the planned number of rounds.
    on_event : callable, optional
        Called with one-line progress messages.
    """

    def __init__(
        self,
        grid: Grid,
        config: RunConfig,
        *,
        on_round: RoundCallback | None = None,
        on_event: EventCallback | None = None,
    ) -> None:
        self.grid = grid
        self.config = config
        self.schema = load_schema(config.schema_file or None)
        self._on_round = on_round or (lambda result, total: None)
        self._on_event = on_event or (lambda text: None)
        self._exchange = BankExchange(
            grid, min_banks=config.min_banks, timeout=config.round_timeout
        )
        self._audit: CoordinatorAudit | None = None
        # Whether the banks train under privacy budgets (they report ledgers once joined):
        # it sets the default evaluation cadence.
        self._private = False
        # What banks report: a new run's state shares the book's records; a resumed
        # run's book goes on recording into the checkpoint's.
        self._book = ReplyBook(on_event=self._on_event, on_refusal=self._record_refusal)

    def run(self) -> RunState:
        """Run set-up and every round (or continue from the checkpoint); return the state.

        Every step is recorded in the signed audit log ``OUT/audit/coordinator.jsonl``
        (see :mod:`coordinator.app.audit_trail`), including a failure.
        """
        audit = CoordinatorAudit(self.config, flower_run_id=self.grid.run.run_id)
        self._audit = audit
        self._exchange.audit = audit  # log heads both ways, one entry per exchange
        try:
            state = self._run(audit)
        except Exception as error:
            audit.run_failed(error)
            raise
        else:
            audit.run_end(state)
        finally:
            self._exchange.audit = None
            audit.close()
            self._audit = None
        return state

    def _run(self, audit: CoordinatorAudit) -> RunState:
        if self.config.resume:
            state, aggregation, completed = self._resume(audit)
        else:
            audit.run_start(self.schema.schema_hash())
            (state, aggregation), completed = self._start(), 0
        audit.setup(state.banks, state.arrays)
        if completed < self.config.rounds:
            if (line := aggregation.describe()) is not None:
                self._on_event(line)
            aggregation.prepare(completed + 1, state.arrays, self._run_instructions())
        self._rounds(state, aggregation, completed)
        state.secure_aggregation = aggregation.summary()
        return state

    # -- set-up ---------------------------------------------------------------------

    def _start(self) -> tuple[RunState, Aggregation]:
        """Set-up of a new run: encoder from the banks' aggregates, initial model."""
        from credit.models import build_model

        config = self.config
        federated = config.feature_stats == StatsSource.FEDERATED
        in_the_clear = federated and not config.secure_aggregation
        if in_the_clear:
            query = self._run_instructions().query(Task.FEATURE_STATS, grid_bins=config.grid_bins)
            parse = setup_reply_parser(self.schema, grid_bins=config.grid_bins)
            joined = self._join(query, self._nodes(), parse, Stage.FEATURE_STATS)
        else:  # nothing released with the join: public bounds, or secure round 0 follows
            query = self._run_instructions().query(Task.JOIN)
            parse = setup_reply_parser(self.schema, grid_bins=None)
            joined = self._join(query, self._nodes(), parse, Stage.JOIN)
        aggregation = self._aggregation(joined)
        stats = None
        if in_the_clear:
            stats = combine_feature_stats([r.stats for r in joined if r.stats is not None])
        elif federated and isinstance(aggregation, SecureAggregation):
            stats, refused = self._secure_setup_sum(aggregation, joined)
            # A bank whose budget refuses the set-up release takes no part in the run.
            joined = [reply for reply in joined if reply.bank.name not in refused]
        # Noisy sums are clipped only after summing (and per bin for the WoE tables).
        fitted = fit_run_encoding(config, self.schema, stats, noisy=self._private)
        encoder = fitted.encoder
        spec = ModelSpec(
            kind=self.config.model, n_inputs=encoder.n_inputs, hidden_sizes=self.config.hidden_sizes
        )
        state = RunState(
            config=self.config,
            schema=self.schema,
            encoder=encoder,
            spec=spec,
            banks=sorted((reply.bank for reply in joined), key=lambda bank: bank.name),
            arrays=ArrayRecord(build_model(spec, seed=self.config.seed).state_dict()),
            privacy=self._book.privacy,
            refusals=self._book.refusals,
            woe=fitted.woe,
        )
        total = sum(bank.n_train for bank in state.banks)
        self._on_event(
            f"encoder fitted ({self.config.encoding}, {self.config.feature_stats} statistics "
            f"from {len(state.banks)} banks, {total:,} training rows): {encoder.n_inputs} "
            "model inputs"
        )
        return state, aggregation

    def _secure_setup_sum(
        self, aggregation: SecureAggregation, joined: Sequence[SetupReply]
    ) -> tuple[FeatureStats, set[str]]:
        """The banks' aggregates summed in secure round 0 (three exchanges), and the banks
        that refused to release theirs.

        Raises
        ------
        RoundFailed
            Too few banks are left for the secure sum.
        """
        grid_bins = self.config.grid_bins
        query = self._run_instructions().query(Task.FEATURE_STATS, grid_bins=grid_bins)
        nodes = [reply.bank.node_id for reply in joined]
        length = vector_length(self.schema, grid_bins)
        try:
            messages = aggregation.setup_messages(query, length, nodes)
            replies = self._exchange(messages, Stage.FEATURE_STATS, 0)
            replied = self._book.sort(replies, _as_is, 0)
            answered = replied.answers
            first = ArrayRecord()  # round 1's keys are for the model built after this
            total = aggregation.sum_setup(answered, query, first)
        except RoundAborted as abort:
            raise RoundFailed(
                stage=Stage.FEATURE_STATS,
                server_round=0,
                received=abort.remaining,
                required=abort.required,
                reasons=[str(abort)],
            ) from None
        stats = FeatureStats.from_vector(total, schema=self.schema, grid_bins=grid_bins)
        return stats, {refusal.bank for refusal in replied.refused}

    def _resume(self, audit: CoordinatorAudit) -> tuple[RunState, Aggregation, int]:
        """Continue from the checkpoint: find the run's banks again (no data release), re-key.

        A bank the checkpoint does not know is refused a place in the run.
        """
        out_dir = Path(self.config.out_dir)
        state, completed = load_checkpoint(out_dir, self.config)
        self._book.resume(state.privacy, state.refusals)
        self._private = bool(state.privacy)
        audit.run_resume(completed, state.arrays, self.schema.schema_hash())
        query = self._run_instructions().query(Task.ENROLL)
        parse = setup_reply_parser(self.schema, grid_bins=None)
        joined = self._join(query, self._nodes(), parse, Stage.ENROLL)
        known = {bank.name for bank in state.banks}
        accepted = [reply for reply in joined if reply.bank.name in known]
        for reply in joined:
            if reply.bank.name not in known:
                self._on_event(f"bank '{reply.bank.name}' is not part of this run: left out")
                audit.refusal(reply.bank.name, 0, "not part of the run being resumed")
        state.banks = sorted((reply.bank for reply in accepted), key=lambda bank: bank.name)
        # The final evaluation's record (state.selected) stays: should the kept model be
        # the same after the rounds added, its evaluation is not asked again.
        self._on_event(f"resuming after round {completed} from {out_dir / 'checkpoint'}")
        return state, self._aggregation(accepted), completed

    def _join(
        self,
        query: QueryInstructions,
        nodes: Sequence[int],
        parse: Callable[[Message], SetupReply],
        stage: Stage,
    ) -> list[SetupReply]:
        """Ask ``nodes`` to join; the banks that did (refusals recorded)."""
        # With secure aggregation, a KeyRequest asks banks for their encryption keys.
        keys = (secagg.KeyRequest(),) if self.config.secure_aggregation else ()
        messages = messages_to(nodes, MessageType.QUERY, query, *keys)

        def introduced(reply: Message) -> SetupReply:
            joined = parse(reply)
            if not self._book.speaks_for(joined.bank.name, joined.bank.node_id):
                raise MalformedMessage(f"a second node introduces itself as '{joined.bank.name}'")
            return joined

        replies = self._book.sort(self._exchange(messages, stage, 0), introduced, 0)
        self._private = bool(self._book.privacy)
        if len(replies.answers) < self.config.min_banks:
            raise RoundFailed(
                stage=stage,
                server_round=0,
                received=len(replies.answers),
                required=self.config.min_banks,
                reasons=[refusal.text() for refusal in self._book.refusals] + replies.malformed,
            )
        return replies.answers

    def _aggregation(self, joined: Sequence[SetupReply]) -> Aggregation:
        names = {reply.bank.node_id: reply.bank.name for reply in joined}
        return aggregation_for(
            self.config,
            joined,
            run=self.grid.run.run_id,
            exchange=self._exchange,
            on_drop=lambda dropped: self._record_drop(dropped, names),
        )

    def _record_drop(self, dropped: BankDropped, names: Mapping[int, str]) -> None:
        """A bank left out of a secure round for bad input: the run's events and audit log."""
        self._on_event(dropped.text())
        if self._audit is not None:
            bank = names.get(dropped.node, f"node {dropped.node}")
            reason = f"dropped from secure aggregation: {dropped.reason}"
            self._audit.refusal(bank, dropped.server_round, reason)

    def _nodes(self) -> list[int]:
        """The connected nodes, once ``min_banks`` are."""
        nodes = self._exchange.nodes()
        self._on_event(f"{len(nodes)} banks connected")
        return nodes

    def _run_instructions(self) -> RunInstructions:
        return RunInstructions.of_run(
            self.config,
            self.schema.schema_hash(),
            planned_evaluations=self.config.announced_evaluations(private=self._private),
        )

    # -- rounds ---------------------------------------------------------------------

    def _rounds(self, state: RunState, aggregation: Aggregation, completed: int) -> None:
        """Rounds ``completed + 1`` to the last, then the evaluation of the last model.

        Each round is checkpointed after its aggregation; its result is recorded when
        its metrics come in (:meth:`_settle`), one exchange later.
        """
        for server_round in range(completed + 1, self.config.rounds + 1):
            if state.stopped_early is not None:  # a resumed run that had stopped early
                break
            try:
                self._round(state, aggregation, server_round)
            except RunStopped as stop:
                state.stopped = str(stop)
                self._on_event(f"stopped: {stop}")
                break
            if (reason := self._stop_reason(state)) is not None:
                state.stopped_early = reason
                save_checkpoint(Path(self.config.out_dir), state, server_round)
                self._on_event(f"stopped early after round {server_round}: {reason}")
                break
        self._end(state, aggregation)

    def _end(self, state: RunState, aggregation: Aggregation) -> None:
        """The run's last evaluations: of the last round's model, then (validation parts)
        the kept model's final evaluation.

        An evaluate exchange that fails here does not fail the run, which has trained
        and paid for its rounds: the round it scored stays not evaluated, and a failed
        final evaluation leaves the kept model without its held-out metrics,
        calibration and fairness (``state.final_missing`` says why). Neither is asked
        again, of other banks or by a resumed run: a second secure sum of the same
        releases over another set of banks would expose the difference, and a bank
        makes the governance release once per run.
        """
        members = self._members(state)
        pending = state.pending
        if not self.config.selects_best_round:
            if pending is not None:
                self._score_last(state, aggregation, members, final=True)
            return
        if pending is not None and state.best is not None:
            self._score_last(state, aggregation, members, final=False)  # its validation AUC
        elif pending is not None:  # no round validated: nothing to choose between
            self._settle(state, pending, None)
        self._evaluate_selected(state, aggregation, members)

    def _stop_reason(self, state: RunState) -> str | None:
        """Why early stopping ends the run now (None: it goes on, or has no patience)."""
        if state.best is None:
            return None
        return stop_reason(
            state.rounds, best_round=state.best.server_round, patience=self.config.patience
        )

    @property
    def _rows(self) -> EvaluationRows:
        """The rows the rounds' evaluations score: the validation parts, if the run has them."""
        if self.config.selects_best_round:
            return EvaluationRows.VALIDATION
        return EvaluationRows.TEST

    def _round(self, state: RunState, aggregation: Aggregation, server_round: int) -> None:
        """Train (or abort) round ``server_round``; it is then pending, and checkpointed.

        Its train message also asks for the evaluation of the model it carries, when
        the round before is pending and the run's cadence scores it (:meth:`_train`);
        if no usable evaluation comes back, an evaluate-only exchange asks for it. A
        round the cadence skips is recorded unscored only once this round has trained:
        should the run stop or fail here, its model is the last one, and is scored.

        Raises
        ------
        RunStopped
            Too few banks are willing to train (the model is unchanged).
        RoundFailed
            Too few banks answered; the last model was scored first, if pending.
        """
        started, since = time.monotonic(), len(self._exchange.timings)
        aggregation.prepare(server_round, state.arrays, self._run_instructions())
        instructions = self._round_instructions(state, server_round)
        members = self._members(state)
        try:
            trained = self._train(state, aggregation, instructions, members)
        except RoundAborted as abort:
            self._on_event(str(abort))
            trained = TrainOutcome(
                arrays=state.arrays, train_loss=None, trained=(), aborted=str(abort)
            )
        except RoundFailed:
            self._score_last(state, aggregation, members, final=False)
            raise
        pending = state.pending
        if pending is not None and not self._evaluates(pending.server_round):
            # Settled only now: had the run stopped or failed, it would be the last model.
            self._settle(state, pending, None)  # the run's cadence does not score it
        elif pending is not None:  # no usable evaluation came with the train replies
            self._evaluate_lost(state, aggregation, members)
        state.arrays = trained.arrays
        state.pending = self._pending(state, server_round, trained, started, since)
        save_checkpoint(Path(self.config.out_dir), state, server_round)

    def _round_instructions(self, state: RunState, server_round: int) -> RoundInstructions:
        return RoundInstructions(
            **self._run_instructions().model_dump(),
            server_round=server_round,
            learning_rate=self.config.learning_rate,
            score_bins=self.config.score_bins,
            encoder=state.encoder,
            model_spec=state.spec,
        )

    def _pending(
        self,
        state: RunState,
        server_round: int,
        trained: TrainOutcome,
        started: float,
        since: int,
    ) -> PendingRound:
        """Round ``server_round`` as trained, awaiting its metrics.

        ``started`` is when the round began (``time.monotonic``) and ``since`` its first
        exchange's index in the exchange timings.
        """
        names = {bank.node_id: bank.name for bank in state.banks}
        epsilon = {bank: ledger.epsilon for bank, ledger in state.privacy.items()}
        return PendingRound(
            server_round=server_round,
            train_loss=trained.train_loss,
            banks=tuple(sorted(names.get(node, "?") for node in trained.trained)),
            seconds=time.monotonic() - started,
            refused=tuple(sorted(refusal.bank for refusal in trained.refused)),
            max_epsilon_spent=max(epsilon.values()) if epsilon else None,
            dropped=tuple(sorted(names.get(node, "?") for node in trained.dropped)),
            aborted=trained.aborted,
            exchanges=self._exchange.seconds_of(server_round, since),
            epsilon=epsilon,
        )

    def _members(self, state: RunState) -> dict[int, str]:
        """The run's banks that are connected (node -> name), once ``min_banks`` nodes are.

        Only the run's own banks are asked to train and evaluate: a node that did not
        join the run (or was refused a place on resume) takes no part in its rounds.
        """
        connected = set(self._exchange.nodes())
        return {bank.node_id: bank.name for bank in state.banks if bank.node_id in connected}

    def _train(
        self,
        state: RunState,
        aggregation: Aggregation,
        instructions: RoundInstructions,
        members: dict[int, str],
    ) -> TrainOutcome:
        """One training step of the run's ``members`` (node -> bank name).

        With a round pending, the train messages also ask the banks to score the
        model they carry (its model): usable evaluations settle it before anything
        else is decided. A member that neither trained nor refused counts as dropped
        (lost, timed out, or a simulated dropout at any stage).

        Raises
        ------
        RoundAborted
            Dropouts leave fewer banks than the round needs (the model is unchanged).
        RunStopped
            Refusals leave fewer than ``min_banks`` banks willing to train.
        """
        server_round, arrays = instructions.server_round, state.arrays
        messages = aggregation.train_messages(arrays, instructions, sorted(members))
        pending = state.pending
        if pending is not None and not self._evaluates(pending.server_round):
            pending = None  # the run's cadence does not score it: not asked
        if pending is not None:
            _ask_to_evaluate(messages, pending.server_round, self._rows)
        replies = self._exchange(messages, Stage.TRAIN, server_round)
        if pending is not None and not aggregation.sums_evaluations:
            self._settle_from(state, pending, replies)

        def parse(reply: Message) -> TrainReply:
            return aggregation.check(train_reply(reply), arrays)

        sorted_replies = self._book.sort(replies, parse, server_round)
        accepted, needed = len(sorted_replies.answers), self.config.min_banks
        if accepted < needed and accepted + len(sorted_replies.dropped) < needed:
            raise RunStopped(
                server_round=server_round,
                refused=len(sorted_replies.refused),
                accepted=accepted,
                required=needed,
            )
        if accepted < needed:
            raise RoundAborted(
                server_round=server_round, stage="train", remaining=accepted, required=needed
            )
        # The keys of the round after: the next round's, or the last model's evaluation's.
        next_round = server_round + 1
        update = aggregation.aggregate(
            sorted_replies.answers,
            arrays,
            instructions,
            next_round=next_round,
            members=sorted(members),
        )
        if pending is not None and update.evaluation is not None:
            self._settle(state, pending, update.evaluation)
        refused = {refusal.bank for refusal in sorted_replies.refused}
        return TrainOutcome(
            arrays=update.arrays,
            train_loss=update.train_loss,
            trained=update.banks,
            refused=tuple(sorted_replies.refused),
            dropped=tuple(
                node
                for node, name in sorted(members.items())
                if node not in update.banks and name not in refused
            ),
        )

    # -- evaluation -----------------------------------------------------------------

    def _settle_from(self, state: RunState, pending: PendingRound, replies: list[Message]) -> None:
        """Settle ``pending`` with the evaluations train ``replies`` carry (if any is usable)."""

        def parse(reply: Message) -> ScoreSummary | None:
            if EvaluationDeclined.present(reply.content):
                return None  # the bank's policy or budget: nothing released
            return train_evaluation(reply, score_bins=self.config.score_bins)

        answers = self._book.evaluations(replies, parse, pending.server_round)
        summaries = [summary for summary in answers if summary is not None]
        if summaries:
            self._settle(state, pending, ScoreSummary.combine(summaries))
        elif answers:  # every bank that answered declined: asking again changes nothing
            self._on_event(f"round {pending.server_round}: every bank declined to evaluate")
            self._settle(state, pending, None)

    def _evaluates(self, server_round: int) -> bool:
        """Whether the run's cadence scores the model of ``server_round``."""
        return self.config.evaluates(server_round, private=self._private)

    def _evaluate_lost(
        self, state: RunState, aggregation: Aggregation, members: dict[int, str]
    ) -> None:
        """The pending round's evaluation did not come with the round after it.

        In the clear an evaluate-only exchange asks for it; under secure aggregation
        it was lost with the round's secure sum and the round stays unscored (a secure
        sum of its own would cost three exchanges mid-run).
        """
        pending = state.pending
        if pending is None:
            return
        if aggregation.sums_evaluations:
            self._on_event(
                f"round {pending.server_round}'s evaluation was lost with round "
                f"{pending.server_round + 1}'s secure sum: not evaluated"
            )
            self._settle(state, pending, None)
            return
        self._evaluate_pending(state, aggregation, members)

    def _evaluate_pending(
        self,
        state: RunState,
        aggregation: Aggregation,
        members: dict[int, str],
        *,
        last: bool = False,
    ) -> None:
        """The evaluate-only exchange: the run's ``members`` score the pending round's model.

        That model is the global model (``state.arrays``): a pending round is always
        the last one trained. Under secure aggregation it is a secure round of its own.
        ``last``: it is the run's last model, whose evaluation also asks for the
        governance release (calibration and fairness sums: ``state.governance``, see
        :mod:`coordinator.app.governance`).

        Raises
        ------
        RoundFailed
            Fewer than ``min_banks`` replies without errors, too few banks left for the
            secure sum, or no usable evaluation.
        """
        pending = state.pending
        if pending is None:
            return
        server_round = pending.server_round
        started, since = time.monotonic(), len(self._exchange.timings)
        layout = governance_layout(self.schema, self.config) if last else None
        summed = self._evaluate_model(
            state, aggregation, members, arrays=state.arrays, server_round=server_round,
            layout=layout, rows=self._rows,
        )  # fmt: skip
        outcome = None
        if layout is not None:  # kept before the round settles: its checkpoint holds it
            outcome = governance_outcome(summed, layout, noisy=self._private)
            state.governance = outcome.document
            state.final_missing = None  # a resumed run's new last model was scored
        exchanges = self._exchange.seconds_of(server_round, since)
        seconds = time.monotonic() - started
        self._settle(state, pending, summed.summary, seconds=seconds, exchanges=exchanges)
        if outcome is not None:
            self._on_event(outcome.line)

    def _evaluate_selected(
        self, state: RunState, aggregation: Aggregation, members: dict[int, str]
    ) -> None:
        """The final evaluation: the kept model scored on the held-out rows, with governance.

        The kept model is the best validated round's (:attr:`RunState.best`), or the
        last one's when no round was validated; it is the model the run writes
        (:meth:`RunState.kept_arrays`) and its metrics the run's final ones
        (``state.selected``). The global model (``state.arrays``) stays the last
        round's, from which a resumed run that adds rounds trains on.

        Raises
        ------
        RoundFailed
            As :meth:`_evaluate_model`.
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
        layout = governance_layout(self.schema, self.config)
        state.final_scores = None  # a resumed run's earlier final evaluation: another model
        line = None
        try:
            summed = self._evaluate_model(
                state, aggregation, members, arrays=arrays, server_round=server_round,
                layout=layout, rows=EvaluationRows.TEST,
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
        save_checkpoint(Path(self.config.out_dir), state, last)
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
        save_checkpoint(Path(self.config.out_dir), state, last)
        self._on_event(
            f"round {earlier.server_round}'s model, kept again, had its final evaluation "
            "before the run resumed: not asked again"
        )
        for text in selection_lines(state.selected, missing=state.final_missing):
            self._on_event(text)

    def _evaluate_model(
        self,
        state: RunState,
        aggregation: Aggregation,
        members: dict[int, str],
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
        instructions = self._round_instructions(state, server_round)
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

    def _score_last(
        self,
        state: RunState,
        aggregation: Aggregation,
        members: dict[int, str],
        *,
        final: bool,
    ) -> None:
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
            self._evaluate_pending(state, aggregation, members, last=final)
        except RoundFailed as failed:
            self._on_event(f"round {pending.server_round}'s model could not be scored: {failed}")
            if final:
                _final_failed(state, pending.server_round, failed)
                missing = state.final_missing
                self._on_event(f"final evaluation on the held-out rows: missing: {missing}")
            self._settle(state, pending, None)

    def _settle(
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
        if self.config.selects_best_round:
            if metrics is not None and (state.best is None or state.best.beaten_by(metrics.auc)):
                state.best = BestRound(pending.server_round, metrics.auc, state.arrays)
        elif metrics is not None and summary is not None:
            state.final_scores = ScoreHistograms.settled(pending.server_round, summary)
        result = pending.result(metrics, seconds=seconds, exchanges=exchanges)
        state.rounds.append(result)
        state.pending = None
        if self._audit is not None:
            self._audit.round(result, state.arrays, pending.epsilon)
        save_checkpoint(Path(self.config.out_dir), state, pending.server_round)
        self._on_round(result, self.config.rounds)

    def _record_refusal(self, refusal: Refusal) -> None:
        if self._audit is not None:
            self._audit.refusal(refusal.bank, refusal.server_round, refusal.text())


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


def _as_is(reply: Message) -> Message:
    """A reply taken as it is (its content is read by secure aggregation)."""
    return reply


def _ask_to_evaluate(messages: list[Message], server_round: int, rows: EvaluationRows) -> None:
    """Ask in each train message for the evaluation of the model it carries (round's)."""
    request = EvaluateRequest(server_round=server_round, rows=rows)
    for message in messages:
        request.put(message.content)
