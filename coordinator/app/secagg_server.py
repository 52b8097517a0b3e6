"""The coordinator's side of secure aggregation over Flower's Grid.

Message flow of a run (``privacy.secagg.protocol`` has the cryptography)::

    set-up   feature-stats query  ─▶  + each bank's per-run encryption key
             advertise query (r=1) ─▶  round 1 masking key + sealed shares      [+1 trip per run]
    round r  train  (weights, U1's keys, shares sealed for the bank) ─▶ masked update
             unmask (survivors, dropouts) ─▶ requested shares               [+1 trip per round]
             evaluate (new weights; "advertise r+1") ─▶ metrics + round r+1 keys and shares

So a round costs three message round trips against plain FedAvg's two, and the run
one more at set-up. What a bank masks is ``n_train * [update - global, loss, 1]``:
the coordinator decodes only the weighted mean update, the weighted mean training
loss (banks under DP report none) and the summed weight.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, RecordDict

from credit import message_keys as keys
from credit.records import array_record, config_record, flatten, unflatten
from privacy.secagg.fixed_point import FixedPoint
from privacy.secagg.protocol import RoundAggregator, default_threshold
from privacy.secagg.records import (
    decode_advertisement,
    decode_keys,
    encode_fixed_point,
    encode_forward,
    encode_keys,
    encode_unmask,
)

__all__ = ["SecureAggregation", "SecureUpdate"]

Exchange = Callable[[list[Message], str, int], list[Message]]


class SecureUpdate:
    """The decoded state of one securely aggregated round."""

    def __init__(self, arrays: ArrayRecord, train_loss: float | None, banks: list[int]) -> None:
        self.arrays = arrays
        self.train_loss = train_loss
        self.banks = banks


class SecureAggregation:
    """Roster, threshold and fixed-point code of a run; one :class:`RoundAggregator` per round.

    Parameters
    ----------
    run : int
        Flower's run id (bound into every key).
    clip : float
        Per-coordinate clip of the masked update (difference from the global model).
    """

    def __init__(self, *, run: int, clip: float) -> None:
        self.run = run
        self.clip = clip
        self.roster: dict[int, bytes] = {}
        self.threshold = 0
        self.code: FixedPoint | None = None
        self._rounds: dict[int, RoundAggregator] = {}
        self._length = 0

    def enroll(self, replies: Iterable[Message], weights: dict[int, int], min_banks: int) -> None:
        """Fix the roster from the set-up replies; pick threshold and fixed-point code."""
        for reply in replies:
            record = config_record(reply.content, keys.SECAGG)
            public = record[keys.ENCRYPTION_KEY]
            if not isinstance(public, bytes):
                raise ValueError("a bank sent no encryption key for secure aggregation")
            self.roster[reply.metadata.src_node_id] = public
        if len(self.roster) < 2:
            raise ValueError(
                "secure aggregation needs at least 2 banks (one bank's sum is its update); "
                "run with --no-secure-aggregation"
            )
        self.threshold = min(len(self.roster), max(default_threshold(len(self.roster)), min_banks))
        self.code = FixedPoint.for_sum(
            clip=self.clip,
            total_weight=float(sum(weights[node] for node in self.roster)),
            participants=len(self.roster),
            ring_bits=32,
        )

    def describe(self) -> str:
        """One line for the terminal."""
        assert self.code is not None
        return (
            f"secure aggregation: {len(self.roster)} banks, threshold {self.threshold}, "
            f"ring Z_2^{self.code.ring_bits}, {self.code.fraction_bits} fraction bits, "
            f"clip ±{self.code.clip:g}"
        )

    def summary(self) -> dict[str, Any]:
        """The run's protocol parameters, for ``metrics.json``."""
        assert self.code is not None
        return {
            "protocol": "SecAgg (complete graph), keys advertised one round ahead",
            "banks": len(self.roster),
            "threshold": self.threshold,
            "ring_bits": self.code.ring_bits,
            "fraction_bits": self.code.fraction_bits,
            "clip": self.code.clip,
        }

    def record(self, *, advertise_round: int = 0, server_round: int = 0) -> ConfigRecord:
        """The ``secagg`` record of a message: roster, threshold, what to do."""
        return ConfigRecord(
            {
                keys.ROSTER: encode_keys(self.roster),
                keys.THRESHOLD: self.threshold,
                keys.ADVERTISE_ROUND: advertise_round,
                keys.SERVER_ROUND: server_round,
            }
        )

    def open_round(self, server_round: int, n_parameters: int) -> None:
        """Start collecting advertisements for ``server_round``."""
        assert self.code is not None
        self._length = n_parameters + 3  # update, loss, reported flag, weight
        self._rounds[server_round] = RoundAggregator(
            run=self.run,
            server_round=server_round,
            roster=self.roster,
            threshold=self.threshold,
            code=self.code,
            length=self._length,
        )
        for old in [r for r in self._rounds if r < server_round - 1]:
            del self._rounds[old]

    def collect_advertisements(self, server_round: int, replies: Iterable[Message]) -> int:
        """Take the advertisements for ``server_round`` that ``replies`` carry; how many."""
        aggregator = self._rounds[server_round]
        taken = 0
        for reply in replies:
            if reply.has_error() or keys.SECAGG not in reply.content.config_records:
                continue
            record = config_record(reply.content, keys.SECAGG)
            if keys.ADVERTISEMENT not in record:
                continue
            value = record[keys.ADVERTISEMENT]
            assert isinstance(value, bytes)
            taken += aggregator.add_advertisement(
                reply.metadata.src_node_id, decode_advertisement(value)
            )
        return taken

    def train_messages(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord
    ) -> list[Message]:
        """One train message per member of U1, each with the shares sealed for it.

        Raises
        ------
        SecAggAborted
            If fewer than ``threshold`` banks advertised keys for this round.
        """
        assert self.code is not None
        forwards = self._rounds[server_round].close_advertisements()
        messages = []
        for node, forward in forwards.items():
            secagg = self.record(server_round=server_round)
            secagg[keys.FORWARD] = encode_forward(forward)
            secagg[keys.FIXED_POINT] = encode_fixed_point(self.code)
            content = RecordDict({keys.ARRAYS: arrays, keys.CONFIG: config, keys.SECAGG: secagg})
            messages.append(Message(content, node, MessageType.TRAIN))
        return messages

    def aggregate(
        self,
        server_round: int,
        replies: list[Message],
        arrays: ArrayRecord,
        config: ConfigRecord,
        exchange: Exchange,
    ) -> SecureUpdate:
        """Unmask the sum of ``replies``' masked updates (one unmask round trip).

        Raises
        ------
        SecAggAborted
            If fewer than ``threshold`` banks are left at any stage.
        """
        assert self.code is not None
        aggregator = self._rounds[server_round]
        for reply in replies:
            masked = array_record(reply.content, keys.ARRAYS)[keys.SECAGG_MASKED].numpy()
            aggregator.add_masked(reply.metadata.src_node_id, masked)
        request = aggregator.close_masked()
        unmask_config = ConfigRecord(dict(config))
        unmask_config[keys.TASK] = keys.TASK_SECAGG_UNMASK
        secagg = self.record(server_round=server_round)
        secagg[keys.UNMASK] = encode_unmask(request)
        queries = [
            Message(
                RecordDict({keys.CONFIG: unmask_config, keys.SECAGG: secagg}),
                node,
                MessageType.QUERY,
            )
            for node in sorted(request.survivors)
        ]
        for reply in exchange(queries, "unmask", server_round):
            if keys.SECAGG not in reply.content.config_records:
                continue  # dropped out before answering
            record = config_record(reply.content, keys.SECAGG)
            value = record[keys.REVEAL]
            assert isinstance(value, bytes)
            aggregator.add_reveal(reply.metadata.src_node_id, decode_keys(value, "reveal"))
        total, survivors = aggregator.finish()
        mean = self.code.decode_mean(total[:-1], total[-1])
        update, loss_mean, reported = mean[:-2], mean[-2], mean[-1]
        new_arrays = unflatten(flatten(arrays) + update, arrays)
        loss = float(loss_mean / reported) if reported > 1e-6 else None
        return SecureUpdate(new_arrays, loss, sorted(survivors))
