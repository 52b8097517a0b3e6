"""The coordinator's reading of bank replies: typed, and sorted into what they mean.

A reply is one of: an answer (parsed into typed parts), a typed refusal (the bank's
privacy budget does not allow the request), a simulated dropout, or something that
does not follow the message contract. :func:`sort_replies` sorts a stage's replies
into those four piles; a malformed reply drops its sender from the stage (it is
reported, never fatal to the run). Banks with a budget attach their ledger summary,
which :func:`ledger_summaries` collects: the coordinator only records them;
enforcement is the bank's.

A train reply may also carry the bank's evaluation of the model it was sent (the
previous round's), beside its update or its refusal (:func:`train_evaluation`). The
two are read apart (:meth:`ReplyBook.evaluations`): a missing or malformed
evaluation leaves out that evaluation only, and the update or refusal beside it is
judged on its own, as the reply to its own stage.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from flwr.app import ArrayRecord, Message

from credit import message_keys
from credit.errors import MalformedMessage
from credit.messages import (
    Dropped,
    LedgerSummary,
    Refusal,
    TrainMetrics,
    score_summary_from_content,
)
from credit.metrics import ScoreSummary
from credit.records import record_of

__all__ = [
    "ReplyBook",
    "SortedReplies",
    "TrainReply",
    "ledger_summaries",
    "sort_replies",
    "train_evaluation",
    "train_reply",
]

T = TypeVar("T")


@dataclass(frozen=True)
class TrainReply:
    """A bank's answer to a train message: its (plain or masked) update and metrics."""

    node: int
    arrays: ArrayRecord
    metrics: TrainMetrics


def train_reply(reply: Message) -> TrainReply:
    """Parse a train reply; MalformedMessage if it breaks the contract."""
    return TrainReply(
        node=reply.metadata.src_node_id,
        arrays=record_of(reply.content, message_keys.ARRAYS, ArrayRecord),
        metrics=TrainMetrics.take(reply.content),
    )


def train_evaluation(reply: Message, *, score_bins: int) -> ScoreSummary:
    """The evaluation a train reply carries; MalformedMessage if missing or malformed."""
    return score_summary_from_content(
        reply.content,
        score_bins=score_bins,
        scores_key=message_keys.EVALUATION_SCORES,
        sums_key=message_keys.EVALUATION,
    )


@dataclass
class SortedReplies(Generic[T]):
    """One stage's replies by what they mean.

    Attributes
    ----------
    answers : list
        Parsed answers.
    refused : list of Refusal
        Typed refusals.
    dropped : list of int
        Nodes that dropped out (simulated dropouts).
    malformed : list of str
        One line per reply that broke the contract (its sender is left out).
    """

    answers: list[T] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)
    dropped: list[int] = field(default_factory=list)
    malformed: list[str] = field(default_factory=list)


SpeaksFor = Callable[[str, int], bool]
"""Whether node (second argument) may speak for the bank named (first argument)."""


def _anyone(bank: str, node: int) -> bool:
    return True


def sort_replies(
    replies: Iterable[Message], parse: Callable[[Message], T], speaks_for: SpeaksFor = _anyone
) -> SortedReplies[T]:
    """Sort error-free replies into answers (``parse``), refusals, dropouts and malformed.

    A refusal in the name of a bank its sender does not speak for is malformed.
    """
    sorted_replies: SortedReplies[T] = SortedReplies()
    for reply in replies:
        try:
            if Dropped.present(reply.content):
                Dropped.take(reply.content)
                sorted_replies.dropped.append(reply.metadata.src_node_id)
            elif Refusal.present(reply.content):
                refusal = Refusal.take(reply.content)
                _check_speaker(refusal.bank, reply.metadata.src_node_id, speaks_for)
                sorted_replies.refused.append(refusal)
            else:
                sorted_replies.answers.append(parse(reply))
        except MalformedMessage as exc:
            node = reply.metadata.src_node_id
            sorted_replies.malformed.append(f"node {node} sent a malformed reply ({exc}): left out")
    return sorted_replies


def ledger_summaries(
    replies: Iterable[Message], speaks_for: SpeaksFor = _anyone
) -> list[LedgerSummary]:
    """The ledger summaries banks attached to ``replies``.

    Malformed summaries, and summaries in the name of a bank their sender does not
    speak for, are skipped.
    """
    summaries = []
    for reply in replies:
        if reply.has_error() or not LedgerSummary.present(reply.content):
            continue
        try:
            summary = LedgerSummary.take(reply.content)
            _check_speaker(summary.bank, reply.metadata.src_node_id, speaks_for)
        except MalformedMessage:
            continue
        summaries.append(summary)
    return summaries


def _check_speaker(bank: str, node: int, speaks_for: SpeaksFor) -> None:
    if not speaks_for(bank, node):
        raise MalformedMessage(f"node {node} speaks for another node's bank '{bank}'")


class ReplyBook:
    """Where a run reads its bank replies: ledgers and refusals recorded, bad replies told.

    Parameters
    ----------
    on_event : callable
        Receives one line per refusal and per malformed reply.
    on_refusal : callable
        Receives every refusal (the run's audit log records it).
    """

    def __init__(
        self, *, on_event: Callable[[str], None], on_refusal: Callable[[Refusal], None]
    ) -> None:
        self.privacy: dict[str, LedgerSummary] = {}
        """The latest ledger summary each bank with a budget reported."""
        self.refusals: list[Refusal] = []
        """Every refusal of the run, in order."""
        self._on_event = on_event
        self._on_refusal = on_refusal
        self._speakers: dict[str, int] = {}

    def speaks_for(self, bank: str, node: int) -> bool:
        """Whether ``node`` may report for ``bank``: the first node to use a name keeps it.

        Bank names are what banks say they are; this keeps one bank from writing
        over another's ledger summary, refusals or place in the run.
        """
        return self._speakers.setdefault(bank, node) == node

    def resume(self, privacy: dict[str, LedgerSummary], refusals: list[Refusal]) -> None:
        """Go on recording into a resumed run's records (from its checkpoint)."""
        self.privacy, self.refusals = privacy, refusals

    def sort(
        self, replies: Iterable[Message], parse: Callable[[Message], T], server_round: int
    ) -> SortedReplies[T]:
        """Sort error-free replies (:func:`sort_replies`); record ledgers and refusals."""
        replies = list(replies)
        for summary in ledger_summaries(replies, self.speaks_for):
            self.privacy[summary.bank] = summary
        sorted_replies = sort_replies(replies, parse, self.speaks_for)
        for refusal in sorted_replies.refused:
            self.refusals.append(refusal)
            self._on_event(refusal.text())
            self._on_refusal(refusal)
        for line in sorted_replies.malformed:
            self._on_event(f"round {server_round}: {line}")
        return sorted_replies

    def evaluations(
        self, replies: Iterable[Message], parse: Callable[[Message], T], server_round: int
    ) -> list[T]:
        """The evaluations of round ``server_round``'s model that error-free replies carry.

        Each reply is read for its evaluation alone (``parse``): a simulated dropout
        carries none; a reply whose evaluation is missing or malformed loses it (told),
        and nothing else (its update or refusal is sorted apart, by :meth:`sort`).
        """
        answers = []
        for reply in replies:
            if Dropped.present(reply.content):
                continue
            try:
                answers.append(parse(reply))
            except MalformedMessage as exc:
                node = reply.metadata.src_node_id
                self._on_event(
                    f"round {server_round}: node {node} sent a malformed evaluation ({exc}): "
                    "its evaluation is left out"
                )
        return answers
