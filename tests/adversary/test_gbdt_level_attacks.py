"""A malicious coordinator lying about dropouts in a boosting level's secure sum.

A level's histograms are related to the levels before: the parent's histogram minus
one child's is the other child's, and a tree's root counts repeat from tree to tree.
If the coordinator obtained one level summed over every bank and another over every
bank but one (by claiming that bank dropped out), the difference would be that bank's
histograms. So a bank masks its histograms ``whole_roster``: it signs no survivor set,
and so unmasks for none, but the whole roster. The same claim against an SGD update
(masked without it) is signed, as the protocol allows dropouts there.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from coordinator.app.secagg_server import SecureAggregation
from coordinator.errors import RoundAborted, RoundFailed
from credit.run_config import RunConfig
from privacy.gbdt_histogram import HISTOGRAM_CODE
from privacy.secagg.graph import GraphKind
from privacy.secagg.protocol import (
    Participant,
    ParticipantStage,
    RoundAggregator,
    UnmaskRefused,
)
from simulations.engine import plan_simulation
from tests.support.consortium import consortium_grid, run_in_process
from tests.support.secagg import GRAPHS, consortium

RUN, ROUND, WORDS = 9, 1, 12
BANKS = {"complete": 4, "sparse": 10}


def _masked_level(graph: str, *, whole_roster: bool) -> tuple[dict[int, Participant], list[int]]:
    """Every bank of a level advertised, received its keys and masked its histograms."""
    policy = GRAPHS[graph]
    members = consortium(BANKS[graph], run=RUN, policy=policy)
    banks, roster, plan = members.participants, members.roster(), policy.plan(BANKS[graph])
    degree = None if plan.kind is GraphKind.COMPLETE else plan.degree
    aggregator = RoundAggregator(
        run=RUN,
        server_round=ROUND,
        roster=roster,
        threshold=plan.threshold,
        code=HISTOGRAM_CODE,
        length=WORDS + 1,
        plan=plan,
    )
    for node, bank in banks.items():
        aggregator.add_advertisement(
            node, bank.advertise(ROUND, roster, plan.threshold, degree=degree)
        )
    for node, forward in aggregator.close_advertisements().items():
        banks[node].receive(ROUND, forward)
        words = np.arange(WORDS, dtype=np.uint64) * np.uint64(node % 97 + 1)
        banks[node].mask(
            ROUND, np.zeros(0), 0.0, HISTOGRAM_CODE, extra=words, whole_roster=whole_roster
        )
    return banks, sorted(banks)


@pytest.mark.parametrize("graph", ["complete", "sparse"])
def test_claiming_a_dropout_in_a_boosting_level_is_refused_by_every_honest_bank(
    graph: str,
) -> None:
    banks, ids = _masked_level(graph, whole_roster=True)
    victim = ids[0]
    claimed = frozenset(ids) - {victim}

    for node in sorted(claimed):
        with pytest.raises(
            UnmaskRefused, match=rf"whole roster; the survivor set leaves out \[{victim}\]"
        ):
            banks[node].sign_survivors(ROUND, claimed)
        assert banks[node].stage(ROUND) is ParticipantStage.MASKED  # nothing signed

    everyone = frozenset(ids)
    assert all(banks[node].sign_survivors(ROUND, everyone) for node in ids)


@pytest.mark.parametrize("graph", ["complete", "sparse"])
def test_the_same_claim_against_an_input_masked_without_the_rule_is_signed(graph: str) -> None:
    banks, ids = _masked_level(graph, whole_roster=False)
    claimed = frozenset(ids) - {ids[0]}

    assert all(banks[node].sign_survivors(ROUND, claimed) for node in sorted(claimed))


def test_the_rule_survives_the_bank_s_saved_state() -> None:
    """A guard serving each message in a fresh process keeps the rule in its saved state."""
    banks, ids = _masked_level("complete", whole_roster=True)
    bank = banks[ids[1]]
    restored = Participant.from_bytes(bank.to_bytes(), bank.identity)

    with pytest.raises(UnmaskRefused, match="whole roster"):
        restored.sign_survivors(ROUND, frozenset(ids) - {ids[0]})


def test_a_coordinator_dropping_one_bank_s_masked_level_gets_no_sum(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The real banks' guards over Flower messages (the fake Grid): a coordinator whose
    code leaves one bank's masked histograms out of a level's secure sum, as if that
    bank had dropped out, gets no sum: every honest bank refuses the survivor set."""
    obtained: list[frozenset[int]] = []
    refused: list[str] = []
    honest_sum_words = SecureAggregation.sum_words

    def drop_one_bank(self: SecureAggregation, replies: list[Any], *args: Any, **kw: Any) -> Any:
        victim = min(reply.metadata.src_node_id for reply in replies)
        kept = [reply for reply in replies if reply.metadata.src_node_id != victim]
        try:
            total, survivors = honest_sum_words(self, kept, *args, **kw)
        except RoundAborted as abort:
            refused.append(str(abort))
            raise
        obtained.append(survivors)
        return total, survivors

    monkeypatch.setattr(SecureAggregation, "sum_words", drop_one_bank)
    config = RunConfig(
        out_dir=str(tmp_path), model="gbdt", trees=1, max_depth=2, max_bins=8, seed=3,
        secure_aggregation=True,
    )  # fmt: skip
    plan = plan_simulation(config, n_banks=4)

    with pytest.raises(RoundFailed):
        run_in_process(plan, grid=consortium_grid(plan))

    assert not obtained
    assert refused and "consistency check" in refused[0]
    refusing = set(re.findall(r"node (\d+): refused: [^\n]* whole roster", caplog.text))
    assert len(refusing) == 3  # every honest bank said why
