"""Federated boosting in this process: banks' level releases summed in the clear or securely.

:class:`PlainLevelSum` and :class:`SecureLevelSum` are the coordinator's
:class:`~coordinator.app.boosting.LevelSum` over banks held in this process
(:class:`~participant.guard.gbdt_bank.GbdtBank`), without Flower. The secure one runs
one round of the malicious-secure SecAgg protocol (:mod:`privacy.secagg.protocol`:
signed keys, sealed shares, masked inputs, the consistency check, unmasking) per level:
each bank masks its int64 histograms, read as words of the 64-bit ring (two's
complement), as an unweighted input (weight 0) beside nothing else, and the
coordinator's :class:`~privacy.secagg.protocol.RoundAggregator` unmasks only their sum.

Ring headroom: a cell of the sum is at most ``rows * 2**20`` in absolute value (the
quantised gradient bound, :mod:`credit.gbdt.gradients`), plus the noise under DP; the
sum is exact in the ring while it stays below ``2**63``, i.e. for fewer than ``2**42``
rows in the consortium.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.typing import NDArray

from credit.messages.gbdt import LevelOrders
from participant.guard.gbdt_bank import GbdtBank
from privacy.secagg.fixed_point import FixedPoint
from privacy.secagg.protocol import Participant, RoundAggregator, default_threshold

__all__ = ["HISTOGRAM_RING", "PlainLevelSum", "SecureLevelSum"]

HISTOGRAM_RING = FixedPoint(clip=1.0, fraction_bits=0, ring_bits=64)
"""The code of a level's secure sum: nothing weighted (weight 0), integers in Z_2^64."""


def _answers(banks: Mapping[int, GbdtBank], orders: LevelOrders) -> dict[int, NDArray[np.int64]]:
    """Every bank's release for ``orders``."""
    return {node_id: bank.level(orders).histograms for node_id, bank in banks.items()}


class PlainLevelSum:
    """The level's histograms summed in the clear (the coordinator sees each bank's)."""

    def __init__(self, banks: Mapping[int, GbdtBank]) -> None:
        self.banks = dict(banks)

    def __call__(self, orders: LevelOrders) -> NDArray[np.int64]:
        """The sum over banks of their level histograms."""
        released = _answers(self.banks, orders)
        total: NDArray[np.int64] = np.sum(list(released.values()), axis=0, dtype=np.int64)
        return total


class SecureLevelSum:
    """The level's histograms summed by secure aggregation, one protocol round per level.

    Parameters
    ----------
    banks : mapping of int to GbdtBank
        Node id -> the bank's boosting state.
    participants : mapping of int to Participant
        Node id -> the bank's secure-aggregation participant (same node ids).
    run : int
        The run id the participants were made for.
    keep_aggregators : bool, default False
        Keep every level's aggregator in :attr:`aggregators` (what the coordinator held:
        masked inputs and sums; a test inspects them). Otherwise only the last level's
        is kept: a 300-tree run would hold gigabytes of masked vectors.
    """

    def __init__(
        self,
        banks: Mapping[int, GbdtBank],
        participants: Mapping[int, Participant],
        *,
        run: int,
        keep_aggregators: bool = False,
    ) -> None:
        if set(banks) != set(participants):
            raise ValueError("every bank needs its participant (same node ids)")
        self._banks = dict(banks)
        self._participants = dict(participants)
        self._roster = {node: p.enroll() for node, p in participants.items()}
        self._threshold = default_threshold(len(self._roster))
        self._run = run
        self._round = 0
        self._keep = keep_aggregators
        self.aggregators: list[RoundAggregator] = []
        """The levels' aggregators (every level's with ``keep_aggregators``, else the last)."""

    def __call__(self, orders: LevelOrders) -> NDArray[np.int64]:
        """The unmasked sum of the banks' masked level histograms."""
        self._round += 1
        server_round = self._round
        released = _answers(self._banks, orders)
        shape = next(iter(released.values())).shape
        aggregator = RoundAggregator(
            run=self._run,
            server_round=server_round,
            roster=self._roster,
            threshold=self._threshold,
            code=HISTOGRAM_RING,
            length=1 + int(np.prod(shape)),
        )
        self.aggregators = [*self.aggregators, aggregator] if self._keep else [aggregator]
        for node, participant in self._participants.items():
            advertisement = participant.advertise(server_round, self._roster, self._threshold)
            aggregator.add_advertisement(node, advertisement)
        for node, forward in aggregator.close_advertisements().items():
            participant = self._participants[node]
            participant.receive(server_round, forward)
            words = released.pop(node).ravel().view(np.uint64)  # two's complement in Z_2^64
            masked = participant.mask(server_round, np.zeros(0), 0.0, HISTOGRAM_RING, extra=words)
            aggregator.add_masked(node, masked)
        survivors = aggregator.close_masked()
        for node in sorted(survivors):
            signature = self._participants[node].sign_survivors(server_round, survivors)
            aggregator.add_survivor_signature(node, signature)
        request = aggregator.close_consistency()
        for node in sorted(request.survivors):
            aggregator.add_reveal(node, self._participants[node].unmask(server_round, request))
        total, _ = aggregator.finish()
        if int(total[0]) != 0:
            raise ValueError(f"the unmasked weight is {int(total[0])}, not 0: a forged input")
        summed: NDArray[np.int64] = total[1:].view(np.int64).reshape(shape).copy()
        return summed
