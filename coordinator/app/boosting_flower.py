"""One boosting level over Flower's Grid: the banks' histograms summed in the clear or securely.

:class:`FlowerLevelSum` is the coordinator's :class:`~coordinator.app.boosting.LevelSum`
for a run over Flower (what :mod:`simulations.gbdt_consortium` is in one process). Per
level it sends every bank of the run one ``gbdt-level`` query (the level's orders and
the run's binned encoder, :mod:`credit.messages.gbdt`) and returns the consortium's
sum::

    in the clear        gbdt-level query ─▶ int64 histograms       one exchange
    secure aggregation  gbdt-level query (+ the round's keys, its   three exchanges
                        64-bit code) ─▶ masked histograms
                        consistency ─▶ signatures of the survivors
                        unmask (+ "advertise the next level's
                        keys") ─▶ shares, next level's keys

Each level is a secure round of its own (rounds 1, 2, ... after set-up's round 0),
masked in the 64-bit ring with weight 0 (:data:`privacy.gbdt_histogram.HISTOGRAM_CODE`):
the coordinator decodes only the sum. Keys are advertised one level ahead, in the
unmask exchange of the level before (round 1's in set-up's), as in the rounds of a
logistic-regression run.

A federated tree needs every bank's histogram at every level: the sum must be the
pooled one, and a bank left out of one level would keep other node assignments than
the trees say. So a level that any bank of the run does not answer (a refusal, a
privacy budget spent, a dropout, a malformed reply, a survivor set short of the
roster) fails the run (:class:`~coordinator.errors.RoundFailed`, the bank and reason
named); the trees finished before are in the checkpoint.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from flwr.app import Message, MessageType
from numpy.typing import NDArray

from coordinator.app.bank_replies import ReplyBook, SortedReplies
from coordinator.app.exchange import BankExchange, Stage, messages_to
from coordinator.app.secagg_server import SecureAggregation
from coordinator.errors import RoundAborted, RoundFailed
from credit.gbdt import HISTOGRAM_CHANNELS, FeatureBins
from credit.messages import QueryInstructions
from credit.messages.gbdt import (
    GbdtEncoding,
    GbdtLevelRequest,
    LevelOrders,
    histograms_from_content,
)
from privacy.gbdt_histogram import HISTOGRAM_CODE

__all__ = ["FlowerLevelSum"]


class FlowerLevelSum:
    """The banks' summed histograms of one level, over Flower (module docstring).

    Parameters
    ----------
    exchange : BankExchange
        Sends a stage's messages.
    book : ReplyBook
        Sorts the replies (ledger summaries and refusals recorded).
    query : QueryInstructions
        The run's ``gbdt-level`` query.
    encoding : GbdtEncoding
        The run's binned encoder (its edges are the bins).
    bins : FeatureBins
        The same bins, for the sums' shape.
    banks : mapping of int to str
        Node id -> name of every bank of the run: each must answer every level.
    secure : SecureAggregation, optional
        Sums each level in a secure round of its own (None: in the clear).
    """

    def __init__(
        self,
        *,
        exchange: BankExchange,
        book: ReplyBook,
        query: QueryInstructions,
        encoding: GbdtEncoding,
        bins: FeatureBins,
        banks: Mapping[int, str],
        secure: SecureAggregation | None = None,
    ) -> None:
        self._exchange = exchange
        self._book = book
        self._query = query
        self._encoding = encoding
        self._bins = bins
        self._banks = dict(banks)
        self._secure = secure
        self.levels = 0
        """Levels exchanged so far (the last one's number; secure round = this number)."""

    def __call__(self, orders: LevelOrders) -> NDArray[np.int64]:
        """The consortium's histograms of ``orders.nodes`` (int64, one row per node)."""
        self.levels += 1
        shape = (len(orders.nodes), self._bins.n_features, self._bins.n_bins, HISTOGRAM_CHANNELS)
        request = GbdtLevelRequest(orders=orders)
        if self._secure is None:
            return self._plain(request, shape)
        return self._secure_sum(self._secure, request, shape)

    @property
    def _nodes(self) -> list[int]:
        return sorted(self._banks)

    def _plain(self, request: GbdtLevelRequest, shape: tuple[int, ...]) -> NDArray[np.int64]:
        """One exchange: every bank's histograms in the clear, summed here."""
        messages = messages_to(self._nodes, MessageType.QUERY, self._query, request, self._encoding)
        replies = self._exchange(messages, Stage.GBDT_LEVEL, self.levels)

        def parse(reply: Message) -> tuple[int, NDArray[np.int64]]:
            return reply.metadata.src_node_id, histograms_from_content(reply.content, shape=shape)

        answered = self._book.sort(replies, parse, self.levels)
        self._require_every_bank(answered, {node for node, _ in answered.answers})
        total: NDArray[np.int64] = np.zeros(shape, dtype=np.int64)
        for _, histograms in answered.answers:
            total += histograms
        return total

    def _secure_sum(
        self, secure: SecureAggregation, request: GbdtLevelRequest, shape: tuple[int, ...]
    ) -> NDArray[np.int64]:
        """A secure round: masked histograms, consistency, unmask (and next level's keys)."""
        length = int(np.prod(shape))
        secure_round = self.levels
        try:
            messages = secure.words_messages(
                secure_round,
                self._query,
                length,
                self._nodes,
                code=HISTOGRAM_CODE,
                parts=(request, self._encoding),
            )
            replies = self._exchange(messages, Stage.GBDT_LEVEL, secure_round)
            answered = self._book.sort(replies, _as_is, secure_round)
            self._require_every_bank(answered, {r.metadata.src_node_id for r in answered.answers})
            total, survivors = secure.sum_words(
                answered.answers,
                self._query,
                secure_round,
                next_round=secure_round + 1,
                members=self._nodes,
            )
        except RoundAborted as abort:
            raise self._failed([str(abort)], received=abort.remaining) from None
        if survivors != set(self._banks):
            missing = sorted(self._banks[node] for node in set(self._banks) - survivors)
            raise self._failed([f"the secure sum lacks banks {missing}"], received=len(survivors))
        summed: NDArray[np.int64] = total.astype(np.uint64).view(np.int64).reshape(shape).copy()
        return summed

    def _require_every_bank(self, answered: SortedReplies[Any], nodes: set[int]) -> None:
        """Fail the run unless every bank of the run answered the level."""
        if nodes == set(self._banks):
            return
        reasons = [refusal.text() for refusal in answered.refused] + list(answered.malformed)
        missing = sorted(self._banks[node] for node in set(self._banks) - nodes)
        reasons.append(f"no usable histograms from {missing} (refused, lost or dropped)")
        raise self._failed(reasons, received=len(nodes & set(self._banks)))

    def _failed(self, reasons: Sequence[str], *, received: int) -> RoundFailed:
        return RoundFailed(
            stage=Stage.GBDT_LEVEL,
            server_round=self.levels,
            received=received,
            required=len(self._banks),
            reasons=[
                *reasons,
                "a federated tree needs every bank's histograms at every level; the "
                "finished trees are in OUT/boosting-checkpoint.json",
            ],
        )


def _as_is(reply: Message) -> Message:
    """A reply taken as it is (its masked vector is read by secure aggregation)."""
    return reply
