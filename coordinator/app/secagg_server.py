"""The coordinator's side of secure aggregation over Flower's Grid.

Message flow of a run (``privacy.secagg.protocol`` has the cryptography)::

    set-up   feature-stats query  ─▶  + each bank's per-run encryption key
             advertise query (r=1) ─▶  round 1 masking key + sealed shares      [+1 trip per run]
    round r  train  (weights, U1's signed keys, shares sealed for the bank) ─▶ masked update
             consistency (U2) ─▶ each survivor's signature of U2               [+1 trip per round]
             unmask (U2, the signatures, dropouts; "advertise r+1") ─▶ requested shares
                                                + round r+1 keys and shares    [+1 trip per round]
    the end  evaluate (the last weights, keys for round R+1) ─▶ masked evaluation and
                                                governance sums (in the 64-bit ring)
             consistency, unmask ─▶ requested shares: the summed evaluation and sums

Round r's unmask exchange also collects round r+1's keys: the survivors (whose masked
updates arrived) find the advertise request beside the unmask request, and the
roster's other connected banks (which dropped out of round r, or refused it) get the
advertise query in the same exchange. So a round costs three message round trips
against plain FedAvg's one (train, the consistency check, unmask), and the run one
more at set-up. A round that ends
before its unmask query (too few keys or masked updates) collects no keys: the next
round asks for them first (:meth:`SecureAggregation.prepare`, one extra exchange).
What a bank masks is ``n_train * [update - global, loss, 1]``, its weight ``n_train``
and, unweighted, its evaluation of the model the train message carried
(:func:`~credit.metrics.evaluation_vector`, zeros when not asked): the coordinator
decodes only the weighted mean update, the weighted mean training loss (banks under
DP report none), the summed weight and the consortium's summed evaluation. The last
model is scored in a secure round of its own (round R + 1, whose keys round R's unmask
exchange collects): each bank masks its weight 0, its evaluation and, asked for the
governance release, its calibration and fairness sums
(:func:`~credit.governance.release.governance_vector`, zeros when it releases none), in
the 64-bit ring with 32 fraction bits for those sums, so that their decoded total is
exact to about 1e-10.

Bad input from a bank (a malformed advertisement, masked vector, signature or
reveal) drops that bank from the round, with the reason in the run's events; it
never fails the run. After unmasking, the decoded weight sum must equal the sum of
the survivors' ``n_train`` (declared in their :class:`~credit.messages.BankIntro` at
join): a forged share reconstructs a wrong seed and a garbage sum, and the round is
aborted (the model unchanged).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence, Set
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, Message, MessageType, RecordDict

from coordinator.app.aggregation import (
    AggregatedUpdate,
    Exchange,
    SummedEvaluation,
    evaluation_parts,
)
from coordinator.app.bank_replies import TrainReply
from coordinator.app.exchange import Stage, messages_to
from coordinator.errors import RoundAborted, RoundFailed
from credit import message_keys
from credit.errors import MalformedMessage
from credit.governance.release import GovernanceLayout, governance_from_sum
from credit.messages import (
    EvaluationRows,
    MessagePart,
    QueryInstructions,
    RoundInstructions,
    RunInstructions,
    Task,
    secagg,
)
from credit.metrics import ScoreSummary, evaluation_from_sum
from credit.records import array_of, flatten, record_of, unflatten
from privacy.secagg.fixed_point import FINE_FRACTION_BITS, FixedPoint
from privacy.secagg.graph import (
    DEFAULT_CORRUPTION_RATE,
    DEFAULT_DROPOUT_RATE,
    GraphChoice,
    GraphKind,
    GraphPlan,
    plan_graph,
)
from privacy.secagg.protocol import (
    DEFAULT_THRESHOLD_FRACTION,
    MIN_ROSTER,
    CoordinatorStage,
    RoundAggregator,
    SecAggAborted,
    SecAggCost,
    default_threshold,
)
from privacy.secagg.protocol import UnmaskRequest as ProtocolUnmaskRequest
from privacy.secagg.shamir import Share
from privacy.secagg.signed import RosterEntry
from privacy.secagg.wire import (
    decode_advertisement,
    decode_keys,
    encode_fixed_point,
    encode_forward,
    encode_roster,
    encode_survivors,
    encode_unmask,
)

__all__ = ["BankDropped", "SecureAggregation"]

_EXTRA = 3  # loss, reported flag, weight
_SETUP_CODE = FixedPoint(clip=1.0, fraction_bits=0, ring_bits=64)
"""Round 0's code: no weighted part (weight 0), aggregates in the 64-bit ring."""


_FINAL_CODE = _SETUP_CODE
"""The last model's evaluation round with the governance release: weight 0, the 64-bit ring."""


def _evaluation_length(score_bins: int, governance: GovernanceLayout | None = None) -> int:
    """Entries of a bank's evaluation in the masked vector (``evaluation_vector``), and
    of its governance sums after it (``governance_vector``), when asked."""
    return 2 * score_bins + 3 + (0 if governance is None else governance.length + 1)


def _masked_vector(
    record: ArrayRecord, code: FixedPoint, length: int, *, node: int, what: str
) -> np.ndarray:
    """The masked vector in ``record``, refused unless it is of ``code``'s ring and ``length``.

    Raises
    ------
    MalformedMessage
        Missing, of another dtype (never cast) or another length; names ``node`` and ``what``.
    """
    masked = array_of(record, message_keys.SECAGG_MASKED, record_key="arrays")
    if masked.dtype != code.dtype or masked.shape != (length,):
        raise MalformedMessage(
            f"node {node}: the masked {what} is {masked.dtype}{masked.shape}, "
            f"expected {np.dtype(code.dtype)}({length},)"
        )
    return masked


@dataclass(frozen=True)
class BankDropped:
    """A bank left out of a secure round for bad input (never an error of the run).

    Attributes
    ----------
    node : int
        The bank's node id.
    server_round : int
        The secure round it was left out of.
    reason : str
        What was wrong with what it sent.
    """

    node: int
    server_round: int
    reason: str

    def text(self) -> str:
        """One line for the run's events."""
        return (
            f"round {self.server_round}: node {self.node} dropped from secure aggregation: "
            f"{self.reason}"
        )


@dataclass(frozen=True)
class _KeysAhead:
    """Whose keys of which round a round's unmask exchange also asks for."""

    server_round: int
    members: tuple[int, ...]


class SecureAggregation:
    """Roster, threshold and fixed-point code of a run; one :class:`RoundAggregator` per round.

    Build it with :meth:`enroll` from the banks' set-up replies.

    Parameters
    ----------
    run : int
        Flower's run id (bound into every key).
    roster : mapping of int to RosterEntry
        Node id -> the bank's signed enrollment (member name, per-run encryption key).
    threshold : int
        Banks needed at every stage of a round (the banks' own policy's threshold).
    code : FixedPoint
        The fixed-point code of the sum.
    score_bins : int
        Bins of the evaluations summed with the updates.
    exchange : callable
        Sends a stage's messages and returns the error-free replies.
    weights : mapping of int to int
        Node id -> the bank's declared ``n_train`` (its weight): the unmasked weight
        sum must equal the survivors' total.
    threshold_fraction : float, default 2/3
        The consortium's threshold policy ``threshold`` comes from (reported only).
    on_drop : callable, optional
        Receives each bank dropped from a round for bad input (:class:`BankDropped`).
    plan : GraphPlan, optional
        The communication graph (the banks' policy's; :meth:`enroll` computes it);
        the complete graph with ``threshold`` if omitted.
    """

    def __init__(
        self,
        *,
        run: int,
        roster: Mapping[int, RosterEntry],
        threshold: int,
        code: FixedPoint,
        score_bins: int,
        exchange: Exchange,
        weights: Mapping[int, int],
        threshold_fraction: float = DEFAULT_THRESHOLD_FRACTION,
        on_drop: Callable[[BankDropped], None] | None = None,
        plan: GraphPlan | None = None,
    ) -> None:
        if len(roster) < MIN_ROSTER:
            raise ValueError(f"secure aggregation needs >= {MIN_ROSTER} banks; got {len(roster)}")
        if not 1 <= threshold <= len(roster):
            raise ValueError(f"threshold must be in [1, {len(roster)}]; got {threshold}")
        missing = sorted(set(roster) - set(weights))
        if missing:
            raise ValueError(f"weights must cover the roster; nodes {missing} have none")
        self.run = run
        self.roster = dict(roster)
        self.weights = dict(weights)
        self._on_drop = on_drop or (lambda dropped: None)
        self.threshold = threshold
        self.plan = plan or GraphPlan.complete(len(roster), threshold)
        self.threshold_fraction = threshold_fraction
        self.code = code
        self.score_bins = score_bins
        self._exchange = exchange
        self._rounds: dict[int, RoundAggregator] = {}
        self._evaluating: int | None = None  # the secure round of the last model's evaluation
        self._costs: dict[int, SecAggCost] = {}  # secure round -> the coordinator's unmask work

    @classmethod
    def enroll(
        cls,
        *,
        run: int,
        clip: float,
        enrollments: Mapping[int, secagg.Enrollment],
        weights: Mapping[int, int],
        score_bins: int,
        exchange: Exchange,
        threshold_fraction: float = DEFAULT_THRESHOLD_FRACTION,
        on_drop: Callable[[BankDropped], None] | None = None,
        graph: GraphChoice = GraphChoice.AUTO,
        dropout_rate: float = DEFAULT_DROPOUT_RATE,
        corruption_rate: float = DEFAULT_CORRUPTION_RATE,
    ) -> SecureAggregation:
        """Fix the roster from the banks' signed enrollments; pick graph, threshold and code.

        The graph and threshold are the consortium's policy's
        (:func:`~privacy.secagg.graph.plan_graph`): on the complete graph
        ``floor(threshold_fraction * N) + 1`` (by default ``t > 2N/3``), on the sparse
        graph (``graph``; by default above
        :data:`~privacy.secagg.graph.SPARSE_ABOVE` banks) the degree and threshold
        Bell et al.'s bounds give for ``dropout_rate`` and ``corruption_rate``. Each
        bank computes its own from its policy and refuses any other.

        Raises
        ------
        RoundFailed
            Fewer than three banks enrolled (a bank's policy refuses a smaller roster),
            or the banks' weights leave no room for a fixed-point code in the ring.
        """
        roster = {
            node: RosterEntry(
                member=part.member, encryption_key=part.encryption_key, signature=part.signature
            )
            for node, part in enrollments.items()
        }
        if len(roster) < MIN_ROSTER:
            raise RoundFailed(
                stage="secure-aggregation set-up",
                server_round=0,
                received=len(roster),
                required=MIN_ROSTER,
                reasons=[
                    f"secure aggregation needs at least {MIN_ROSTER} banks (banks refuse a "
                    "smaller roster); run with --no-secure-aggregation"
                ],
            )
        try:
            plan = plan_graph(
                len(roster),
                choice=graph,
                complete_threshold=default_threshold(len(roster), threshold_fraction),
                corruption_rate=corruption_rate,
                dropout_rate=dropout_rate,
            )
        except ValueError as exc:  # a forced sparse graph that this many banks cannot have
            raise RoundFailed(
                stage="secure-aggregation set-up",
                server_round=0,
                received=len(roster),
                required=MIN_ROSTER,
                reasons=[str(exc)],
            ) from exc
        threshold = plan.threshold
        try:
            code = FixedPoint.for_sum(
                clip=clip,
                total_weight=float(sum(weights[node] for node in roster)),
                participants=len(roster),
                ring_bits=32,
            )
        except ValueError as exc:  # the banks' weights leave no fraction bits in the ring
            raise RoundFailed(
                stage="secure-aggregation set-up",
                server_round=0,
                received=len(roster),
                required=MIN_ROSTER,
                reasons=[str(exc)],
            ) from exc
        return cls(
            run=run,
            roster=roster,
            threshold=threshold,
            code=code,
            score_bins=score_bins,
            exchange=exchange,
            weights={node: weights[node] for node in roster},
            threshold_fraction=threshold_fraction,
            on_drop=on_drop,
            plan=plan,
        )

    @property
    def sums_evaluations(self) -> bool:
        """Evaluations are masked with the updates: the coordinator decodes only their sum."""
        return True

    def describe(self) -> str | None:
        """One line for the terminal."""
        graph = (
            "complete graph"
            if self.plan.kind is GraphKind.COMPLETE
            else f"sparse graph of degree {self.plan.degree}"
        )
        return (
            f"secure aggregation: {len(self.roster)} banks, {graph}, threshold {self.threshold}, "
            f"ring Z_2^{self.code.ring_bits}, {self.code.fraction_bits} fraction bits, "
            f"clip ±{self.code.clip:g}"
        )

    def summary(self) -> dict[str, Any] | None:
        """The run's protocol parameters, for ``metrics.json``."""
        return {
            "protocol": (
                "SecAgg, malicious-secure (Bonawitz et al. 2017, section 6): signed keys "
                "against the banks' pinned member list, consistency check; "
                + (
                    "complete graph"
                    if self.plan.kind is GraphKind.COMPLETE
                    else "SecAgg+ sparse Harary graph (Bell et al. 2020)"
                )
                + ", keys advertised one round ahead"
            ),
            "graph": self.plan.kind.value,
            "degree": self.plan.degree,
            "min_survivors": self.plan.min_survivors,
            "threshold_policy": (
                f"t = floor({self.threshold_fraction:.4g}·N) + 1 (t > "
                f"{self.threshold_fraction:.4g}·N), set by each bank"
            ),
            "banks": len(self.roster),
            "threshold": self.threshold,
            "ring_bits": self.code.ring_bits,
            "fraction_bits": self.code.fraction_bits,
            "clip": self.code.clip,
            "costs": self.costs_document(),
        }

    def costs_document(self) -> dict[str, Any]:
        """The coordinator's protocol work in each secure round it unmasked, for
        ``metrics.json`` (``secure_aggregation.costs``).

        Counts of :class:`~privacy.secagg.SecAggCost` (secrets reconstructed, and the
        key agreements and mask expansions that removed the masks), by secure round
        (0: the set-up's sum; R + 1: the last model's evaluation), of the rounds this
        process took past the masked inputs (a round aborted on the way: the work done
        until it stopped; a resumed run lists the rounds since the resume). The banks' own
        counts are not here: no bank sends them to the coordinator, and no message
        field asks for them (``bench/secagg_graph.py`` measures them in one process).
        """
        return {
            "coordinator": [
                {"secure_round": secure_round, **asdict(cost)}
                for secure_round, cost in sorted(self._costs.items())
            ]
        }

    # -- keys for a round -----------------------------------------------------------

    def advertise_request(
        self, next_round: int, arrays: ArrayRecord, *, code: FixedPoint | None = None
    ) -> secagg.AdvertiseRequest:
        """Open ``next_round`` and the request that asks banks for its keys.

        The round sums train inputs of ``arrays``' model in the run's code, unless
        told otherwise (:meth:`RoundAggregator.expect_length`, ``code``). Rounds before
        the one ahead of it are forgotten (the current round stays open).
        """
        self._rounds[next_round] = RoundAggregator(
            run=self.run,
            server_round=next_round,
            roster=self.roster,
            threshold=self.threshold,
            code=code or self.code,
            length=self._train_length(arrays),
            plan=self.plan,
        )
        for old in [r for r in self._rounds if r < next_round - 1]:
            del self._rounds[old]
        degree = None if self.plan.kind is GraphKind.COMPLETE else self.plan.degree
        return secagg.AdvertiseRequest(
            roster=encode_roster(self.roster),
            threshold=self.threshold,
            advertise_round=next_round,
            degree=degree,
        )

    def collect_advertisements(self, next_round: int, replies: Sequence[Message]) -> None:
        """Take the well-formed advertisements ``replies`` carry for ``next_round``.

        Replies to any query may carry one (advertise and unmask queries); replies
        without one are passed over.
        """
        aggregator = self._rounds[next_round]
        for reply in replies:
            if reply.has_error() or not secagg.Advertisement.present(reply.content):
                continue
            node = reply.metadata.src_node_id
            try:
                part = secagg.Advertisement.take(reply.content)
                advertisement = decode_advertisement(part.advertisement)
            except MalformedMessage as exc:
                self._drop(node, next_round, f"malformed advertisement ({exc})")
                continue  # the bank advertises nothing for this round
            if not aggregator.add_advertisement(node, advertisement):
                self._drop(node, next_round, "advertisement not of the roster, or malformed keys")

    def prepare(
        self,
        server_round: int,
        arrays: ArrayRecord,
        run: RunInstructions,
        *,
        code: FixedPoint | None = None,
    ) -> None:
        """Ask every bank of the roster for its keys of ``server_round``, unless asked already.

        At set-up (or resume) this is the run's advertise exchange; later rounds' keys
        come with the unmask exchange of the round before, so only a round after one
        that ended before its unmask query is asked here (the exchange then counts as
        the round's own).
        """
        if server_round in self._rounds:
            aggregator = self._rounds[server_round]
            if code is None and aggregator.stage is CoordinatorStage.ADVERTISEMENTS:
                # keys asked for before the model existed (round 1's, at set-up)
                aggregator.expect_length(self._train_length(arrays))
            return
        stage_round = server_round if self._rounds else 0  # set-up or resume: round 0
        request = self.advertise_request(server_round, arrays, code=code)
        query = run.query(Task.SECAGG_ADVERTISE)
        messages = messages_to(sorted(self.roster), MessageType.QUERY, query, request)
        replies = self._exchange(messages, Stage.ADVERTISE, stage_round)
        self.collect_advertisements(server_round, replies)

    # -- one round ------------------------------------------------------------------

    def train_messages(
        self, arrays: ArrayRecord, instructions: RoundInstructions, nodes: Sequence[int]
    ) -> list[Message]:
        """One train message per member of U1 (who advertised) among ``nodes``.

        Each carries the shares sealed for its bank. A member of U1 that is not among
        ``nodes`` (no longer connected) is not asked: it drops out of the round.

        Raises
        ------
        RoundAborted
            Fewer than ``threshold`` banks advertised keys for this round.
        """
        return self._inputs_messages(
            instructions.server_round, MessageType.TRAIN, instructions, arrays, nodes
        )

    def _train_length(self, arrays: ArrayRecord) -> int:
        """Entries of a masked train input: update, loss, flag, weight, evaluation."""
        weights = sum(arrays[name].numpy().size for name in arrays)
        return weights + _EXTRA + _evaluation_length(self.score_bins)

    def check(self, update: TrainReply, arrays: ArrayRecord) -> TrainReply:
        """``update`` if it is a masked vector of this run's ring and the round's length."""
        _masked_vector(
            update.arrays, self.code, self._train_length(arrays), node=update.node, what="update"
        )
        return update

    def aggregate(
        self,
        updates: Sequence[TrainReply],
        arrays: ArrayRecord,
        instructions: RoundInstructions,
        *,
        next_round: int,
        members: Sequence[int],
    ) -> AggregatedUpdate:
        """Unmask the sum of the masked updates (one unmask round trip).

        The unmask exchange also asks for the keys of ``next_round`` (0: none): the
        survivors beside their unmask request, the other ``members`` of the roster in
        an advertise query.

        Raises
        ------
        RoundAborted
            Fewer than ``threshold`` banks are left at any stage.
        """
        server_round = instructions.server_round
        aggregator = self._rounds[server_round]
        for reply in updates:  # checked by check(): the ring's dtype and the round's length
            masked = array_of(reply.arrays, message_keys.SECAGG_MASKED, record_key="arrays")
            try:
                aggregator.add_masked(reply.node, masked.astype(self.code.dtype, copy=False))
            except ValueError as exc:  # not a member of this round's U1: left out
                self._drop(reply.node, server_round, f"masked update refused ({exc})")
        ahead = _KeysAhead(next_round, tuple(members)) if next_round else None
        size = flatten(arrays).size
        total, survivors = self._finish(
            aggregator, instructions, arrays, ahead, server_round, weight_at=size + 2
        )
        mean = self.code.decode_mean(total[: size + 2], total[size + 2])
        update, loss_mean, reported = mean[:-2], mean[-2], mean[-1]
        new_arrays = unflatten(flatten(arrays) + update, arrays)
        loss = float(loss_mean / reported) if reported > 1e-6 else None
        evaluation = self._decode_evaluation(total[size + _EXTRA :], ring_bits=self.code.ring_bits)
        return AggregatedUpdate(
            arrays=new_arrays,
            train_loss=loss,
            banks=tuple(sorted(survivors)),
            evaluation=evaluation,
        )

    def _decode_evaluation(self, total: np.ndarray, *, ring_bits: int) -> ScoreSummary | None:
        """The summed evaluation in an unmasked sum of the ``ring_bits`` ring (None: no bank's)."""
        totals = FixedPoint.for_totals(participants=len(self.roster), ring_bits=ring_bits)
        summary, _ = evaluation_from_sum(totals.decode_total(total), self.score_bins)
        return summary

    # -- set-up: the banks' aggregates in secure round 0 -----------------------------

    def setup_messages(
        self, query: QueryInstructions, length: int, nodes: Sequence[int]
    ) -> list[Message]:
        """Feature-stats queries of secure round 0, whose sum is the banks' aggregates.

        Asks for round 0's keys first (one advertise exchange); each bank then masks
        its aggregates (``length`` entries, :meth:`FeatureStats.to_vector`) in the
        64-bit ring, and the unmask exchange of :meth:`sum_setup` also collects round
        1's keys.

        Raises
        ------
        RoundAborted
            Fewer than ``threshold`` banks advertised keys for round 0.
        """
        code = _SETUP_CODE
        self.prepare(0, ArrayRecord(), query.run_settings(), code=code)
        self._rounds[0].expect_length(1 + length)
        return self._inputs_messages(0, MessageType.QUERY, query, None, nodes, code=code)

    def sum_setup(
        self, replies: Sequence[Message], query: QueryInstructions, arrays: ArrayRecord
    ) -> np.ndarray:
        """The summed aggregates of round 0 (one unmask exchange, which also asks for round
        1's keys for ``arrays``' model).

        Raises
        ------
        RoundAborted
            Fewer than ``threshold`` banks are left at any stage.
        """
        aggregator = self._rounds[0]
        self._take_masked(aggregator, replies)
        ahead = _KeysAhead(1, tuple(sorted(self.roster)))
        total, _ = self._finish(aggregator, query.run_settings(), arrays, ahead, 0, weight_at=0)
        bits = _SETUP_CODE.ring_bits
        totals = FixedPoint.for_totals(participants=len(self.roster), ring_bits=bits)
        return totals.decode_total(total[1:])

    # -- a boosting level: ring words summed in a secure round of its own ------------

    def words_messages(
        self,
        secure_round: int,
        query: QueryInstructions,
        length: int,
        nodes: Sequence[int],
        *,
        code: FixedPoint,
        parts: Sequence[MessagePart] = (),
    ) -> list[Message]:
        """Queries of ``secure_round`` whose sum is ``length`` unweighted words of ``code``.

        A boosting level's round (:mod:`coordinator.app.boosting_flower`): each bank
        masks weight 0 and its level histograms as words of ``code``'s ring. The round's
        keys come from the unmask exchange of the round before
        (:meth:`sum_words`'s ``next_round``), or are asked for here first.

        Raises
        ------
        RoundAborted
            Fewer than ``threshold`` banks advertised keys for the round.
        """
        self.prepare(secure_round, ArrayRecord(), query.run_settings(), code=code)
        self._rounds[secure_round].expect_length(1 + length, code=code)
        return self._inputs_messages(
            secure_round, MessageType.QUERY, query, None, nodes, code=code, parts=parts
        )

    def sum_words(
        self,
        replies: Sequence[Message],
        query: QueryInstructions,
        secure_round: int,
        *,
        next_round: int,
        members: Sequence[int],
    ) -> tuple[np.ndarray, frozenset[int]]:
        """The ring sum of the masked words ``replies`` carry, and whose inputs it holds.

        Two exchanges (consistency, unmask); the unmask exchange also asks ``members``
        for the keys of ``next_round`` (0: none), so the next level costs no advertise
        exchange.

        Raises
        ------
        RoundAborted
            Fewer than ``threshold`` banks are left at any stage, or the sum is forged.
        """
        aggregator = self._rounds[secure_round]
        self._take_masked(aggregator, replies)
        ahead = _KeysAhead(next_round, tuple(members)) if next_round else None
        total, survivors = self._finish(
            aggregator, query.run_settings(), ArrayRecord(), ahead, secure_round, weight_at=0
        )
        return total[1:], frozenset(survivors)

    def _take_masked(self, aggregator: RoundAggregator, replies: Sequence[Message]) -> None:
        """Add the masked vectors ``replies`` carry; malformed ones are left out."""
        for reply in replies:
            node = reply.metadata.src_node_id
            try:
                record = record_of(reply.content, message_keys.ARRAYS, ArrayRecord)
                masked = array_of(record, message_keys.SECAGG_MASKED, record_key="arrays")
                if masked.dtype != aggregator.code.dtype:  # a vector of the ring, never a cast
                    raise MalformedMessage(f"the masked vector is {masked.dtype}")
                aggregator.add_masked(node, masked.astype(aggregator.code.dtype, copy=False))
            except (MalformedMessage, ValueError) as exc:
                self._drop(node, aggregator.server_round, f"masked input refused ({exc})")

    def _finish(
        self,
        aggregator: RoundAggregator,
        run: RunInstructions,
        arrays: ArrayRecord,
        ahead: _KeysAhead | None,
        server_round: int,
        *,
        weight_at: int,
    ) -> tuple[np.ndarray, Set[int]]:
        """Close the masked inputs, check consistency, unmask: the ring sum and who is in it.

        Two exchanges: the consistency query (each survivor signs U2) and the unmask
        query. ``ahead``: the unmask exchange also asks for those keys (for ``arrays``'
        model). ``weight_at``: the sum's entry that holds the summed weight, which must
        be the survivors' declared ``n_train`` (or 0 in rounds that sum weight 0).

        Raises
        ------
        RoundAborted
            Too few banks at any stage, shares that reconstruct no valid key, or a
            decoded weight sum that is not the survivors' (a forged share).
        """
        try:
            self._consistency(aggregator, run, server_round, aggregator.close_masked())
            request = aggregator.close_consistency()
            self._unmask(aggregator, run, server_round, request, arrays, ahead)
            total, survivors = aggregator.finish()
        except SecAggAborted as abort:
            raise self._aborted(abort) from None
        except ValueError as exc:
            raise RoundAborted(
                server_round=server_round,
                stage="unmask",
                remaining=0,
                required=self.threshold,
                reason=f"the revealed shares do not reconstruct the masks ({exc})",
            ) from None
        finally:  # an aborted round's too: the work done until it stopped
            self._costs[server_round] = aggregator.cost
        self._check_weight(total[weight_at], aggregator, survivors, weighted=weight_at > 0)
        return total, survivors

    def _check_weight(
        self,
        summed: np.unsignedinteger,
        aggregator: RoundAggregator,
        survivors: Set[int],
        *,
        weighted: bool,
    ) -> None:
        """Abort unless the unmasked weight is the survivors' declared total (or 0).

        Raises
        ------
        RoundAborted
            The decoded weight sum differs: a forged share or a lying bank made the
            sum garbage, and nothing of it is used.
        """
        declared = sum(self.weights[node] for node in survivors) if weighted else 0
        expected = aggregator.code.encode_weight(float(declared))
        if summed != expected:
            raise RoundAborted(
                server_round=aggregator.server_round,
                stage="unmask",
                remaining=len(survivors),
                required=self.threshold,
                reason=(
                    f"the unmasked weight sum is {int(summed)}, not {int(expected)} (the "
                    f"declared n_train {declared} of banks {sorted(survivors)} in "
                    f"{aggregator.code.fraction_bits}-bit fixed point): a forged share or "
                    "input; the round's sum is discarded"
                ),
            )

    def _consistency(
        self,
        aggregator: RoundAggregator,
        instructions: RunInstructions,
        server_round: int,
        survivors: frozenset[int],
    ) -> None:
        """Ask every survivor to sign U2 (the consistency check); take every valid signature."""
        query = instructions.query(Task.SECAGG_CONSISTENCY, server_round=server_round)
        asked = secagg.ConsistencyRequest(
            server_round=server_round, survivors=encode_survivors(survivors)
        )
        messages = messages_to(sorted(survivors), MessageType.QUERY, query, asked)
        for reply in self._exchange(messages, Stage.CONSISTENCY, server_round):
            node = reply.metadata.src_node_id
            try:
                signed = secagg.SurvivorSignature.take(reply.content)
                aggregator.add_survivor_signature(node, signed.signature)
            except (MalformedMessage, ValueError) as exc:
                self._drop(node, server_round, f"survivor-set signature refused ({exc})")

    def _drop(self, node: int, server_round: int, reason: str) -> None:
        """Report a bank left out of ``server_round`` for bad input (never an error)."""
        self._on_drop(BankDropped(node=node, server_round=server_round, reason=reason))

    # -- the last model's evaluation: a secure round of its own ---------------------

    def evaluation_messages(
        self,
        arrays: ArrayRecord,
        instructions: RoundInstructions,
        nodes: Sequence[int],
        governance: GovernanceLayout | None = None,
        rows: EvaluationRows = EvaluationRows.TEST,
    ) -> list[Message]:
        """Evaluate messages of the secure round after ``instructions.server_round``.

        Each bank masks its weight 0 and its evaluation; asked for the governance
        release (``governance``), also its governance sums after it, in the 64-bit
        ring (:data:`_FINAL_CODE`: the sums of probabilities in them need
        :data:`~privacy.secagg.fixed_point.FINE_FRACTION_BITS` fraction bits). The
        round's keys were collected by the last unmask exchange, or are asked for here
        first.

        Raises
        ------
        RoundAborted
            Fewer than ``threshold`` banks advertised keys for the round.
        """
        secure_round = self._evaluation_round(instructions.server_round)
        self._evaluating = secure_round
        run = instructions.run_settings()
        code = None if governance is None else _FINAL_CODE
        self.prepare(secure_round, arrays, run, code=code)
        length = 1 + _evaluation_length(self.score_bins, governance)
        self._rounds[secure_round].expect_length(length, code=code)
        asked = evaluation_parts(instructions, governance, rows)
        return self._inputs_messages(
            secure_round, MessageType.EVALUATE, instructions, arrays, nodes, code=code, parts=asked
        )

    def _inputs_messages(
        self,
        secure_round: int,
        message_type: str,
        instructions: QueryInstructions | RoundInstructions,
        arrays: ArrayRecord | None,
        nodes: Sequence[int],
        *,
        code: FixedPoint | None = None,
        parts: Sequence[MessagePart] = (),
    ) -> list[Message]:
        """Close ``secure_round``'s advertisements; one message per member of U1 in ``nodes``.

        Each carries ``instructions``, ``arrays`` (if any), ``parts`` and the
        secure-aggregation inputs of its bank (U1's keys, the shares sealed for it, the
        round's code).

        Raises
        ------
        RoundAborted
            Fewer than ``threshold`` banks advertised keys for the round.
        """
        try:
            forwards = self._rounds[secure_round].close_advertisements()
        except SecAggAborted as abort:
            raise self._aborted(abort) from None
        messages = []
        for node, forward in forwards.items():
            if node not in nodes:
                continue
            content = RecordDict() if arrays is None else RecordDict({message_keys.ARRAYS: arrays})
            instructions.put(content)
            for part in parts:
                part.put(content)
            secagg.TrainInputs(
                threshold=self.threshold,
                server_round=secure_round,
                forward=encode_forward(forward),
                fixed_point=encode_fixed_point(code or self.code),
            ).put(content)
            messages.append(Message(content, node, message_type))
        return messages

    def check_evaluation(
        self,
        reply: Message,
        instructions: RoundInstructions,
        governance: GovernanceLayout | None = None,
    ) -> Message:
        """``reply`` if it carries a masked evaluation of the round's ring and length."""
        record = record_of(reply.content, message_keys.ARRAYS, ArrayRecord)
        length = 1 + _evaluation_length(self.score_bins, governance)
        code = self._rounds[self._evaluating].code if self._evaluating is not None else self.code
        _masked_vector(record, code, length, node=reply.metadata.src_node_id, what="evaluation")
        return reply

    def sum_evaluations(
        self,
        replies: Sequence[Message],
        instructions: RoundInstructions,
        governance: GovernanceLayout | None = None,
    ) -> SummedEvaluation:
        """Unmask the sum of the masked evaluations ``replies`` carry (one unmask exchange).

        Replies whose masked vector is not of the round's ring and length are left out.
        The governance sums (if asked) are decoded with
        :data:`~privacy.secagg.fixed_point.FINE_FRACTION_BITS` fraction bits.

        Raises
        ------
        RoundAborted
            Fewer than ``threshold`` banks are left at any stage.
        """
        secure_round = self._evaluating
        if secure_round is None:
            raise ValueError("sum_evaluations() needs evaluation_messages() first")
        aggregator = self._rounds[secure_round]
        self._take_masked(aggregator, replies)
        total, _ = self._finish(
            aggregator, instructions, ArrayRecord(), None, secure_round, weight_at=0
        )
        bits = aggregator.code.ring_bits
        split = 1 + _evaluation_length(self.score_bins)
        summary = self._decode_evaluation(total[1:split], ring_bits=bits)
        if governance is None:
            return SummedEvaluation(summary)
        fine = FixedPoint.for_totals(
            participants=len(self.roster), ring_bits=bits, fraction_bits=FINE_FRACTION_BITS
        )
        sums, banks = governance_from_sum(fine.decode_total(total[split:]), governance)
        return SummedEvaluation(summary, governance=sums, governance_banks=banks)

    def _evaluation_round(self, scored_round: int) -> int:
        """The secure round that sums the evaluation of ``scored_round``'s model.

        The round after it, unless that round's keys were already put to use (a run
        stopped mid-round): then the round after the latest one opened.
        """
        following = scored_round + 1
        aggregator = self._rounds.get(following)
        unused = aggregator is None or aggregator.stage is CoordinatorStage.ADVERTISEMENTS
        if unused and all(r <= following for r in self._rounds):
            return following
        return max(self._rounds) + 1

    def _unmask(
        self,
        aggregator: RoundAggregator,
        instructions: RunInstructions,
        server_round: int,
        request: ProtocolUnmaskRequest,
        arrays: ArrayRecord,
        ahead: _KeysAhead | None,
    ) -> None:
        """Ask the survivors for their shares; take every well-formed reveal.

        A reveal is well formed when it holds only shares (of the field, of the right
        length) of banks the request named; any other reveal is dropped, as if its
        sender had not answered. With ``ahead``, the same exchange asks for the next
        round's keys and takes the advertisements that come back.
        """
        query = instructions.query(Task.SECAGG_UNMASK, server_round=server_round)
        survivors = sorted(request.survivors)
        keys = () if ahead is None else (self.advertise_request(ahead.server_round, arrays),)
        messages = []
        for node in survivors:  # each its own request: the dropouts it holds shares of
            asked = secagg.UnmaskRequest(
                server_round=server_round, unmask=encode_unmask(aggregator.request_for(node))
            )
            messages += messages_to([node], MessageType.QUERY, query, asked, *keys)
        if ahead is not None:
            others = [n for n in ahead.members if n in self.roster and n not in survivors]
            advertise = instructions.query(Task.SECAGG_ADVERTISE)
            messages += messages_to(others, MessageType.QUERY, advertise, *keys)
        replies = self._exchange(messages, Stage.UNMASK, server_round)
        for reply in replies:
            if not secagg.Reveal.present(reply.content):
                continue  # dropped out before answering, or not asked to unmask
            node = reply.metadata.src_node_id
            try:
                shares = decode_keys(secagg.Reveal.take(reply.content).reveal, "reveal")
                _check_reveal(shares, request)
                aggregator.add_reveal(node, shares)
            except (MalformedMessage, ValueError) as exc:
                self._drop(node, server_round, f"reveal refused ({exc})")
        if ahead is not None:
            self.collect_advertisements(ahead.server_round, replies)

    @staticmethod
    def _aborted(abort: SecAggAborted) -> RoundAborted:
        return RoundAborted(
            server_round=abort.server_round,
            stage=abort.stage,
            remaining=abort.have,
            required=abort.threshold,
        )


def _check_reveal(shares: Mapping[int, bytes], request: ProtocolUnmaskRequest) -> None:
    """Refuse a reveal holding anything but valid shares of banks the request named."""
    if not set(shares) <= set(request.survivors) | set(request.dropped):
        raise MalformedMessage("a reveal holds shares of banks the request did not name")
    for share in shares.values():
        Share.from_bytes(share)  # ValueError: wrong length, or outside the field
