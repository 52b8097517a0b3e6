"""One federated run, driven by the coordinator over Flower's Grid: set-up, rounds, end.

How a run flows (each arrow pair is one message exchange)::

    coordinator                                   each bank
    ───────────                                   ─────────
    set-up (coordinator.app.run_setup): wait for min_banks nodes, the banks join and
    release aggregates of their training rows; encoder fitted, first model built
    for round r = 1..R:
        train(weights of r-1, encoder,
              from r = 2: "evaluate r-1") ────▶   score the weights received on own
                                                  held-out rows (or validation part),
                                                  then local SGD on train rows
                           ◀───────────────────   round r-1's score histograms and loss
                                                  sums, new weights (or a masked update)
        round r-1's pooled AUC, KS, ... from the summed histograms: its result is
        complete (audited, reported, checkpointed)
        aggregate (plain FedAvg, or secure aggregation: coordinator.app.aggregation,
        whose unmask exchange also collects round r+1's keys); FedAdam, FedYogi and
        FedAvgM then step from the aggregated mean (coordinator.app.server_optimizer)
        checkpoint: round r trained, its evaluation pending
    end (coordinator.app.evaluations):
    evaluate(weights of R) ───────────────────▶   score own held-out rows (validation
                           ◀───────────────────   part); score histograms, loss sums
    round R's metrics: its result is complete; with validation parts, the kept model's
    final evaluation on the held-out rows follows (with the governance release)

So a plain round is one exchange, a secure one two, and the run ends with one
evaluate-only exchange (two with validation parts). An evaluate-only exchange also
follows a round whose train replies brought no usable evaluation of the round before
(or that ended before asking anyone: secure aggregation without enough keys), and
scores the last model when the run ends early: privacy budgets leave too few banks
willing to train (:class:`~coordinator.errors.RunStopped`), or a round fails.

A set-up or train exchange with fewer than ``min_banks`` replies without errors, or
a mid-run evaluate-only exchange (in the clear) with none usable, raises
:class:`~coordinator.errors.RoundFailed` and fails the run; the last trained round's
model is scored first if its evaluation was pending. At the run's end an
evaluate-only exchange that fails (too few replies, its secure sum aborted, or no
usable evaluation) does not fail it: its round stays not evaluated and is never asked
again, the run completes with its kept model, and when the failed exchange was the
final evaluation, ``metrics.json`` says why the kept model's held-out metrics,
calibration and fairness are missing (``final_missing``). A round that loses too many
banks to (simulated) dropouts, or to losses at secure aggregation's own stages, is
aborted (:class:`~coordinator.errors.RoundAborted`): the model stays, the round is
recorded as aborted and the run goes on. When privacy budgets leave too few banks
willing to train, the run stops with the last model.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from flwr.app import Message
from flwr.serverapp import Grid

from coordinator.app.aggregation import Aggregation
from coordinator.app.audit_trail import CoordinatorAudit
from coordinator.app.bank_replies import ReplyBook, TrainReply, train_reply
from coordinator.app.checkpoint import save_checkpoint
from coordinator.app.evaluations import Members, RunEvaluations
from coordinator.app.exchange import BankExchange, Stage
from coordinator.app.instructions import round_instructions, run_instructions
from coordinator.app.run_setup import RunSetup, RunStart
from coordinator.app.run_state import PendingRound, RoundResult, RunState, TrainOutcome
from coordinator.app.selection import stop_reason
from coordinator.app.server_optimizer import ServerOptimizer
from coordinator.errors import RoundAborted, RoundFailed, RunStopped
from credit.messages import Refusal, RoundInstructions, RunInstructions
from credit.run_config import RunConfig
from credit.schema import load_schema
from credit.strategy import Strategy

__all__ = ["RunDriver"]

RoundCallback = Callable[[RoundResult, int], None]
EventCallback = Callable[[str], None]


@dataclass(frozen=True)
class _Run:
    """A run under way: its state, its aggregation and the evaluations of its models."""

    state: RunState
    aggregation: Aggregation
    evaluations: RunEvaluations


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
        self._server_optimizer = ServerOptimizer.of_run(config)

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
        """Set-up (new or resumed), the rounds left, the run's last evaluations."""
        start = self._set_up(audit)
        state, aggregation = start.state, start.aggregation
        self._private = start.private
        audit.setup(state.banks, state.arrays)
        if start.completed < self.config.rounds:
            if (line := aggregation.describe()) is not None:
                self._on_event(line)
            if (line := self._describe_strategy()) is not None:
                self._on_event(line)
            aggregation.prepare(start.completed + 1, state.arrays, self._run_instructions())
        evaluations = RunEvaluations(
            config=self.config,
            aggregation=aggregation,
            exchange=self._exchange,
            book=self._book,
            audit=audit,
            private=self._private,
            on_round=self._on_round,
            on_event=self._on_event,
        )
        self._rounds(_Run(state, aggregation, evaluations), start.completed)
        evaluations.end(state, self._members(state))
        state.secure_aggregation = aggregation.summary()
        return state

    def _set_up(self, audit: CoordinatorAudit) -> RunStart:
        """A new run's set-up, or a resumed run's return to its checkpoint."""
        setup = RunSetup(
            self.grid,
            self.config,
            self.schema,
            exchange=self._exchange,
            book=self._book,
            audit=audit,
            on_event=self._on_event,
        )
        if self.config.resume:
            return setup.resume()
        audit.run_start(self.schema.schema_hash())
        return setup.start()

    def _run_instructions(self) -> RunInstructions:
        return run_instructions(self.config, self.schema, private=self._private)

    # -- rounds ---------------------------------------------------------------------

    def _rounds(self, run: _Run, completed: int) -> None:
        """Rounds ``completed + 1`` to the last, or until the run stops.

        Each round is checkpointed after its aggregation; its result is recorded when
        its metrics come in (:meth:`RunEvaluations.settle
        <coordinator.app.evaluations.RunEvaluations.settle>`), one exchange later.
        """
        state = run.state
        for server_round in range(completed + 1, self.config.rounds + 1):
            if state.stopped_early is not None:  # a resumed run that had stopped early
                break
            try:
                self._round(run, server_round)
            except RunStopped as stop:
                state.stopped = str(stop)
                self._on_event(f"stopped: {stop}")
                break
            if (reason := self._stop_reason(state)) is not None:
                state.stopped_early = reason
                save_checkpoint(Path(self.config.out_dir), state, server_round)
                self._on_event(f"stopped early after round {server_round}: {reason}")
                break

    def _stop_reason(self, state: RunState) -> str | None:
        """Why early stopping ends the run now (None: it goes on, or has no patience)."""
        if state.best is None:
            return None
        return stop_reason(
            state.rounds, best_round=state.best.server_round, patience=self.config.patience
        )

    def _round(self, run: _Run, server_round: int) -> None:
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
        state, evaluations = run.state, run.evaluations
        started, since = time.monotonic(), len(self._exchange.timings)
        run.aggregation.prepare(server_round, state.arrays, self._run_instructions())
        instructions = round_instructions(self.config, state, server_round, private=self._private)
        members = self._members(state)
        try:
            trained = self._train(run, instructions, members)
        except RoundAborted as abort:
            self._on_event(str(abort))
            trained = TrainOutcome(
                arrays=state.arrays, train_loss=None, trained=(), aborted=str(abort)
            )
        except RoundFailed:
            evaluations.score_last(state, members, final=False)
            raise
        pending = state.pending
        if pending is not None and not evaluations.evaluates(pending.server_round):
            # Settled only now: had the run stopped or failed, it would be the last model.
            evaluations.settle(state, pending, None)  # the run's cadence does not score it
        elif pending is not None:  # no usable evaluation came with the train replies
            evaluations.evaluate_lost(state, members)
        self._step(state, server_round, trained)
        state.pending = self._pending(state, server_round, trained, started, since)
        save_checkpoint(Path(self.config.out_dir), state, server_round)

    def _step(self, state: RunState, server_round: int, trained: TrainOutcome) -> None:
        """Move the global model to round ``server_round``'s result.

        FedAvg and FedProx take the aggregated mean as it is; a server optimiser steps
        from it and keeps its moments in the state (so in the checkpoint). An aborted
        round leaves the model and the moments as they were.
        """
        optimizer = self._server_optimizer
        if optimizer is None or trained.aborted is not None:
            state.arrays = trained.arrays
            return
        step = optimizer.step(server_round, state.arrays, trained.arrays, state.server_optimizer)
        state.arrays, state.server_optimizer = step.arrays, step.state

    def _describe_strategy(self) -> str | None:
        """One line on the run's strategy for the terminal (None: plain FedAvg)."""
        if self._server_optimizer is not None:
            return self._server_optimizer.describe()
        if self.config.strategy is Strategy.FEDPROX:
            return f"strategy fedprox: proximal-mu {self.config.proximal_mu:g} at every bank"
        return None

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

    def _members(self, state: RunState) -> Members:
        """The run's banks that are connected (node -> name), once ``min_banks`` nodes are.

        Only the run's own banks are asked to train and evaluate: a node that did not
        join the run (or was refused a place on resume) takes no part in its rounds.
        """
        connected = set(self._exchange.nodes())
        return {bank.node_id: bank.name for bank in state.banks if bank.node_id in connected}

    def _train(self, run: _Run, instructions: RoundInstructions, members: Members) -> TrainOutcome:
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
        state, aggregation, evaluations = run.state, run.aggregation, run.evaluations
        server_round, arrays = instructions.server_round, state.arrays
        messages = aggregation.train_messages(arrays, instructions, sorted(members))
        pending = state.pending
        if pending is not None and not evaluations.evaluates(pending.server_round):
            pending = None  # the run's cadence does not score it: not asked
        if pending is not None:
            evaluations.ask_in(messages, pending)
        replies = self._exchange(messages, Stage.TRAIN, server_round)
        if pending is not None and not aggregation.sums_evaluations:
            evaluations.settle_from(state, pending, replies)

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
            evaluations.settle(state, pending, update.evaluation)
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

    def _record_refusal(self, refusal: Refusal) -> None:
        if self._audit is not None:
            self._audit.refusal(refusal.bank, refusal.server_round, refusal.text())
