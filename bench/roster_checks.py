"""Simulated banks that remember roster checks per process, against checking every one.

At set-up each bank verifies the roster's N enrollment signatures (once per run). In a
simulation many banks share a worker process and the same roster, so without a memory
the process builds N² enrollment statements and makes N² Ed25519 checks. A process
remembers three pure functions of their arguments: a roster's enrollment check
(:func:`privacy.secagg.signed.enrollments_problem`), each Ed25519 check
(:func:`privacy.secagg.members.ed25519_verifies`) and a round's cyclic order of the
sparse graph. This runs one round of the real protocol on the sparse graph
(:mod:`bench._secagg_costs`, every bank in this one process: the extreme case;
Flower's Simulation Engine on two cores has two worker processes) both ways, one after
the other, and reports the banks' advertise time (where the roster is checked) and
the whole round's.

Writes ``bench/results/roster_checks.json``.

Usage (from the repository root)::

    .venv/bin/python -m bench.roster_checks                 # 300 and 1000 banks
    .venv/bin/python -m bench.roster_checks --sizes 100     # a quick run
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import privacy.secagg.graph as graph
import privacy.secagg.members as members
import privacy.secagg.signed as signed
from bench.secagg_graph import LOGREG_PARAMS, measure

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def both_ways(n: int, *, seed: int) -> dict[str, Any]:
    """One sparse round of ``n`` banks remembering checks, then one checking every one."""
    rows: dict[str, Any] = {"banks": n}
    for label in ("remembered", "every_check"):
        with _memories(on=label == "remembered"):
            entry = measure(n, "sparse", params=LOGREG_PARAMS, seed=seed)
        rows[label] = {
            "advertise_seconds": entry["seconds"]["banks_advertise"],
            "round_seconds": entry["round_wall_seconds"],
        }
    for stage in ("advertise", "round"):
        rows[f"{stage}_ratio"] = _ratio(
            rows["every_check"][f"{stage}_seconds"], rows["remembered"][f"{stage}_seconds"]
        )
    return rows


MEMORIES = (
    (members, "ed25519_verifies"),
    (signed, "enrollments_problem"),
    (graph, "_cyclic_order"),
)
"""The per-process memories (module, name of the remembering function)."""


@contextlib.contextmanager
def _memories(*, on: bool) -> Iterator[None]:
    """Every memory of :data:`MEMORIES` emptied, and (``on`` False) replaced by the
    function it remembers; put back on exit."""
    kept = {(module, name): getattr(module, name) for module, name in MEMORIES}
    for (module, name), remembering in kept.items():
        remembering.cache_clear()
        if not on:
            setattr(module, name, remembering.__wrapped__)
    try:
        yield
    finally:
        for (module, name), remembering in kept.items():
            setattr(module, name, remembering)


def _ratio(slower: float, faster: float) -> float | None:
    """``slower / faster`` to one decimal (None: too fast to time at 0.01 s)."""
    return round(slower / faster, 1) if faster > 0 else None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[300, 1000])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS / "roster_checks.json")
    arguments = parser.parse_args(argv)
    sizes = []
    for n in arguments.sizes:
        sizes.append(both_ways(n, seed=arguments.seed))
        print(json.dumps(sizes[-1]), flush=True)
    document = {
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_1min": round(os.getloadavg()[0], 2),
        },
        "sizes": sizes,
    }
    arguments.out.write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    main()
