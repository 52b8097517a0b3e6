"""bench/secagg_graph.py: a bank's protocol work is set by its degree k, not by N.

The real protocol in one process (no Flower), 10 % dropouts after advertising: on the
complete graph (k = N - 1) a bank's counts are those of N - 1 neighbours; on the
sparse graph they are those of its k neighbours, k well below N - 1 and growing
like log N. Counts, not timings: they are exact on any machine.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from bench._secagg_costs import banks, draw_round_inputs, policy_for, run_round


def _round(n: int, graph: str) -> tuple[int, int, dict[str, int], list[dict[str, int]]]:
    """One round of ``n`` banks: degree, dropouts, the coordinator's and survivors' counts."""
    dropped, values = draw_round_inputs(n, dropout_rate=0.1, params=8, seed=n)
    costs = run_round(banks(n, policy_for(graph)), dropped=dropped, values=values)
    survivors = [vars(c) for node, c in costs.per_bank.items() if node not in dropped]
    return costs.plan.degree, len(dropped), vars(costs.coordinator), survivors


def _assert_counts_of_k_neighbours(n: int, k: int, survivors: list[dict[str, int]]) -> None:
    """Each survivor sealed and opened shares with its k + 1 holders (itself included),
    masked with its k neighbours and expanded k + 1 masks; it checked its holders'
    keys and at most the survivor signatures of its holders' holders."""
    assert survivors
    for counts in survivors:
        assert counts["key_agreements"] == 2 * (k + 1) + k
        assert counts["shares"] == 4 * (k + 1)
        assert counts["mask_expansions"] == k + 1
        assert k + 1 <= counts["signature_verifications"] <= (k + 1) + min(n, 2 * k + 1)
        assert counts["reconstructions"] == 0


@pytest.mark.parametrize("n", [10, 20])
def test_on_the_complete_graph_a_bank_works_with_all_n_minus_1_others(n: int) -> None:
    k, dropped, coordinator, survivors = _round(n, "complete")
    assert k == n - 1
    _assert_counts_of_k_neighbours(n, n - 1, survivors)
    assert dropped == n // 10
    # one secret per member of U1; each dropout's mask with every survivor removed
    assert coordinator["reconstructions"] == n
    assert coordinator["key_agreements"] == dropped * (n - dropped)
    assert coordinator["mask_expansions"] == (n - dropped) + dropped * (n - dropped)


def test_on_the_sparse_graph_a_bank_works_with_its_k_neighbours_only() -> None:
    degrees = {}
    for n in (10, 40):
        k, dropped, coordinator, survivors = _round(n, "sparse")
        degrees[n] = k
        assert k < n - 1
        _assert_counts_of_k_neighbours(n, k, survivors)
        assert coordinator["reconstructions"] == n
        assert coordinator["key_agreements"] <= dropped * k  # survivor neighbours only
        assert coordinator["mask_expansions"] == (n - dropped) + coordinator["key_agreements"]
    # four times the banks: the degree grows, and by less than four times
    assert degrees[10] < degrees[40] < 4 * degrees[10]


def test_the_benchmark_writes_counts_table_and_plot(tmp_path: Path) -> None:
    from bench.secagg_graph import main

    out = tmp_path / "secagg_graph.json"
    main(["--sizes", "10", "--out", str(out)])
    document = json.loads(out.read_text())
    by_graph = {entry["graph"]: entry for entry in document["sizes"]}
    assert sorted(by_graph) == ["complete", "sparse"]
    for graph, entry in by_graph.items():
        k = entry["degree"]
        assert (entry["banks"], entry["dropped"]) == (10, 1)
        assert entry["per_bank"]["survivors"]["key_agreements"]["max"] == 3 * k + 2, graph
        assert entry["coordinator"]["reconstructions"] == 10
        assert entry["coordinator_unmask_seconds"] > 0
    assert by_graph["complete"]["degree"] == 9 > by_graph["sparse"]["degree"]
    assert document["log_reference_c"] == pytest.approx(
        by_graph["sparse"]["per_bank"]["survivors"]["key_agreements"]["max"] / math.log2(10)
    )
    assert out.with_suffix(".md").read_text().startswith("| banks | graph | k |")
    assert (tmp_path / "scale.png").stat().st_size > 0


def test_the_roster_checks_benchmark_runs_both_ways_and_restores_the_memory() -> None:
    from bench.roster_checks import MEMORIES, both_ways

    remembering = [getattr(module, name) for module, name in MEMORIES]

    row = both_ways(40, seed=0)  # enough banks that a round takes more than 0.1 s

    assert [getattr(module, name) for module, name in MEMORIES] == remembering
    assert all(hasattr(function, "cache_info") for function in remembering)
    assert row["banks"] == 40
    for label in ("remembered", "every_check"):
        assert row[label]["advertise_seconds"] >= 0 and row[label]["round_seconds"] > 0
    assert row["round_ratio"] is not None and row["round_ratio"] > 0
