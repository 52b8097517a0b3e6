"""A stability-monitoring run: the banks' later-file counts summed, nothing trained.

How it flows (each arrow pair is one message exchange)::

    coordinator                                   each bank
    ───────────                                   ─────────
    wait for min_banks nodes
    query "join" [+ key request] ─────────────▶   name, row counts [, encryption key]
    query "stability" (model, layout digest)
      in the clear  ──────────────────────────▶   its later file's counts per bin
                    ◀──────────────────────────   (noisy and charged under a budget)
      or secure: advertise, masked counts, consistency, unmask (secure round 0, as the
      set-up release of a training run: coordinator.app.secagg_server)
    the sum over banks: the consortium's later population

The model and the layout are the development run's; a bank derives both from the
model it holds and refuses a query that names others
(:mod:`participant.guard.stability_release`). The comparison with the development
counts and the files are the caller's (:mod:`coordinator.app.monitor_files`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from flwr.app import ArrayRecord, Context, Message, MessageType
from flwr.serverapp import Grid, ServerApp
from numpy.typing import NDArray

from coordinator.app.aggregation import Aggregation
from coordinator.app.bank_replies import ReplyBook
from coordinator.app.exchange import BankExchange, Stage, messages_to
from coordinator.app.joining import SetupReply, aggregation_for, setup_reply_parser
from coordinator.app.secagg_server import BankDropped, SecureAggregation
from coordinator.errors import RoundAborted, RoundFailed
from credit.errors import MalformedMessage
from credit.governance.stability_release import (
    StabilityCounts,
    StabilityLayout,
    stability_from_sum,
    stability_vector,
)
from credit.messages import LedgerSummary, QueryInstructions, Refusal, RunInstructions, Task, secagg
from credit.messages.stability import StabilityRequest, stability_counts_from_content
from credit.run_config import RunConfig
from credit.schema import load_schema

__all__ = ["MonitorDriver", "MonitorOutcome", "make_monitor_app"]

EventCallback = Callable[[str], None]


@dataclass(frozen=True)
class MonitorOutcome:
    """What a monitoring run learnt: the summed later counts and who took part.

    Attributes
    ----------
    later : StabilityCounts or None
        The banks' summed counts (noisy where banks have budgets); None: no bank's.
    banks : tuple of str
        The banks that answered with counts (neither refused nor failed).
    summed_banks : int
        How many banks' counts the sum holds (its counted entry: a bank dropped at
        secure aggregation's later stages is not in it).
    refusals : tuple of Refusal
        Typed refusals (privacy budgets).
    privacy : dict of str to LedgerSummary
        The latest ledger summary of each bank with a budget.
    secure : bool
        Whether the sum went through secure aggregation.
    """

    later: StabilityCounts | None
    banks: tuple[str, ...]
    summed_banks: int
    refusals: tuple[Refusal, ...]
    privacy: dict[str, LedgerSummary]
    secure: bool


class MonitorDriver:
    """Ask the connected banks for their later-file counts and sum them.

    Parameters
    ----------
    grid : flwr.serverapp.Grid
        Flower's handle on the connected nodes.
    config : RunConfig
        The monitoring run's configuration (the development run's, with its own
        ``run-name`` and ``out-dir``; ``secure-aggregation`` decides the sum).
    layout : StabilityLayout
        The development model's layout.
    model_sha256 : str
        SHA-256 of the development model's weights.
    on_event : callable, optional
        Called with one-line progress messages.
    """

    def __init__(
        self,
        grid: Grid,
        config: RunConfig,
        *,
        layout: StabilityLayout,
        model_sha256: str,
        on_event: EventCallback | None = None,
    ) -> None:
        self.grid = grid
        self.config = config
        self.layout = layout
        self.schema = load_schema(config.schema_file or None)
        self._request = StabilityRequest(
            model_sha256=model_sha256, layout_sha256=layout.digest(), score_bins=layout.score_bins
        )
        self._on_event = on_event or (lambda text: None)
        self._exchange = BankExchange(
            grid, min_banks=config.min_banks, timeout=config.round_timeout
        )
        self._book = ReplyBook(on_event=self._on_event, on_refusal=lambda refusal: None)

    def run(self) -> MonitorOutcome:
        """Join the banks, sum their counts (securely or in the clear).

        Raises
        ------
        RoundFailed
            Fewer than ``min_banks`` banks joined or answered, or too few were left
            for the secure sum.
        """
        joined = self._join()
        names = {reply.bank.node_id: reply.bank.name for reply in joined}
        aggregation = self._aggregation(joined, names)
        query = self._instructions().query(Task.STABILITY)
        if isinstance(aggregation, SecureAggregation):
            total, banks = self._secure_sum(aggregation, query, joined, names)
        else:
            total, banks = self._plain_sum(query, joined, names)
        later, summed = stability_from_sum(total, self.layout)
        return MonitorOutcome(
            later=later,
            banks=tuple(sorted(banks)),
            summed_banks=summed,
            refusals=tuple(self._book.refusals),
            privacy=dict(self._book.privacy),
            secure=isinstance(aggregation, SecureAggregation),
        )

    def _instructions(self) -> RunInstructions:
        return RunInstructions.of_run(self.config, self.schema.schema_hash(), planned_evaluations=1)

    def _join(self) -> list[SetupReply]:
        keys = (secagg.KeyRequest(),) if self.config.secure_aggregation else ()
        query = self._instructions().query(Task.JOIN)
        messages = messages_to(self._exchange.nodes(), MessageType.QUERY, query, *keys)
        parse = setup_reply_parser(self.schema, grid_bins=None)
        replies = self._book.sort(self._exchange(messages, Stage.JOIN, 0), parse, 0)
        if len(replies.answers) < self.config.min_banks:
            raise RoundFailed(
                stage=Stage.JOIN,
                server_round=0,
                received=len(replies.answers),
                required=self.config.min_banks,
                reasons=[refusal.text() for refusal in replies.refused] + replies.malformed,
            )
        return replies.answers

    def _aggregation(self, joined: Sequence[SetupReply], names: dict[int, str]) -> Aggregation:
        def dropped(event: BankDropped) -> None:
            self._on_event(event.text())

        return aggregation_for(
            self.config, joined, run=self.grid.run.run_id, exchange=self._exchange, on_drop=dropped
        )

    def _plain_sum(
        self, query: QueryInstructions, joined: Sequence[SetupReply], names: dict[int, str]
    ) -> tuple[NDArray[np.float64], list[str]]:
        nodes = [reply.bank.node_id for reply in joined]
        messages = messages_to(nodes, MessageType.QUERY, query, self._request)
        length = self.layout.length + 1

        def parse(reply: Message) -> Message:
            stability_counts_from_content(reply.content, length=length)
            return reply

        replied = self._book.sort(self._exchange(messages, Stage.STABILITY, 0), parse, 0)
        self._enough(len(replied.answers))
        total = stability_vector(None, self.layout)
        for reply in replied.answers:
            total = total + stability_counts_from_content(reply.content, length=length)
        banks = [names.get(reply.metadata.src_node_id, "?") for reply in replied.answers]
        return total, banks

    def _secure_sum(
        self,
        aggregation: SecureAggregation,
        query: QueryInstructions,
        joined: Sequence[SetupReply],
        names: dict[int, str],
    ) -> tuple[NDArray[np.float64], list[str]]:
        nodes = [reply.bank.node_id for reply in joined]
        try:
            messages = aggregation.setup_messages(query, self.layout.length + 1, nodes)
            for message in messages:
                self._request.put(message.content)
            replies = self._exchange(messages, Stage.STABILITY, 0)
            replied = self._book.sort(replies, _as_is, 0)
            self._enough(len(replied.answers))
            total = aggregation.sum_setup(replied.answers, query, ArrayRecord())
        except RoundAborted as abort:
            raise RoundFailed(
                stage=Stage.STABILITY,
                server_round=0,
                received=abort.remaining,
                required=abort.required,
                reasons=[str(abort)],
            ) from None
        except MalformedMessage as exc:
            raise RoundFailed(
                stage=Stage.STABILITY, server_round=0, received=0, required=1, reasons=[str(exc)]
            ) from None
        banks = [names.get(reply.metadata.src_node_id, "?") for reply in replied.answers]
        return total, banks

    def _enough(self, answered: int) -> None:
        if answered < self.config.min_banks:
            raise RoundFailed(
                stage=Stage.STABILITY,
                server_round=0,
                received=answered,
                required=self.config.min_banks,
                reasons=[refusal.text() for refusal in self._book.refusals],
            )


def _as_is(reply: Message) -> Message:
    """A reply taken as it is (its content is read by secure aggregation)."""
    return reply


def make_monitor_app(
    config: RunConfig,
    *,
    layout: StabilityLayout,
    model_sha256: str,
    on_outcome: Callable[[MonitorOutcome], None],
    on_event: EventCallback | None = None,
) -> ServerApp:
    """A ServerApp that runs one monitoring run and hands its outcome to ``on_outcome``.

    ``fedcredit monitor`` runs it in the Simulation Engine, in its own process, and
    writes the files from the outcome.
    """
    server_app = ServerApp()

    @server_app.main()
    def main(grid: Grid, context: Context) -> None:
        driver = MonitorDriver(
            grid, config, layout=layout, model_sha256=model_sha256, on_event=on_event
        )
        on_outcome(driver.run())

    return server_app
