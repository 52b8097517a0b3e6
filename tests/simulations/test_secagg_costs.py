"""The harness reads each simulated bank's protocol counters from its session store.

No message carries them: the store the simulation wraps around a bank's state writes
them to ``OUT/secagg-costs`` and the harness summarises them into ``simulation.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

from participant.guard.sessions import MemorySessions
from simulations.secagg_costs import COSTS_DIR, CostRecordingSessions, record_secagg_costs
from simulations.settings import SIMULATION_FILE
from tests.support.secagg import consortium


def test_each_banks_counts_reach_simulation_json_and_the_folder_is_removed(
    tmp_path: Path,
) -> None:
    banks = consortium(4, run=7)
    roster = banks.roster()
    store = CostRecordingSessions(MemorySessions(), tmp_path / COSTS_DIR)
    for node, participant in banks.participants.items():
        participant.advertise(1, roster, 3)  # complete graph: 4 holders, threshold 3
        store.save(participant)
        kept = store.session(node, 7, participant.identity)  # the state is kept as before
        assert kept.cost(1) == participant.cost(1)
    (tmp_path / SIMULATION_FILE).write_text(json.dumps({"banks": 4}), encoding="utf-8")

    record_secagg_costs(tmp_path)

    document = json.loads((tmp_path / SIMULATION_FILE).read_text(encoding="utf-8"))
    assert document["banks"] == 4  # what the plan wrote is kept
    costs = document["secagg_costs"]
    assert costs["banks"] == 4
    round_1 = costs["per_bank"]["1"]
    assert round_1["banks"] == 4
    assert round_1["key_agreements"] == {"min": 4, "mean": 4.0, "max": 4}  # sealing only
    assert round_1["shares"] == {"min": 8, "mean": 8.0, "max": 8}
    assert not (tmp_path / COSTS_DIR).exists()


def test_a_run_without_secure_aggregation_records_nothing(tmp_path: Path) -> None:
    (tmp_path / SIMULATION_FILE).write_text("{}", encoding="utf-8")
    record_secagg_costs(tmp_path)
    assert json.loads((tmp_path / SIMULATION_FILE).read_text(encoding="utf-8")) == {}
