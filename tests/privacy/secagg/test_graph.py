"""The communication graph: Harary-graph properties and SecAgg+'s parameter bounds."""

from __future__ import annotations

import math
from collections import deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privacy.secagg.graph import (
    SPARSE_ABOVE,
    CommunicationGraph,
    GraphChoice,
    GraphKind,
    GraphPlan,
    graph_seed,
    harary_neighbours,
    harary_parameters,
    plan_graph,
)
from tests.support.secagg import node_ids

# The authors' reference values (Google's federated-compute,
# fcp/secagg/server/graph_parameter_finder_test.cc: semi-malicious server, 40 security
# and 20 correctness bits, shares to the k neighbours only): banks, gamma, delta -> k, t.
AUTHORS = [
    (10, 0.05, 0.33, 8, 5),
    (100, 0.3, 0.3, 92, 62),
    (100, 0.05, 0.33, 72, 39),
    (100, 0.33, 0.05, 42, 37),
    (1000, 0.3, 0.3, 872, 584),
    (1000, 0.05, 0.33, 398, 223),
    (1000, 0.33, 0.05, 132, 109),
    (10000, 0.05, 0.33, 746, 420),
    (10000, 0.33, 0.05, 178, 146),
]


@pytest.mark.parametrize(("banks", "gamma", "delta", "degree", "threshold"), AUTHORS)
def test_parameters_reproduce_the_authors_values(
    banks: int, gamma: float, delta: float, degree: int, threshold: int
) -> None:
    plan = harary_parameters(
        banks,
        corruption_rate=gamma,
        dropout_rate=delta,
        security_bits=40,
        correctness_bits=20,
        owner_holds_share=False,
    )
    assert (plan.degree, plan.threshold) == (degree, threshold)
    assert plan.min_survivors == banks - math.floor(delta * banks + 1e-12)


def _log_hypergeom_tail_above(total: int, marked: int, draws: int, c: int) -> float:
    """log P[X > c] by exact integer sums (math.comb), independent of the module's code."""
    tail = sum(
        math.comb(marked, x) * math.comb(total - marked, draws - x) for x in range(c + 1, draws + 1)
    )
    return math.log(tail) - math.log(math.comb(total, draws)) if tail else -math.inf


def _log_hypergeom_below(total: int, marked: int, draws: int, t: int) -> float:
    """log P[X < t] by exact integer sums."""
    head = sum(math.comb(marked, x) * math.comb(total - marked, draws - x) for x in range(t))
    return math.log(head) - math.log(math.comb(total, draws)) if head else -math.inf


def _exact_threshold(banks: int, degree: int, corrupt: int, dropped: int) -> int | None:
    """Rules 1-3 of ``harary_parameters`` (sigma 80, eta 20) in exact integer arithmetic."""
    security = -81 * math.log(2)
    removed = corrupt + dropped
    if degree <= removed:
        gaps = banks * (banks - degree - 1) // 2
        ratio = math.perm(removed, degree) / math.perm(banks, degree)
        if math.log(gaps) + math.log(ratio) >= security:
            return None
    bound = next(
        c
        for c in range(degree + 1)
        if _log_hypergeom_tail_above(banks, corrupt, degree, c) <= security - math.log(banks)
    )
    threshold = max(2, (degree + 1 + bound) // 2 + 1)
    below = _log_hypergeom_below(banks, banks - dropped, degree, threshold)
    if threshold > degree + 1 or below > -20 * math.log(2) - math.log(banks):
        return None
    return threshold


@pytest.mark.parametrize(("banks", "gamma", "delta"), [(300, 0.05, 0.1), (1000, 0.1, 0.1)])
def test_the_chosen_degree_is_the_least_that_meets_the_bounds_in_exact_arithmetic(
    banks: int, gamma: float, delta: float
) -> None:
    plan = harary_parameters(banks, corruption_rate=gamma, dropout_rate=delta)
    corrupt, dropped = math.floor(gamma * banks), math.floor(delta * banks)
    assert _exact_threshold(banks, plan.degree, corrupt, dropped) == plan.threshold
    assert all(
        _exact_threshold(banks, smaller, corrupt, dropped) is None
        for smaller in range(2, plan.degree, 2)
    )
    # at t, two survivor sets signed by t of k + 1 holders share 2t - k - 1 signers
    assert 2 * plan.threshold - plan.degree - 1 > 0


def test_degree_grows_like_log_n() -> None:
    degrees = {n: harary_parameters(n).degree for n in (300, 1_000, 3_000, 10_000)}
    assert degrees[300] < degrees[1_000] < degrees[3_000] < degrees[10_000]
    # tenfold more banks add a constant, not a factor: log-like growth
    assert degrees[10_000] - degrees[1_000] < degrees[1_000] / 2
    assert degrees[10_000] < 0.02 * 10_000


def test_auto_picks_the_sparse_graph_above_the_constant_only() -> None:
    at, above = (
        plan_graph(n, choice=GraphChoice.AUTO, complete_threshold=n)
        for n in (SPARSE_ABOVE, SPARSE_ABOVE + 1)
    )
    assert at.kind is GraphKind.COMPLETE and at.degree == SPARSE_ABOVE - 1
    assert above.kind is GraphKind.SPARSE and above.degree < SPARSE_ABOVE / 2
    forced = plan_graph(20, choice=GraphChoice.COMPLETE, complete_threshold=14)
    assert forced == GraphPlan.complete(20, 14)
    with pytest.raises(ValueError, match="no sparse graph of 20 banks"):
        plan_graph(
            20,
            choice=GraphChoice.SPARSE,
            complete_threshold=14,
            corruption_rate=0.3,
            dropout_rate=0.3,
        )
    # auto falls back to the complete graph (the stronger guarantee), never fails
    high = plan_graph(
        200,
        choice=GraphChoice.AUTO,
        complete_threshold=134,
        corruption_rate=0.45,
        dropout_rate=0.45,
    )
    assert high == GraphPlan.complete(200, 134)


def _connected(neighbours: dict[int, frozenset[int]]) -> bool:
    start = next(iter(neighbours))
    seen, queue = {start}, deque([start])
    while queue:
        for other in neighbours[queue.popleft()] - seen:
            seen.add(other)
            queue.append(other)
    return len(seen) == len(neighbours)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(5, 80), half=st.integers(1, 6), seed=st.binary(min_size=32, max_size=32))
def test_harary_graphs_are_regular_symmetric_connected_and_deterministic(
    n: int, half: int, seed: bytes
) -> None:
    degree = 2 * half
    if degree >= n:
        return
    ids = node_ids(n)
    neighbours = harary_neighbours(ids, degree, seed)
    assert set(neighbours) == set(ids)
    assert all(len(near) == degree and node not in near for node, near in neighbours.items())
    assert all(node in neighbours[other] for node, near in neighbours.items() for other in near)
    assert _connected(neighbours)
    assert harary_neighbours(list(reversed(ids)), degree, seed) == neighbours


def test_another_roster_or_seed_gives_another_graph() -> None:
    ids = node_ids(40)
    enrollments = {node: node.to_bytes(8, "big") * 4 for node in ids}
    seed = graph_seed(run=7, enrollments=enrollments)
    assert seed == graph_seed(run=7, enrollments=dict(reversed(list(enrollments.items()))))
    fewer = graph_seed(run=7, enrollments={k: v for k, v in enrollments.items() if k != ids[0]})
    assert len({seed, fewer, graph_seed(run=8, enrollments=enrollments)}) == 3
    plan = GraphPlan(GraphKind.SPARSE, 40, 6, 4, 36)
    first, second = (CommunicationGraph.build(plan, ids, s) for s in (seed, bytes(32)))
    assert first.neighbours != second.neighbours and first.digest != second.digest
    assert first.holders(ids[0]) == first.neighbours[ids[0]] | {ids[0]}
