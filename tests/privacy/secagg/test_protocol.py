"""The secure aggregation protocol: exact sums under dropouts, uniform masks, refusals."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from participant.guard.settings import SecAggPolicy
from privacy.secagg.fixed_point import FixedPoint
from privacy.secagg.graph import CommunicationGraph, GraphKind
from privacy.secagg.primitives import ShareRejected, expand_mask
from privacy.secagg.protocol import (
    Forward,
    Participant,
    RoundAggregator,
    SecAggAborted,
    StageError,
    UnmaskRefused,
    UnmaskRequest,
    default_threshold,
)
from privacy.secagg.signed import RosterEntry
from tests.support.secagg import GRAPHS, consortium

RUN = 7
CODE = FixedPoint(clip=16.0, fraction_bits=12, ring_bits=32)
# Stages at which a participant may drop out of a round.
STAGES = ("stays", "advertise", "mask", "sign", "unmask")


def _round(
    participants: dict[int, Participant],
    values: dict[int, NDArray[np.float64]],
    weights: dict[int, float],
    drops: dict[int, str],
    *,
    server_round: int = 1,
    code: FixedPoint = CODE,
) -> tuple[NDArray[np.float64], frozenset[int]]:
    """Run one round in memory; a participant leaves at its stage in ``drops``."""
    roster = {pid: p.enroll() for pid, p in participants.items()}
    plan = next(iter(participants.values())).identity.policy.plan(len(roster))
    length = next(iter(values.values())).size + 1
    aggregator = RoundAggregator(
        run=RUN,
        server_round=server_round,
        roster=roster,
        threshold=plan.threshold,
        code=code,
        length=length,
        plan=plan,
    )
    degree = None if plan.kind is GraphKind.COMPLETE else plan.degree
    for pid, participant in participants.items():
        advertisement = participant.advertise(server_round, roster, plan.threshold, degree=degree)
        if drops.get(pid) != "advertise":
            assert aggregator.add_advertisement(pid, advertisement)
    forwards = aggregator.close_advertisements()
    for pid, forward in forwards.items():
        participants[pid].receive(server_round, forward)
        masked = participants[pid].mask(server_round, values[pid], weights[pid], code)
        if drops.get(pid) != "mask":
            aggregator.add_masked(pid, masked)
    survivors = aggregator.close_masked()
    for pid in sorted(survivors):
        signature = participants[pid].sign_survivors(server_round, survivors)
        if drops.get(pid) != "sign":
            aggregator.add_survivor_signature(pid, signature)
    request = aggregator.close_consistency()
    for pid in sorted(request.survivors):
        shares = participants[pid].unmask(server_round, aggregator.request_for(pid))
        if drops.get(pid) != "unmask":
            aggregator.add_reveal(pid, shares)
    total, survivors = aggregator.finish()
    return code.decode_mean(total[:-1], total[-1]), frozenset(survivors)


def _participants(n: int, policy: SecAggPolicy | None = None) -> dict[int, Participant]:
    return consortium(n, run=RUN, policy=policy).participants


def _recoverable(graph: CommunicationGraph, drops: dict[int, str]) -> bool:
    """Whether a round with ``drops`` must finish: every stage keeps ``t`` of every
    owner's holders (and the sparse graph's survivor minimum); else it fails closed."""
    plan, ids = graph.plan, sorted(graph.neighbours)
    advertised = {pid for pid in ids if drops[pid] != "advertise"}
    masked = {pid for pid in advertised if drops[pid] != "mask"}
    signed = {pid for pid in masked if drops[pid] != "sign"}  # its signature is lost
    revealed = {pid for pid in masked if drops[pid] != "unmask"}
    if len(masked) < plan.min_survivors:
        return False
    stages = (advertised, masked, signed, revealed)
    return all(
        len(stage & graph.holders(owner)) >= plan.threshold
        for owner in advertised
        for stage in stages
    )


@pytest.mark.parametrize(
    ("graph", "sizes"), [("complete", (3, 7)), ("sparse", (9, 12))], ids=["complete", "sparse"]
)
@settings(max_examples=40, deadline=None)
@given(
    data=st.data(),
    length=st.integers(1, 24),
    seed=st.integers(0, 2**32 - 1),
)
def test_unmasked_sum_is_the_survivors_weighted_mean(
    graph: str, sizes: tuple[int, int], data: st.DataObject, length: int, seed: int
) -> None:
    """For any dropout set: the survivors' exact mean when every owner keeps ``t``
    holders at every stage (and, sparse, the survivor minimum); else an abort."""
    n = data.draw(st.integers(*sizes), label="n")
    participants = _participants(n, GRAPHS[graph])
    # Few dropouts on the sparse graph (its bound is 2-3), so that most rounds finish.
    weights_of_stages = STAGES if graph == "complete" else ("stays",) * 8 + STAGES[1:]
    stages = data.draw(st.lists(st.sampled_from(weights_of_stages), min_size=n, max_size=n))
    rng = np.random.default_rng(seed)  # test data only; masks come from the protocol
    values = {pid: rng.uniform(-20, 20, size=length) for pid in participants}
    weights = {pid: float(rng.integers(1, 5_000)) for pid in participants}
    drops = dict(zip(participants, stages, strict=True))
    roster = {pid: p.enroll() for pid, p in participants.items()}
    plan = GRAPHS[graph].plan(n)
    assert (plan.kind is GraphKind.SPARSE) == (graph == "sparse")
    aggregator = RoundAggregator(
        run=RUN,
        server_round=1,
        roster=roster,
        threshold=plan.threshold,
        code=CODE,
        length=2,
        plan=plan,
    )
    if not _recoverable(aggregator.graph, drops):
        with pytest.raises(SecAggAborted, match="the global model is unchanged"):
            _round(participants, values, weights, drops)
        return
    mean, survivors = _round(participants, values, weights, drops)
    masked = [pid for pid in participants if drops[pid] not in ("advertise", "mask")]
    assert survivors == frozenset(masked)
    total_weight = sum(weights[pid] for pid in masked)
    exact = sum(weights[pid] * np.clip(values[pid], -16, 16) for pid in masked) / total_weight
    bound = CODE.mean_error_bound(total_weight=total_weight, participants=len(masked))
    assert np.max(np.abs(mean - exact)) <= bound + 1e-12


def test_state_survives_serialization_between_messages() -> None:
    participants = _participants(4)
    values = {pid: np.full(5, float(i)) for i, pid in enumerate(participants)}
    weights = dict.fromkeys(participants, 10.0)
    # A deployed ClientApp is a new process per message: rebuild every participant.
    reloaded = {
        pid: Participant.from_bytes(p.to_bytes(), p.identity) for pid, p in participants.items()
    }
    mean, _ = _round(reloaded, values, weights, {})
    np.testing.assert_allclose(mean, np.full(5, 1.5), atol=1e-3)


def _masked_vector(values: NDArray[np.float64]) -> NDArray[np.unsignedinteger]:
    participants = _participants(3)
    roster = {pid: p.enroll() for pid, p in participants.items()}
    aggregator = RoundAggregator(
        run=RUN, server_round=1, roster=roster, threshold=3, code=CODE, length=values.size + 1
    )
    for pid, participant in participants.items():
        aggregator.add_advertisement(pid, participant.advertise(1, roster, 3))
    forwards = aggregator.close_advertisements()
    first = next(iter(participants))
    participants[first].receive(1, forwards[first])
    return participants[first].mask(1, values, 1.0, CODE)[:-1]


def _chi_square_top_byte(words: NDArray[np.unsignedinteger]) -> float:
    counts = np.bincount((words.astype(np.uint64) >> np.uint64(24)).astype(np.int64), minlength=256)
    expected = words.size / 256
    return float(((counts - expected) ** 2 / expected).sum())


@pytest.mark.parametrize("pattern", ["zeros", "ramp"])
def test_masked_vectors_are_uniform_and_unrelated_to_the_input(pattern: str) -> None:
    n = 200_000
    values = np.zeros(n) if pattern == "zeros" else np.linspace(-16, 16, n)
    masked = _masked_vector(values)
    # 255 degrees of freedom: the 0.999 quantile of chi-square is 330.5.
    assert _chi_square_top_byte(masked) < 330.5
    low_byte = np.bincount((masked & np.uint32(0xFF)).astype(np.int64), minlength=256)
    assert float(((low_byte - n / 256) ** 2 / (n / 256)).sum()) < 330.5
    correlation = np.corrcoef(np.linspace(-16, 16, n), masked.astype(np.float64))[0, 1]
    assert abs(correlation) < 0.02


def test_a_one_bit_key_change_changes_the_whole_mask() -> None:
    key = bytearray(range(32))
    first = expand_mask(bytes(key), 50_000, ring_bits=32)
    key[17] ^= 0x04
    second = expand_mask(bytes(key), 50_000, ring_bits=32)
    assert np.mean(first == second) < 0.001
    differing = np.unpackbits((first ^ second).view(np.uint8)).mean()
    assert 0.49 < differing < 0.51


def _setup(
    n: int = 4,
) -> tuple[dict[int, Participant], dict[int, RosterEntry], dict[int, Forward]]:
    participants = _participants(n)
    roster = {pid: p.enroll() for pid, p in participants.items()}
    threshold = default_threshold(n)
    aggregator = RoundAggregator(
        run=RUN, server_round=1, roster=roster, threshold=threshold, code=CODE, length=4
    )
    for pid, participant in participants.items():
        aggregator.add_advertisement(pid, participant.advertise(1, roster, threshold))
    return participants, roster, aggregator.close_advertisements()


def test_a_tampered_share_is_rejected() -> None:
    participants, _roster, forwards = _setup()
    me, other = list(participants)[:2]
    sealed = dict(forwards[me].sealed)
    flipped = bytearray(sealed[other])
    flipped[20] ^= 0x01
    sealed[other] = bytes(flipped)
    with pytest.raises(ShareRejected, match="failed authentication"):
        participants[me].receive(1, replace(forwards[me], sealed=sealed))


def test_a_share_replayed_from_another_round_is_rejected() -> None:
    participants, roster, old = _setup()
    me = next(iter(participants))
    for participant in participants.values():
        participant.advertise(2, roster, default_threshold(len(roster)))
    # The round-1 advertisements' signatures do not cover round 2: refused first.
    with pytest.raises(ValueError, match=r"round 2.*not signed by that member"):
        participants[me].receive(2, old[me])


def test_a_share_moved_to_another_receiver_is_rejected() -> None:
    participants, _roster, forwards = _setup()
    me, other = list(participants)[:2]
    stolen = replace(forwards[me], sealed=dict(forwards[other].sealed))
    with pytest.raises(ShareRejected):
        participants[me].receive(1, stolen)


def test_illegal_transitions_name_expected_and_actual_stage() -> None:
    participants, roster, _ = _setup()
    me = next(iter(participants))
    with pytest.raises(StageError, match="expected stage 'shares received', got 'advertised'"):
        participants[me].mask(1, np.zeros(3), 1.0, CODE)
    aggregator = RoundAggregator(
        run=RUN, server_round=1, roster=roster, threshold=3, code=CODE, length=4
    )
    with pytest.raises(
        StageError, match="expected stage 'collecting masked inputs', got 'collecting adv"
    ):
        aggregator.close_masked()


def test_a_request_for_both_shares_of_one_participant_is_refused() -> None:
    participants, _roster, forwards = _setup()
    ids = list(participants)
    me, victim = ids[0], ids[1]
    participants[me].receive(1, forwards[me])
    participants[me].mask(1, np.zeros(3), 1.0, CODE)
    participants[me].sign_survivors(1, frozenset(participants))
    request = UnmaskRequest(survivors=frozenset({me, victim}), dropped=frozenset({victim}))
    with pytest.raises(UnmaskRefused, match="both the self-mask share and the masking-key share"):
        participants[me].unmask(1, request)


def test_a_request_below_the_threshold_is_refused() -> None:
    participants, _roster, forwards = _setup()
    me = next(iter(participants))
    participants[me].receive(1, forwards[me])
    participants[me].mask(1, np.zeros(3), 1.0, CODE)
    with pytest.raises(UnmaskRefused, match="below the threshold"):
        participants[me].sign_survivors(1, frozenset({me}))


def test_ring_headroom_edges() -> None:
    code = FixedPoint.for_sum(clip=16.0, total_weight=24_000, participants=5, ring_bits=32)
    assert code.fraction_bits == 12  # 24,000 x 16 x 2^12 = 2^30.55 < 2^31
    code.check_headroom(total_weight=24_000, participants=5)
    with pytest.raises(ValueError, match="overflow"):
        code.check_headroom(total_weight=2 * 24_000, participants=5)
    # The extreme sum itself decodes exactly: five banks all at +clip and all at -clip.
    for sign in (1.0, -1.0):
        total = np.zeros(2, dtype=np.uint32)
        for _ in range(5):
            total += np.append(
                code.encode(np.array([sign * 16.0]), 4_800), code.encode_weight(4_800)
            )
        assert code.decode_mean(total[:-1], total[-1])[0] == pytest.approx(sign * 16.0)
    with pytest.raises(ValueError, match="no fixed-point code"):
        FixedPoint.for_sum(clip=16.0, total_weight=2.0**28, participants=5, ring_bits=32)


@pytest.mark.parametrize(("graph", "n"), [("complete", 7), ("sparse", 12)])
def test_cost_counters_count_each_banks_holders_and_the_coordinators_unmask_work(
    graph: str, n: int
) -> None:
    """A bank's work is a function of its k + 1 holders, not of N; the coordinator
    reconstructs one secret per member of U1 and expands one mask per survivor, plus one
    per survivor neighbour of a dropout."""
    participants = _participants(n, GRAPHS[graph])
    roster = {pid: p.enroll() for pid, p in participants.items()}
    plan = GRAPHS[graph].plan(n)
    degree = None if plan.kind is GraphKind.COMPLETE else plan.degree
    aggregator = RoundAggregator(
        run=RUN,
        server_round=1,
        roster=roster,
        threshold=plan.threshold,
        code=CODE,
        length=4,
        plan=plan,
    )
    for pid, participant in participants.items():
        aggregator.add_advertisement(
            pid, participant.advertise(1, roster, plan.threshold, degree=degree)
        )
    dropped = min(participants)
    for pid, forward in aggregator.close_advertisements().items():
        participants[pid].receive(1, forward)
        masked = participants[pid].mask(1, np.zeros(3), 1.0, CODE)
        if pid != dropped:
            aggregator.add_masked(pid, masked)
    survivors = aggregator.close_masked()
    for pid in sorted(survivors):
        aggregator.add_survivor_signature(pid, participants[pid].sign_survivors(1, survivors))
    aggregator.close_consistency()
    for pid in sorted(survivors):
        aggregator.add_reveal(pid, participants[pid].unmask(1, aggregator.request_for(pid)))
    aggregator.finish()

    holders = plan.degree + 1
    for pid in survivors:
        cost = participants[pid].cost(1)
        assert (cost.key_agreements, cost.shares, cost.mask_expansions) == (
            3 * holders - 1,
            4 * holders,
            holders,
        )
        assert holders <= cost.signature_verifications <= holders + min(n, 2 * plan.degree + 1)
    assert aggregator.cost.reconstructions == n
    assert aggregator.cost.mask_expansions == (n - 1) + plan.degree
    assert aggregator.cost.key_agreements == plan.degree
