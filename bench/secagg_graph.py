"""Secure aggregation's work per bank and at the coordinator, complete vs sparse graph.

One round of the real protocol (:mod:`bench._secagg_costs`: every bank's
:class:`~privacy.secagg.protocol.Participant` and the coordinator's
:class:`~privacy.secagg.protocol.RoundAggregator` in one process, no Flower) at each
roster size and graph, 10 % of the banks dropping out after advertising their keys
(so the coordinator reconstructs their masking keys and removes their pairwise
masks), each bank's vector the size of the logistic regression's (``--params``,
default 197: the 196 weights and the bias of ``--model logreg --encoding binned``
on the embedded data). Recorded per size and graph: the graph's degree k and
threshold t; per bank (min, mean, max over the survivors and over the dropouts) the
protocol's counters: key agreements, shares dealt and opened, mask expansions,
signature verifications; the coordinator's counters (reconstructions, its key
agreements and mask expansions); the wall seconds of each stage summed over the
banks and of the coordinator's unmask (``finish``). Timings are of one process on
a shared machine; the counts are exact and do not depend on it.

Every measurement is written to ``--out`` as soon as it is done (a long size that
is stopped loses only itself); ``scale.png``'s third panel is redrawn from it.

Usage (from the repository root)::

    .venv/bin/python -m bench.secagg_graph                                 # 10..1000, both graphs
    .venv/bin/python -m bench.secagg_graph --sizes 10 100 --graphs sparse  # a quick run
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench._secagg_costs import banks, draw_round_inputs, policy_for, run_round, summary

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
SIZES = (10, 100, 300, 1000)
GRAPHS = ("complete", "sparse")
DROPOUT_RATE = 0.1
LOGREG_PARAMS = 197


def measure(n: int, graph: str, *, params: int, seed: int) -> dict[str, Any]:
    """One round of ``n`` banks on ``graph``; its counts and timings."""
    participants = banks(n, policy_for(graph))
    dropped, values = draw_round_inputs(n, dropout_rate=DROPOUT_RATE, params=params, seed=seed)
    started = time.perf_counter()
    costs = run_round(participants, dropped=dropped, values=values)
    wall = time.perf_counter() - started
    return {
        "banks": n,
        "graph": graph,
        "degree": costs.plan.degree,
        "threshold": costs.plan.threshold,
        "dropped": len(dropped),
        "params": params,
        **summary(costs),
        "seconds": {stage: round(value, 2) for stage, value in costs.seconds.items()},
        "coordinator_unmask_seconds": round(costs.seconds["coordinator_unmask"], 3),
        "round_wall_seconds": round(wall, 1),
        "max_mean_error": costs.max_error,
    }


def per_bank(entry: dict[str, Any], counter: str, statistic: str = "max") -> float:
    """A survivor's ``counter`` in ``entry`` (``statistic`` over the surviving banks)."""
    return float(entry["per_bank"]["survivors"][counter][statistic])


def markdown(entries: list[dict[str, Any]]) -> str:
    """The README table: one row per size and graph (survivors' counts, max over banks)."""
    lines = [
        "| banks | graph | k | t | dropped | key agreements / bank | shares / bank "
        "| mask expansions / bank | signature checks / bank | coordinator reconstructions "
        "| coordinator key agreements | coordinator unmask s |",
        "|---:|:---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for entry in entries:
        coordinator = entry["coordinator"]
        lines.append(
            f"| {entry['banks']:,} | {entry['graph']} | {entry['degree']} "
            f"| {entry['threshold']} | {entry['dropped']} "
            f"| {per_bank(entry, 'key_agreements'):,.0f} | {per_bank(entry, 'shares'):,.0f} "
            f"| {per_bank(entry, 'mask_expansions'):,.0f} "
            f"| {per_bank(entry, 'signature_verifications'):,.0f} "
            f"| {coordinator['reconstructions']:,} | {coordinator['key_agreements']:,} "
            f"| {entry['coordinator_unmask_seconds']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def log_reference(entries: list[dict[str, Any]]) -> float | None:
    """c of the reference c·log2(N) through the sparse graph's largest measured size."""
    sparse = [e for e in entries if e["graph"] == "sparse"]
    if not sparse:
        return None
    largest = max(sparse, key=lambda e: e["banks"])
    return per_bank(largest, "key_agreements") / math.log2(largest["banks"])


def _key(entry: dict[str, Any]) -> tuple[int, str]:
    return entry["banks"], entry["graph"]


def write(out: Path, entries: list[dict[str, Any]], arguments: argparse.Namespace) -> None:
    """``out`` (JSON), its ``.md`` table, and ``scale.png`` redrawn beside it."""
    document = {
        "sizes": sorted(entries, key=_key),
        "settings": {
            "dropout_rate": DROPOUT_RATE,
            "dropouts_leave": "after advertising keys, before the masked input (in U1, not U2)",
            "params": arguments.params,
            "seed": arguments.seed,
            "rounds": 1,
            "policy": "SecAggPolicy defaults (5 % corruption, 10 % dropouts, 40 + 40 "
            "security bits, 20 correctness bits), graph forced per entry",
        },
        "log_reference_c": log_reference(entries),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    out.with_suffix(".md").write_text(markdown(document["sizes"]), encoding="utf-8")
    if arguments.replot:
        from bench.scale import replot

        replot(out=out.with_name("scale.json"), costs=out)


def previous(out: Path) -> list[dict[str, Any]]:
    """The entries of an earlier ``out`` (none if there is none)."""
    if not out.exists():
        return []
    entries: list[dict[str, Any]] = json.loads(out.read_text(encoding="utf-8"))["sizes"]
    return entries


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="bank counts")
    parser.add_argument("--graphs", nargs="+", choices=GRAPHS, default=list(GRAPHS))
    parser.add_argument("--params", type=int, default=LOGREG_PARAMS, help="vector length")
    parser.add_argument("--seed", type=int, default=0, help="dropouts and inputs")
    parser.add_argument("--out", type=Path, default=RESULTS / "secagg_graph.json")
    parser.add_argument(
        "--replot",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="redraw scale.png (next to --out) with the measured counts",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    arguments = parse_arguments(argv)
    for n in sorted(arguments.sizes):
        for graph in arguments.graphs:
            entry = measure(n, graph, params=arguments.params, seed=arguments.seed)
            print(json.dumps(entry), flush=True)
            kept = [e for e in previous(arguments.out) if _key(e) != _key(entry)]
            write(arguments.out, [*kept, entry], arguments)


if __name__ == "__main__":
    main()
