"""How a round's bank updates become the next global model: one interface, two ways.

The run driver talks to an :class:`Aggregation` only. :class:`PlainAggregation` is
FedAvg in the clear (Flower's weighted array average over the banks' weights);
:class:`~coordinator.app.secagg_server.SecureAggregation` sums masked updates and
unmasks only the sum. Both are complete when constructed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from flwr.app import ArrayRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.serverapp.strategy.strategy_utils import aggregate_arrayrecords

from coordinator.app.bank_replies import TrainReply
from coordinator.app.exchange import messages_to
from credit import message_keys
from credit.errors import MalformedMessage
from credit.governance.release import GovernanceLayout, GovernanceSums
from credit.messages import (
    EvaluateRequest,
    EvaluationDeclined,
    EvaluationRows,
    GovernanceRequest,
    MessagePart,
    RoundInstructions,
    RunInstructions,
    governance_sums_from_content,
    score_summary_from_content,
)
from credit.metrics import ScoreSummary

__all__ = [
    "AggregatedUpdate",
    "Aggregation",
    "Exchange",
    "PlainAggregation",
    "SummedEvaluation",
    "check_update",
    "evaluation_parts",
    "governance_request",
]

Exchange = Callable[[list[Message], str, int], list[Message]]
"""Send messages of a stage (name, round) and return the error-free replies."""


@dataclass(frozen=True)
class AggregatedUpdate:
    """The new global model of a round and what it was made of.

    ``evaluation`` is the banks' summed evaluation of the model their train messages
    carried, when it was summed with the updates (secure aggregation; None otherwise,
    or when no bank's evaluation is in the sum).
    """

    arrays: ArrayRecord
    train_loss: float | None
    banks: tuple[int, ...]
    evaluation: ScoreSummary | None = None


@dataclass(frozen=True)
class SummedEvaluation:
    """The consortium's evaluation of a model from an evaluate exchange.

    Attributes
    ----------
    summary : ScoreSummary or None
        The summed evaluation (None: no bank's).
    governance : GovernanceSums or None
        The summed governance release, when it was asked for (None: not asked, or no
        bank's).
    governance_banks : int
        How many banks' governance sums ``governance`` holds.
    """

    summary: ScoreSummary | None
    governance: GovernanceSums | None = None
    governance_banks: int = 0


def governance_request(layout: GovernanceLayout) -> GovernanceRequest:
    """The message part that asks the banks for the governance release of ``layout``."""
    return GovernanceRequest(
        calibration_bins=layout.calibration_bins, decision_cutoff=layout.cutoff
    )


def evaluation_parts(
    instructions: RoundInstructions, governance: GovernanceLayout | None, rows: EvaluationRows
) -> tuple[MessagePart, ...]:
    """What an evaluate message carries besides its instructions: the rows it scores
    (when not the held-out rows) and the governance request (if any)."""
    parts: list[MessagePart] = []
    if rows != EvaluationRows.TEST:
        parts.append(EvaluateRequest(server_round=instructions.server_round, rows=rows))
    if governance is not None:
        parts.append(governance_request(governance))
    return tuple(parts)


class Aggregation(Protocol):
    """What the run driver needs from an aggregation method."""

    def describe(self) -> str | None:
        """One line for the terminal at set-up (None: nothing to say)."""

    def summary(self) -> dict[str, Any] | None:
        """The method's parameters for ``metrics.json`` (None: plain FedAvg)."""

    def prepare(self, server_round: int, arrays: ArrayRecord, run: RunInstructions) -> None:
        """Whatever must happen before ``server_round`` trains and has not yet.

        Called before every round: at set-up (or resume) for the first round, and later
        for rounds the exchanges of the round before did not prepare (with secure
        aggregation, a round after one that ended before its unmask query).
        """

    def train_messages(
        self, arrays: ArrayRecord, instructions: RoundInstructions, nodes: Sequence[int]
    ) -> list[Message]:
        """The round's train messages (the nodes asked may be fewer than ``nodes``)."""

    def check(self, update: TrainReply, arrays: ArrayRecord) -> TrainReply:
        """``update`` if it fits this aggregation and the global model ``arrays``.

        Raises
        ------
        MalformedMessage
            The update cannot take part (the driver leaves its sender out).
        """

    def aggregate(
        self,
        updates: Sequence[TrainReply],
        arrays: ArrayRecord,
        instructions: RoundInstructions,
        *,
        next_round: int,
        members: Sequence[int],
    ) -> AggregatedUpdate:
        """The new global model from the accepted (checked) updates.

        ``next_round`` is the round after this one (0: this is the last) and ``members``
        the run's connected banks: what secure aggregation asks for the next round's
        keys in this round's unmask exchange.

        Raises
        ------
        RoundAborted
            Too few banks are left to finish the round (the model stays as it was).
        """

    @property
    def sums_evaluations(self) -> bool:
        """Whether evaluations travel inside the updates' sum (not beside the updates)."""

    def evaluation_messages(
        self,
        arrays: ArrayRecord,
        instructions: RoundInstructions,
        nodes: Sequence[int],
        governance: GovernanceLayout | None = None,
        rows: EvaluationRows = EvaluationRows.TEST,
    ) -> list[Message]:
        """The evaluate messages that score ``arrays`` (``instructions``' round's model).

        ``governance``: they also ask for the governance release of that layout (the
        run's final model). ``rows``: the banks' rows they score.
        """

    def check_evaluation(
        self,
        reply: Message,
        instructions: RoundInstructions,
        governance: GovernanceLayout | None = None,
    ) -> Message:
        """``reply`` if its evaluation (or its decline) can be summed.

        Raises
        ------
        MalformedMessage
            The evaluation cannot take part (the driver leaves its sender out).
        """

    def sum_evaluations(
        self,
        replies: Sequence[Message],
        instructions: RoundInstructions,
        governance: GovernanceLayout | None = None,
    ) -> SummedEvaluation:
        """The consortium's evaluation (and governance sums) from the checked replies.

        Raises
        ------
        RoundAborted
            Too few banks are left to finish a secure sum.
        """


def check_update(node: int, update: ArrayRecord, like: ArrayRecord) -> None:
    """Refuse a plain update that is not finite weights of the global model's shapes."""
    if list(update) != list(like):
        raise MalformedMessage(f"node {node}: the update's arrays are not the model's")
    for name in like:
        if update[name].shape != like[name].shape or update[name].dtype != like[name].dtype:
            raise MalformedMessage(
                f"node {node}: array '{name}' is {update[name].dtype}{update[name].shape}, "
                f"expected {like[name].dtype}{like[name].shape}"
            )
        if not np.all(np.isfinite(update[name].numpy())):
            raise MalformedMessage(f"node {node}: array '{name}' holds values that are not finite")


class PlainAggregation:
    """FedAvg in the clear: every bank's weights, averaged by its training rows.

    Evaluations travel in the clear beside the updates (bounded, and noisy for banks
    under a privacy budget); the coordinator sums them.
    """

    @property
    def sums_evaluations(self) -> bool:
        return False

    def evaluation_messages(
        self,
        arrays: ArrayRecord,
        instructions: RoundInstructions,
        nodes: Sequence[int],
        governance: GovernanceLayout | None = None,
        rows: EvaluationRows = EvaluationRows.TEST,
    ) -> list[Message]:
        asked = evaluation_parts(instructions, governance, rows)
        return messages_to(nodes, MessageType.EVALUATE, instructions, *asked, arrays=arrays)

    def check_evaluation(
        self,
        reply: Message,
        instructions: RoundInstructions,
        governance: GovernanceLayout | None = None,
    ) -> Message:
        if not EvaluationDeclined.present(reply.content):
            score_summary_from_content(reply.content, score_bins=instructions.score_bins)
            if governance is not None:
                governance_sums_from_content(reply.content, length=governance.length)
        return reply

    def sum_evaluations(
        self,
        replies: Sequence[Message],
        instructions: RoundInstructions,
        governance: GovernanceLayout | None = None,
    ) -> SummedEvaluation:
        released = [reply for reply in replies if not EvaluationDeclined.present(reply.content)]
        summaries = [
            score_summary_from_content(reply.content, score_bins=instructions.score_bins)
            for reply in released
        ]
        summary = ScoreSummary.combine(summaries) if summaries else None
        if governance is None:
            return SummedEvaluation(summary)
        parts = [
            GovernanceSums.from_vector(vector, governance)
            for reply in released
            if (vector := governance_sums_from_content(reply.content, length=governance.length))
            is not None
        ]
        summed = GovernanceSums.combine(parts) if parts else None
        return SummedEvaluation(summary, governance=summed, governance_banks=len(parts))

    def describe(self) -> str | None:
        return None

    def summary(self) -> dict[str, Any] | None:
        return None

    def prepare(self, server_round: int, arrays: ArrayRecord, run: RunInstructions) -> None:
        return None

    def check(self, update: TrainReply, arrays: ArrayRecord) -> TrainReply:
        check_update(update.node, update.arrays, arrays)
        weight = update.metrics.num_examples
        if weight is None or weight < 1:
            raise MalformedMessage(f"node {update.node}: a plain update needs num-examples >= 1")
        return update

    def train_messages(
        self, arrays: ArrayRecord, instructions: RoundInstructions, nodes: Sequence[int]
    ) -> list[Message]:
        return messages_to(nodes, MessageType.TRAIN, instructions, arrays=arrays)

    def aggregate(
        self,
        updates: Sequence[TrainReply],
        arrays: ArrayRecord,
        instructions: RoundInstructions,
        *,
        next_round: int,
        members: Sequence[int],
    ) -> AggregatedUpdate:
        weighted = []
        for update in updates:
            weight = update.metrics.num_examples or 0  # >= 1: see check()
            weight_record = MetricRecord({message_keys.NUM_EXAMPLES: weight})
            weighted.append(
                RecordDict(
                    {message_keys.ARRAYS: update.arrays, message_keys.METRICS: weight_record}
                )
            )
        new_arrays = aggregate_arrayrecords(weighted, message_keys.NUM_EXAMPLES)
        return AggregatedUpdate(
            arrays=new_arrays,
            train_loss=_mean_loss(updates),
            banks=tuple(update.node for update in updates),
        )


def _mean_loss(updates: Sequence[TrainReply]) -> float | None:
    """Weighted mean training loss of the banks that report one (None if none does)."""
    reported = [
        (update.metrics.num_examples or 0, update.metrics.train_loss)
        for update in updates
        if update.metrics.train_loss is not None
    ]
    total = sum(weight for weight, _ in reported)
    if not reported or total <= 0:
        return None
    return sum(weight * loss for weight, loss in reported) / total
