"""How a run starts: a new run's set-up, or a resumed run's return to its checkpoint.

A new run waits for ``min_banks`` connected nodes and asks them to join::

    coordinator                                   each bank
    ───────────                                   ─────────
    query "feature-stats"  ───────────────────▶   validate file, hold out its test rows,
      (in the clear)       ◀───────────────────   aggregates of train rows (no rows)
    or query "join", then secure round 0 ─────▶   name and row counts, keys; then its
      (advertise, masked aggregates,              aggregates masked: the coordinator
       consistency, unmask)  ◀────────────────    decodes only their sum
    combine aggregates, fit the encoder (and the WoE/IV tables), build the first model

With public bounds (``feature-stats public``) the banks only join: nothing about their
rows is released at set-up. A bank whose budget refuses the set-up release takes no
part in the run. A resumed run loads its checkpoint and asks the run's banks only to
introduce themselves again (``enroll``: no data release) and re-key; a bank the
checkpoint does not know is refused a place.

Either way the rounds start from a :class:`RunStart`: the run's state, the
aggregation chosen (plain FedAvg or secure aggregation) and whether the banks train
under privacy budgets.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from flwr.app import ArrayRecord, Message, MessageType
from flwr.serverapp import Grid

from coordinator.app.aggregation import Aggregation
from coordinator.app.audit_trail import CoordinatorAudit
from coordinator.app.bank_replies import ReplyBook
from coordinator.app.checkpoint import load_checkpoint
from coordinator.app.exchange import BankExchange, Stage, messages_to
from coordinator.app.instructions import run_instructions
from coordinator.app.joining import (
    SetupReply,
    aggregation_for,
    fit_run_encoding,
    setup_reply_parser,
)
from coordinator.app.run_state import RunState
from coordinator.app.secagg_server import BankDropped, SecureAggregation
from coordinator.errors import RoundAborted, RoundFailed
from credit.encoding import StatsSource
from credit.errors import MalformedMessage
from credit.feature_stats import FeatureStats, combine_feature_stats, vector_length
from credit.messages import QueryInstructions, RunInstructions, Task, secagg
from credit.model_spec import ModelSpec
from credit.run_config import RunConfig
from credit.schema import DatasetSchema

__all__ = ["RunSetup", "RunStart"]


@dataclass(frozen=True)
class RunStart:
    """Where a run's rounds start from, once its banks have joined.

    Attributes
    ----------
    state : RunState
        The run's state: a new one, or the checkpoint's.
    aggregation : Aggregation
        Plain FedAvg, or secure aggregation over the banks that joined.
    completed : int
        The rounds trained before (0 for a new run; the checkpoint's last trained round).
    private : bool
        Whether the banks train under privacy budgets (they reported ledgers once
        joined): it sets the default evaluation cadence and the evaluations announced.
    """

    state: RunState
    aggregation: Aggregation
    completed: int
    private: bool


class RunSetup:
    """The set-up of one run (new or resumed), recorded in its audit log.

    Parameters
    ----------
    grid : flwr.serverapp.Grid
        Flower's handle on the connected nodes.
    config : RunConfig
        The run configuration.
    schema : DatasetSchema
        The run's schema.
    exchange : BankExchange
        Sends a stage's messages.
    book : ReplyBook
        Sorts the banks' replies and keeps their ledgers and refusals.
    audit : CoordinatorAudit
        The run's audit log (it also records the banks secure aggregation drops for
        bad input, during set-up and the rounds).
    on_event : callable
        Called with one-line progress messages.
    """

    def __init__(
        self,
        grid: Grid,
        config: RunConfig,
        schema: DatasetSchema,
        *,
        exchange: BankExchange,
        book: ReplyBook,
        audit: CoordinatorAudit,
        on_event: Callable[[str], None],
    ) -> None:
        self._grid = grid
        self._config = config
        self._schema = schema
        self._exchange = exchange
        self._book = book
        self._audit = audit
        self._on_event = on_event
        self._private = False  # until the banks joined and reported their ledgers

    def start(self) -> RunStart:
        """Set-up of a new run: encoder from the banks' aggregates, initial model."""
        from credit.models import build_model

        config = self._config
        joined, aggregation, stats = self.join_and_sum()
        # Noisy sums are clipped only after summing (and per bin for the WoE tables).
        fitted = fit_run_encoding(config, self._schema, stats, noisy=self._private)
        encoder = fitted.encoder
        spec = ModelSpec(
            kind=config.model, n_inputs=encoder.n_inputs, hidden_sizes=config.hidden_sizes
        )
        state = RunState(
            config=config,
            schema=self._schema,
            encoder=encoder,
            spec=spec,
            banks=sorted((reply.bank for reply in joined), key=lambda bank: bank.name),
            arrays=ArrayRecord(build_model(spec, seed=config.seed).state_dict()),
            privacy=self._book.privacy,
            refusals=self._book.refusals,
            woe=fitted.woe,
        )
        total = sum(bank.n_train for bank in state.banks)
        self._on_event(
            f"encoder fitted ({config.encoding}, {config.feature_stats} statistics "
            f"from {len(state.banks)} banks, {total:,} training rows): {encoder.n_inputs} "
            "model inputs"
        )
        return RunStart(state, aggregation, completed=0, private=self._private)

    def join_and_sum(self) -> tuple[list[SetupReply], Aggregation, FeatureStats | None]:
        """The banks that joined a new run, its aggregation and their summed statistics.

        The statistics are None with public bounds (nothing released at set-up). Under
        secure aggregation the statistics are secure round 0's sum, whose unmask
        exchange also collects round 1's keys.
        """
        config = self._config
        federated = config.feature_stats == StatsSource.FEDERATED
        in_the_clear = federated and not config.secure_aggregation
        if in_the_clear:
            query = self._run_instructions().query(Task.FEATURE_STATS, grid_bins=config.grid_bins)
            parse = setup_reply_parser(self._schema, grid_bins=config.grid_bins)
            joined = self._join(query, self._nodes(), parse, Stage.FEATURE_STATS)
        else:  # nothing released with the join: public bounds, or secure round 0 follows
            query = self._run_instructions().query(Task.JOIN)
            parse = setup_reply_parser(self._schema, grid_bins=None)
            joined = self._join(query, self._nodes(), parse, Stage.JOIN)
        aggregation = self._aggregation(joined)
        stats = None
        if in_the_clear:
            stats = combine_feature_stats([r.stats for r in joined if r.stats is not None])
        elif federated and isinstance(aggregation, SecureAggregation):
            stats, refused = self._secure_setup_sum(aggregation, joined)
            # A bank whose budget refuses the set-up release takes no part in the run.
            joined = [reply for reply in joined if reply.bank.name not in refused]
        return list(joined), aggregation, stats

    @property
    def private(self) -> bool:
        """Whether the banks that joined report privacy ledgers (they train under budgets)."""
        return self._private

    def resume(self) -> RunStart:
        """Continue from the checkpoint: find the run's banks again (no data release), re-key.

        A bank the checkpoint does not know is refused a place in the run. The final
        evaluation's record (``state.selected``) stays: should the rounds added keep
        the same model, its evaluation is not asked again.
        """
        out_dir = Path(self._config.out_dir)
        state, completed = load_checkpoint(out_dir, self._config)
        self._book.resume(state.privacy, state.refusals)
        self._private = bool(state.privacy)
        self._audit.run_resume(completed, state.arrays, self._schema.schema_hash())
        query = self._run_instructions().query(Task.ENROLL)
        parse = setup_reply_parser(self._schema, grid_bins=None)
        joined = self._join(query, self._nodes(), parse, Stage.ENROLL)
        known = {bank.name for bank in state.banks}
        accepted = [reply for reply in joined if reply.bank.name in known]
        for reply in joined:
            if reply.bank.name not in known:
                self._on_event(f"bank '{reply.bank.name}' is not part of this run: left out")
                self._audit.refusal(reply.bank.name, 0, "not part of the run being resumed")
        state.banks = sorted((reply.bank for reply in accepted), key=lambda bank: bank.name)
        self._on_event(f"resuming after round {completed} from {out_dir / 'checkpoint'}")
        aggregation = self._aggregation(accepted)
        return RunStart(state, aggregation, completed=completed, private=self._private)

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
        grid_bins = self._config.grid_bins
        query = self._run_instructions().query(Task.FEATURE_STATS, grid_bins=grid_bins)
        nodes = [reply.bank.node_id for reply in joined]
        length = vector_length(self._schema, grid_bins)
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
        stats = FeatureStats.from_vector(total, schema=self._schema, grid_bins=grid_bins)
        return stats, {refusal.bank for refusal in replied.refused}

    def _join(
        self,
        query: QueryInstructions,
        nodes: Sequence[int],
        parse: Callable[[Message], SetupReply],
        stage: Stage,
    ) -> list[SetupReply]:
        """Ask ``nodes`` to join; the banks that did (refusals recorded).

        Raises
        ------
        RoundFailed
            Fewer than ``min_banks`` banks joined.
        """
        # With secure aggregation, a KeyRequest asks banks for their encryption keys.
        keys = (secagg.KeyRequest(),) if self._config.secure_aggregation else ()
        messages = messages_to(nodes, MessageType.QUERY, query, *keys)

        def introduced(reply: Message) -> SetupReply:
            joined = parse(reply)
            if not self._book.speaks_for(joined.bank.name, joined.bank.node_id):
                raise MalformedMessage(f"a second node introduces itself as '{joined.bank.name}'")
            return joined

        replies = self._book.sort(self._exchange(messages, stage, 0), introduced, 0)
        self._private = bool(self._book.privacy)
        if len(replies.answers) < self._config.min_banks:
            raise RoundFailed(
                stage=stage,
                server_round=0,
                received=len(replies.answers),
                required=self._config.min_banks,
                reasons=[refusal.text() for refusal in self._book.refusals] + replies.malformed,
            )
        return replies.answers

    def _aggregation(self, joined: Sequence[SetupReply]) -> Aggregation:
        names = {reply.bank.node_id: reply.bank.name for reply in joined}
        return aggregation_for(
            self._config,
            joined,
            run=self._grid.run.run_id,
            exchange=self._exchange,
            on_drop=lambda dropped: self._record_drop(dropped, names),
        )

    def _record_drop(self, dropped: BankDropped, names: Mapping[int, str]) -> None:
        """A bank left out of a secure round for bad input: the run's events and audit log."""
        self._on_event(dropped.text())
        bank = names.get(dropped.node, f"node {dropped.node}")
        reason = f"dropped from secure aggregation: {dropped.reason}"
        self._audit.refusal(bank, dropped.server_round, reason)

    def _nodes(self) -> list[int]:
        """The connected nodes, once ``min_banks`` are."""
        nodes = self._exchange.nodes()
        self._on_event(f"{len(nodes)} banks connected")
        return nodes

    def _run_instructions(self) -> RunInstructions:
        return run_instructions(self._config, self._schema, private=self._private)


def _as_is(reply: Message) -> Message:
    """A reply taken as it is (its content is read by secure aggregation)."""
    return reply
