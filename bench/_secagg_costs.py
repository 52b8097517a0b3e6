"""One secure-aggregation round of N banks in one process: the protocol's own work, counted.

No Flower, no network: the real state machines of :mod:`privacy.secagg.protocol`
(:class:`~privacy.secagg.protocol.Participant`, one per bank, each with its own
Ed25519 signing key on one pinned member list) and
:class:`~privacy.secagg.protocol.RoundAggregator` (the coordinator), driven stage by
stage as :mod:`coordinator.app.secagg_server` and :mod:`participant.guard.secagg_client`
drive them over Flower. What each side did is read from the protocol's own counters
(``Participant.cost(round)``, ``RoundAggregator.cost``); the unmasked sum is checked
against the survivors' plain sum, so a miscounted or broken round cannot pass.

The dropouts leave after advertising their keys and before sending a masked input
(they are in U1, not U2): the case where the coordinator must reconstruct each
dropout's masking key and remove its pairwise masks, its most expensive unmask.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from numpy.typing import NDArray

from participant.guard.settings import SecAggPolicy
from privacy.secagg import FixedPoint, GraphChoice, GraphPlan, SecAggCost
from privacy.secagg.graph import GraphKind
from privacy.secagg.members import Member, MemberList
from privacy.secagg.protocol import Participant, RoundAggregator
from privacy.secagg.signed import Identity

CONSORTIUM = "bench-consortium"
RUN = 1
SERVER_ROUND = 1
COUNTERS = (
    "key_agreements",
    "shares",
    "mask_expansions",
    "signature_verifications",
    "reconstructions",
)
"""The :class:`~privacy.secagg.SecAggCost` fields, in the order the results list them."""


def banks(n: int, policy: SecAggPolicy) -> dict[int, Participant]:
    """``n`` banks ``bank-1`` ... on one pinned member list, node ids 1..n, under ``policy``."""
    names = [f"bank-{i}" for i in range(1, n + 1)]
    keys = {name: Ed25519PrivateKey.generate() for name in names}
    members = MemberList(
        consortium=CONSORTIUM,
        members=tuple(
            Member(name=name, signing_key=key.public_key().public_bytes_raw())
            for name, key in keys.items()
        ),
    )
    return {
        node: Participant(
            node,
            RUN,
            Identity(members=members, member=name, signing_key=keys[name], policy=policy),
        )
        for node, name in enumerate(names, start=1)
    }


def policy_for(graph: str) -> SecAggPolicy:
    """A bank's default policy with ``graph`` (``complete`` or ``sparse``) forced."""
    return SecAggPolicy(graph=GraphChoice(graph))


@dataclass
class RoundCosts:
    """What one round cost each side, and how long its parts took (seconds, wall)."""

    plan: GraphPlan
    dropped: frozenset[int]
    per_bank: dict[int, SecAggCost]
    coordinator: SecAggCost
    seconds: dict[str, float] = field(default_factory=dict)
    max_error: float = 0.0


def _timed(seconds: dict[str, float], stage: str, started: float) -> None:
    seconds[stage] = seconds.get(stage, 0.0) + time.perf_counter() - started


def run_round(
    participants: Mapping[int, Participant],
    *,
    dropped: frozenset[int],
    values: Mapping[int, NDArray[np.float64]],
) -> RoundCosts:
    """One round of ``participants``; those in ``dropped`` leave before masking.

    Raises
    ------
    RuntimeError
        The unmasked mean is not the survivors' plain mean (beyond the code's bound).
    SecAggAborted
        The dropouts leave some bank fewer than ``t`` surviving holders.
    """
    roster = {node: p.enroll() for node, p in participants.items()}
    plan = next(iter(participants.values())).identity.policy.plan(len(roster))
    length = next(iter(values.values())).size + 1
    code = FixedPoint.for_sum(clip=1.0, total_weight=float(len(roster)), participants=len(roster))
    aggregator = RoundAggregator(
        run=RUN,
        server_round=SERVER_ROUND,
        roster=roster,
        threshold=plan.threshold,
        code=code,
        length=length,
        plan=plan,
    )
    degree = None if plan.kind is GraphKind.COMPLETE else plan.degree
    seconds: dict[str, float] = {}
    for node, participant in participants.items():
        started = time.perf_counter()
        advertisement = participant.advertise(SERVER_ROUND, roster, plan.threshold, degree=degree)
        _timed(seconds, "banks_advertise", started)
        if not aggregator.add_advertisement(node, advertisement):
            raise RuntimeError(f"the coordinator discarded bank {node}'s advertisement")
    for node, forward in aggregator.close_advertisements().items():
        started = time.perf_counter()
        participants[node].receive(SERVER_ROUND, forward)
        masked = participants[node].mask(SERVER_ROUND, values[node], 1.0, code)
        _timed(seconds, "banks_receive_and_mask", started)
        if node not in dropped:
            aggregator.add_masked(node, masked)
    survivors = aggregator.close_masked()
    for node in sorted(survivors):
        started = time.perf_counter()
        signature = participants[node].sign_survivors(SERVER_ROUND, survivors)
        _timed(seconds, "banks_sign_survivors", started)
        aggregator.add_survivor_signature(node, signature)
    aggregator.close_consistency()
    for node in sorted(survivors):
        request = aggregator.request_for(node)
        started = time.perf_counter()
        shares = participants[node].unmask(SERVER_ROUND, request)
        _timed(seconds, "banks_unmask", started)
        aggregator.add_reveal(node, shares)
    started = time.perf_counter()
    total, _ = aggregator.finish()
    _timed(seconds, "coordinator_unmask", started)
    mean = code.decode_mean(total[:-1], total[-1])
    plain = np.mean([values[node] for node in sorted(survivors)], axis=0)
    error = float(np.max(np.abs(mean - plain)))
    bound = code.mean_error_bound(total_weight=float(len(survivors)), participants=len(survivors))
    if error > bound:
        raise RuntimeError(f"the unmasked mean is off by {error:g} (bound {bound:g})")
    return RoundCosts(
        plan=plan,
        dropped=dropped,
        per_bank={node: p.cost(SERVER_ROUND) for node, p in participants.items()},
        coordinator=aggregator.cost,
        seconds=seconds,
        max_error=error,
    )


def draw_round_inputs(
    n: int, *, dropout_rate: float, params: int, seed: int
) -> tuple[frozenset[int], dict[int, NDArray[np.float64]]]:
    """``floor(dropout_rate * n)`` dropouts among nodes 1..n and each bank's vector.

    Benchmark inputs, not secrets: a seeded NumPy generator (the masks and keys come
    from the OS CSPRNG inside the protocol).
    """
    rng = np.random.default_rng(seed)
    count = int(dropout_rate * n + 1e-9)
    dropped = frozenset(int(node) for node in rng.choice(np.arange(1, n + 1), count, replace=False))
    values = {node: rng.uniform(-1.0, 1.0, params) for node in range(1, n + 1)}
    return dropped, values


def summary(costs: RoundCosts) -> dict[str, object]:
    """A round's counts for the results file: per bank (min, mean, max over the
    survivors and over the dropouts, by counter) and the coordinator's."""
    groups = {
        "survivors": [c for node, c in costs.per_bank.items() if node not in costs.dropped],
        "dropped": [c for node, c in costs.per_bank.items() if node in costs.dropped],
    }
    per_bank: dict[str, object] = {}
    for group, members in groups.items():
        if not members:
            continue
        per_bank[group] = {
            name: {
                "min": min(getattr(c, name) for c in members),
                "mean": round(float(np.mean([getattr(c, name) for c in members])), 2),
                "max": max(getattr(c, name) for c in members),
            }
            for name in COUNTERS
        }
    return {
        "per_bank": per_bank,
        "coordinator": {name: getattr(costs.coordinator, name) for name in COUNTERS},
    }
