"""A malicious coordinator against SecAgg+'s sparse graph (issue 17, item 4).

On the sparse graph a bank pairs masks and shares secrets with its neighbours only,
so a coordinator that chose the neighbours, or could make a bank believe another
graph, would pick colluders as a victim's neighbours and open its secrets with few
of them. Each test plays one attack with the protocol's classes and asserts that the
honest bank refuses before anything of the victim's is revealed: the bank computes
the graph itself from the signed roster and takes no graph, neighbour list or
survivor set from the coordinator that breaks the graph's bounds.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

import pytest

from participant.guard.settings import SecAggPolicy
from privacy.secagg.graph import CommunicationGraph, GraphKind, graph_seed
from privacy.secagg.protocol import Forward, ParticipantStage, UnmaskRefused, UnmaskRequest
from privacy.secagg.signed import RosterRefused, SignatureRefused
from tests.adversary.test_secagg_attacks import ROUND, RUN, _differs, _Round


def test_coordinator_claiming_another_graph_is_refused() -> None:
    """The coordinator proposes a smaller degree (fewer holders: t of them are easier to
    collude), or the complete graph's: the bank's own plan differs and it generates no
    key."""
    attack = _Round(10, "sparse")
    victim = attack.ids[0]
    assert attack.degree == 6
    for claimed in (4, 9):
        with pytest.raises(RosterRefused, match=rf"a graph of degree {claimed} is not the bank's"):
            attack.banks[victim].advertise(ROUND, attack.roster, attack.threshold, degree=claimed)
    assert attack.banks[victim].stage(ROUND) is ParticipantStage.NONE


def test_coordinator_forwarding_a_fake_neighbour_list_is_refused() -> None:
    """The coordinator relays to the victim the keys of banks that are not its neighbours
    (a neighbour list of its choosing): refused before any share is opened or mask
    made; the victim's graph is its own computation."""
    attack = _Round(10, "sparse")
    forwards = attack.advertise()
    victim = attack.ids[0]
    graph = attack.aggregator.graph
    strangers = [node for node in attack.ids if node not in graph.holders(victim)]
    assert strangers  # a sparse graph: 3 of 10 banks are not the victim's neighbours
    fake = dict(forwards[victim].mask_publics)
    fake[strangers[0]] = attack.advertisements[strangers[0]].mask_public

    with pytest.raises(ValueError, match=r"not of this bank's neighbours in the graph it computed"):
        attack.banks[victim].receive(ROUND, replace(forwards[victim], mask_publics=fake))

    assert attack.banks[victim].stage(ROUND) is ParticipantStage.ADVERTISED
    assert _differs(attack.masked.get(victim), 0)


def test_coordinator_showing_banks_two_rosters_is_refused() -> None:
    """The coordinator shows the other banks a roster without one member (another seed,
    another graph) and the victim the full one. The others' keys are signed for their
    graph's digest: the victim refuses them (a claim that differs from its own graph)."""
    attack = _Round(11, "sparse")
    victim, left_out = attack.ids[0], attack.ids[-1]
    smaller = {node: entry for node, entry in attack.roster.items() if node != left_out}
    plan = attack.members.participants[victim].identity.policy.plan(len(smaller))
    others = {
        node: bank.advertise(ROUND, smaller, plan.threshold, degree=plan.degree)
        for node, bank in attack.banks.items()
        if node not in (victim, left_out)
    }
    own = attack.banks[victim].advertise(
        ROUND, attack.roster, attack.threshold, degree=attack.degree
    )
    graph = attack.aggregator.graph
    holders = sorted(graph.holders(victim) - {victim, left_out})
    forged = Forward(
        mask_publics={victim: own.mask_public} | {n: others[n].mask_public for n in holders},
        sealed={victim: own.sealed[victim]}
        | {n: others[n].sealed.get(victim, b"") for n in holders},
        signatures={victim: own.signature} | {n: others[n].signature for n in holders},
    )
    with pytest.raises(SignatureRefused, match="is not signed by that member"):
        attack.banks[victim].receive(ROUND, forged)
    assert attack.banks[victim].stage(ROUND) is ParticipantStage.ADVERTISED


def test_coordinator_asking_for_shares_of_a_non_neighbour_is_refused() -> None:
    """An unmask request that names as dropped a bank outside the victim's holders (the
    coordinator fishing for shares it has no right to): refused as a whole."""
    attack = _Round(10, "sparse")
    attack.mask_all(attack.advertise())
    node = attack.ids[0]
    everyone = frozenset(attack.ids)
    stranger = next(n for n in attack.ids if n not in attack.aggregator.graph.holders(node))
    signatures = attack.signatures(everyone - {stranger}, sorted(everyone - {stranger}))
    request = UnmaskRequest(
        survivors=everyone - {stranger}, dropped=frozenset({stranger}), signatures=signatures
    )
    with pytest.raises(UnmaskRefused, match=r"not neighbours of this participant"):
        attack.banks[node].unmask(ROUND, request)


def test_coordinator_claiming_dropouts_to_unmask_a_target_is_refused() -> None:
    """To read the victim's input the coordinator needs its self-mask seed (it survives)
    and the masking keys of all its neighbours (they 'dropped'). It claims every
    neighbour dropped: the survivor set is below the graph's survivor minimum and the
    victim keeps fewer than t surviving holders; no honest bank signs it, so no share is
    revealed. Within the bounds (at most floor(delta N) claimed dropouts) the victim
    keeps t - 1 >= 3 surviving neighbours whose masks the coordinator cannot remove."""
    attack = _Round(12, "sparse")
    attack.mask_all(attack.advertise())
    victim = attack.ids[0]
    graph = attack.aggregator.graph
    neighbours = graph.neighbours[victim]
    claimed = frozenset(attack.ids) - neighbours
    for node in sorted(claimed):
        with pytest.raises(UnmaskRefused, match=r"below the \d+ the sparse graph was built for"):
            attack.banks[node].sign_survivors(ROUND, claimed)
    allowed = attack.plan.banks - attack.plan.min_survivors
    assert allowed < len(neighbours) - (attack.threshold - 2)  # the bound leaves t - 1 neighbours
    within = frozenset(attack.ids) - frozenset(sorted(neighbours)[:allowed])
    assert len(within & neighbours) >= attack.threshold - 1 >= 3


def test_grinding_rosters_does_not_give_a_victim_enough_colluding_holders() -> None:
    """The coordinator drops members from the roster, trying 400 rosters (each another
    graph) to give the victim the most colluding holders. At the default parameters
    for 150 banks, 7 colluders (5 %), it never reaches 2t - k - 1, the count that would
    let two survivor sets both be certified for the victim (what opening both of its
    secrets needs); each roster's graph is fixed by the roster's hash."""
    policy = SecAggPolicy()
    plan = policy.plan(150)
    assert plan.kind is GraphKind.SPARSE
    danger = 2 * plan.threshold - plan.degree - 1
    ids = list(range(1, 151))
    victim, colluders = ids[0], set(ids[1:8])
    enrollments = {node: hashlib.sha256(node.to_bytes(8, "big")).digest() for node in ids}
    best = 0
    for attempt in range(400):
        dropped = {ids[8 + (attempt * 7 + j) % 142] for j in range(attempt % 3)}
        roster = [node for node in ids if node not in dropped]
        seed = graph_seed(run=RUN, enrollments={node: enrollments[node] for node in roster})
        graph = CommunicationGraph.build(policy.plan(len(roster)), roster, seed)
        best = max(best, len(graph.holders(victim) & colluders))
    assert best < danger
