"""One federated run, driven by the coordinator over Flower's Grid.

How a run flows::

    coordinator                                   each bank
    ───────────                                   ─────────
    wait for min_banks nodes
    query "feature-stats"  ───────────────────▶   validate file, hold out its test rows,
                           ◀───────────────────   aggregates of train rows (no rows)
    combine aggregates, fit encoder
    for round 1..R:
        train(weights, encoder) ──────────────▶   local SGD on train rows
                           ◀───────────────────   new weights (or a masked update)
        aggregate (plain FedAvg or secure aggregation: coordinator.app.aggregation)
        evaluate(weights)  ───────────────────▶   score own test rows
                           ◀───────────────────   score histograms, loss sums
        pooled AUC, KS, ... from summed histograms

A set-up, train or evaluate exchange with fewer than ``min_banks`` replies without
errors, or an evaluation with no usable reply, raises
:class:`~coordinator.errors.RoundFailed`; the global model is then the last completed
round's. A round that loses too many banks to (simulated) dropouts, or to losses at
secure aggregation's own stages, is aborted (:class:`~coordinator.errors.RoundAborted`):
the model stays, the round is recorded as aborted and the run goes on. When privacy
budgets leave too few banks willing to train, the run stops
(:class:`~coordinator.errors.RunStopped`) with the last model.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from flwr.app import ArrayRecord, Message, MessageType
from flwr.serverapp import Grid

from coordinator.app.aggregation import Aggregation
from coordinator.app.audit_trail import CoordinatorAudit
from coordinator.app.bank_replies import ReplyBook, TrainReply, train_reply
from coordinator.app.checkpoint import load_checkpoint, save_checkpoint
from coordinator.app.exchange import BankExchange, Stage, messages_to
from coordinator.app.joining import (
    SetupReply,
    aggregation_for,
    fit_run_encoder,
    setup_reply_parser,
)
from coordinator.app.run_state import RoundResult, RunState, TrainOutcome
from coordinator.errors import RoundAborted, RoundFailed, RunStopped
from credit.errors import MalformedMessage
from credit.messages import (
    QueryInstructions,
    Refusal,
    RoundInstructions,
    RunInstructions,
    Task,
    score_summary_from_content,
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
        try:
            state = self._run(audit)
        except Exception as error:
            audit.run_failed(error)
            raise
        else:
            audit.run_end(state)
        finally:
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
        self._rounds(state, aggregation, completed, audit)
        state.secure_aggregation = aggregation.summary()
        return state

    # -- set-up ---------------------------------------------------------------------

    def _start(self) -> tuple[RunState, Aggregation]:
        """Set-up of a new run: encoder from the banks' aggregates, initial model."""
        from credit.models import build_model

        query = self._run_instructions().query(Task.FEATURE_STATS, grid_bins=self.config.grid_bins)
        parse = setup_reply_parser(self.schema, grid_bins=self.config.grid_bins)
        joined = self._join(query, self._nodes(), parse, Stage.FEATURE_STATS)
        encoder = fit_run_encoder(self.config, self.schema, joined)
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
        )
        total = sum(bank.n_train for bank in state.banks)
        self._on_event(
            f"encoder fitted ({self.config.encoding}, {self.config.feature_stats} statistics "
            f"from {len(state.banks)} banks, {total:,} training rows): {encoder.n_inputs} "
            "model inputs"
        )
        return state, self._aggregation(joined)

    def _resume(self, audit: CoordinatorAudit) -> tuple[RunState, Aggregation, int]:
        """Continue from the checkpoint: find the run's banks again (no data release), re-key.

        A bank the checkpoint does not know is refused a place in the run.
        """
        out_dir = Path(self.config.out_dir)
        state, completed = load_checkpoint(out_dir, self.config)
        self._book.resume(state.privacy, state.refusals)
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
        return aggregation_for(
            self.config, joined, run=self.grid.run.run_id, exchange=self._exchange
        )

    def _nodes(self) -> list[int]:
        """The connected nodes, once ``min_banks`` are."""
        nodes = self._exchange.nodes()
        self._on_event(f"{len(nodes)} banks connected")
        return nodes

    def _run_instructions(self) -> RunInstructions:
        return RunInstructions(
            run_name=self.config.run_name,
            schema_hash=self.schema.schema_hash(),
            test_fraction=self.config.test_fraction,
            seed=self.config.seed,
            planned_rounds=self.config.announced_rounds,
            local_epochs=self.config.local_epochs,
            batch_size=self.config.batch_size,
            max_grad_norm=self.config.max_grad_norm,
        )

    # -- rounds ---------------------------------------------------------------------

    def _rounds(
        self, state: RunState, aggregation: Aggregation, completed: int, audit: CoordinatorAudit
    ) -> None:
        """Rounds ``completed + 1`` to the last; each is audited, then checkpointed."""
        for server_round in range(completed + 1, self.config.rounds + 1):
            try:
                result = self._round(state, aggregation, server_round)
            except RunStopped as stop:
                state.stopped = str(stop)
                self._on_event(f"stopped: {stop}")
                break
            state.rounds.append(result)
            audit.round(result, state.arrays, state.privacy)
            save_checkpoint(Path(self.config.out_dir), state, server_round)
            self._on_round(result, self.config.rounds)

    def _round(self, state: RunState, aggregation: Aggregation, server_round: int) -> RoundResult:
        """Train (or abort), then evaluate the global model; the round's result."""
        started = time.monotonic()
        since = len(self._exchange.timings)
        instructions = RoundInstructions(
            **self._run_instructions().model_dump(),
            server_round=server_round,
            learning_rate=self.config.learning_rate,
            score_bins=self.config.score_bins,
            encoder=state.encoder,
            model_spec=state.spec,
        )
        members = self._members(state)
        aborted = None
        try:
            trained = self._train(aggregation, state.arrays, instructions, members)
        except RoundAborted as abort:
            aborted = str(abort)
            self._on_event(aborted)
            trained = TrainOutcome(arrays=state.arrays, train_loss=None, trained=())
        state.arrays = trained.arrays
        metrics = self._evaluate(aggregation, state.arrays, instructions, list(members))
        names = {bank.node_id: bank.name for bank in state.banks}
        spent = [ledger.epsilon for ledger in state.privacy.values()]
        return RoundResult(
            server_round=server_round,
            metrics=metrics,
            train_loss=trained.train_loss,
            banks=tuple(sorted(names.get(node, "?") for node in trained.trained)),
            seconds=time.monotonic() - started,
            refused=tuple(sorted(refusal.bank for refusal in trained.refused)),
            max_epsilon_spent=max(spent) if spent else None,
            dropped=tuple(sorted(names.get(node, "?") for node in trained.dropped)),
            aborted=aborted,
            exchanges=self._exchange.seconds_of(server_round, since),
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
        aggregation: Aggregation,
        arrays: ArrayRecord,
        instructions: RoundInstructions,
        members: dict[int, str],
    ) -> TrainOutcome:
        """One training step of the run's ``members`` (node -> bank name).

        A member that neither trained nor refused counts as dropped (lost, timed out,
        or a simulated dropout at any stage).

        Raises
        ------
        RoundAborted
            Dropouts leave fewer banks than the round needs (the model is unchanged).
        RunStopped
            Refusals leave fewer than ``min_banks`` banks willing to train.
        """
        server_round = instructions.server_round
        messages = aggregation.train_messages(arrays, instructions, sorted(members))

        def parse(reply: Message) -> TrainReply:
            return aggregation.check(train_reply(reply), arrays)

        replies = self._book.sort(
            self._exchange(messages, Stage.TRAIN, server_round), parse, server_round
        )
        accepted, needed = len(replies.answers), self.config.min_banks
        if accepted < needed and accepted + len(replies.dropped) < needed:
            raise RunStopped(
                server_round=server_round,
                refused=len(replies.refused),
                accepted=accepted,
                required=needed,
            )
        if accepted < needed:
            raise RoundAborted(
                server_round=server_round, stage="train", remaining=accepted, required=needed
            )
        update = aggregation.aggregate(replies.answers, arrays, instructions)
        refused = {refusal.bank for refusal in replies.refused}
        return TrainOutcome(
            arrays=update.arrays,
            train_loss=update.train_loss,
            trained=update.banks,
            refused=tuple(replies.refused),
            dropped=tuple(
                node
                for node, name in sorted(members.items())
                if node not in update.banks and name not in refused
            ),
        )

    def _evaluate(
        self,
        aggregation: Aggregation,
        arrays: ArrayRecord,
        instructions: RoundInstructions,
        members: list[int],
    ) -> CreditMetrics:
        """Evaluate ``arrays`` at the run's banks (and gather the next round's keys)."""
        server_round = instructions.server_round
        next_round = server_round + 1 if server_round < self.config.rounds else 0
        request = aggregation.advertise_request(next_round, arrays) if next_round else None
        asked = (request,) if request is not None else ()
        messages = messages_to(
            sorted(members), MessageType.EVALUATE, instructions, *asked, arrays=arrays
        )
        replies = self._exchange(messages, Stage.EVALUATE, server_round)
        if next_round:
            aggregation.collect_advertisements(next_round, replies)

        def parse(reply: Message) -> ScoreSummary:
            return score_summary_from_content(reply.content, score_bins=self.config.score_bins)

        summaries = self._book.sort(replies, parse, server_round).answers
        if not summaries:
            raise RoundFailed(
                stage=Stage.EVALUATE, server_round=server_round, received=0, required=1, reasons=[]
            )
        return credit_metrics(ScoreSummary.combine(summaries))

    def _record_refusal(self, refusal: Refusal) -> None:
        if self._audit is not None:
            self._audit.refusal(refusal.bank, refusal.server_round, refusal.text())
