"""The simulated banks' secure-aggregation work, counted by the harness, never sent.

Each bank's :class:`~privacy.secagg.protocol.Participant` counts its own protocol work
per round (:class:`~privacy.secagg.SecAggCost`: key agreements, shares, mask
expansions, signature verifications). A deployed bank sends these counts to no one,
and no message asks for them. They are a function of what the coordinator routed to
the bank, so they would tell it little it does not know; but a reply field is bank
output a malicious coordinator could ask for at any stage, and the guard answers
none it does not need. In a simulation the harness owns every bank, so it reads the
counts where the banks keep them instead: the simulation's
session store (:class:`CostRecordingSessions`, wrapped around the node's
``context.state`` store) writes a bank's counts to ``OUT/secagg-costs/NODE.json``
each time the bank saves its protocol state, and after the run
:func:`record_secagg_costs` summarises them into ``OUT/simulation.json``
(``secagg_costs``: per secure round, min, mean and max over the banks of each
counter) and removes the folder.

On a Ray cluster (``--ray-address``) a bank that runs on another machine writes to
that machine's ``OUT`` path, if it has one; ``secagg_costs.banks`` says how many
banks' counts were found.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from participant.guard.sessions import RunEnd, SessionStore
from privacy.secagg import SecAggCost
from privacy.secagg.protocol import Participant
from privacy.secagg.signed import Identity
from simulations.settings import SIMULATION_FILE

__all__ = ["COSTS_DIR", "CostRecordingSessions", "record_secagg_costs"]

COSTS_DIR = "secagg-costs"
"""The folder under ``OUT`` the simulated banks' counts are written to during a run."""
_COUNTERS = tuple(field.name for field in fields(SecAggCost))


class CostRecordingSessions:
    """A bank's session store that also writes the bank's per-round counts to ``folder``.

    Parameters
    ----------
    store : SessionStore
        Where the bank's protocol state is kept (every call is passed on).
    folder : Path
        ``OUT/secagg-costs``; one JSON file per node, ``{secure round: counts}``.
    """

    def __init__(self, store: SessionStore, folder: Path) -> None:
        self.store = store
        self.folder = folder

    def session(self, node_id: int, run: int, identity: Identity) -> Participant:
        return self.store.session(node_id, run, identity)

    def save(self, participant: Participant) -> None:
        self.store.save(participant)
        path = self.folder / f"{participant.me}.json"
        try:
            kept = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
            for server_round, cost in participant.costs().items():
                kept[str(server_round)] = asdict(cost)
            self.folder.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(".part")
            partial.write_text(json.dumps(kept), encoding="utf-8")
            os.replace(partial, path)
        except OSError:  # another cluster node without OUT: its counts are not summarised
            return

    def end_run_at(self, node_id: int, run: int, end: RunEnd) -> None:
        self.store.end_run_at(node_id, run, end)

    def run_end(self, node_id: int, run: int) -> RunEnd | None:
        return self.store.run_end(node_id, run)

    def boosting_state(self, node_id: int, run: int) -> bytes | None:
        return self.store.boosting_state(node_id, run)

    def save_boosting_state(self, node_id: int, run: int, state: bytes) -> None:
        self.store.save_boosting_state(node_id, run, state)


def summarise(per_node: list[dict[str, dict[str, int]]]) -> dict[str, Any]:
    """Per secure round, min / mean / max over the banks that took part, by counter."""
    rounds = sorted({int(r) for counts in per_node for r in counts})
    summary: dict[str, Any] = {}
    for server_round in rounds:
        taken = [counts[str(server_round)] for counts in per_node if str(server_round) in counts]
        summary[str(server_round)] = {
            "banks": len(taken),
            **{
                name: {
                    "min": min(c[name] for c in taken),
                    "mean": round(sum(c[name] for c in taken) / len(taken), 2),
                    "max": max(c[name] for c in taken),
                }
                for name in _COUNTERS
            },
        }
    return summary


def record_secagg_costs(out_dir: Path) -> None:
    """Summarise ``OUT/secagg-costs`` into ``OUT/simulation.json``, then remove the folder.

    Nothing to do if no bank wrote counts (a run without secure aggregation) or the
    run has no ``simulation.json``.
    """
    folder = out_dir / COSTS_DIR
    record = out_dir / SIMULATION_FILE
    if not folder.is_dir():
        return
    per_node = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*.json"))]
    if record.exists():
        document = json.loads(record.read_text(encoding="utf-8"))
        document["secagg_costs"] = {
            "banks": len(per_node),
            "per_bank": summarise(per_node),
            "note": "each bank's own protocol counters (privacy.secagg.SecAggCost), read by "
            "the harness; by secure round (0: set-up, R + 1: the last evaluation)",
        }
        record.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    shutil.rmtree(folder, ignore_errors=True)
