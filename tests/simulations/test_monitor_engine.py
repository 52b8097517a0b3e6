"""``fedcredit monitor`` through Flower's Simulation Engine (Ray), as the command runs it.

The fast tier runs the same ServerApp body and ClientApp in-process
(``test_monitor_run.py``); this test checks the engine's wiring: the monitoring run's
outcome reaches the harness, which writes the report.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from credit.run_config import RunConfig
from simulations.engine import plan_simulation
from simulations.monitor import plan_monitor, run_monitor
from simulations.settings import PartitionSettings
from tests.support.consortium import run_in_process

pytestmark = pytest.mark.slow


def test_a_monitoring_run_through_the_engine_flags_a_shifted_column(
    tmp_path: Path, embedded_frame: pd.DataFrame
) -> None:
    data = tmp_path / "data.csv"
    embedded_frame.iloc[:4_500].to_csv(data, index=False)
    run = tmp_path / "run"
    config = RunConfig(rounds=2, out_dir=str(run), seed=3)
    run_in_process(plan_simulation(config, n_banks=3, partition=PartitionSettings(data=str(data))))
    later = tmp_path / "later"
    later.mkdir()
    for file in sorted((run / "banks").glob("*.csv")):
        frame = pd.read_csv(file)
        frame["LIMIT_BAL"] = (frame["LIMIT_BAL"] * 2.5).clip(upper=1_000_000)
        frame.to_csv(later / file.name, index=False)

    result = run_monitor(plan_monitor(run, [later], tmp_path / "monitor"), cpus=2)

    document = json.loads(result.path.read_text())
    consortium = document["consortium"]
    assert consortium["secure_aggregation"] is True
    assert consortium["summed_banks"] == 3
    assert [name for name in consortium["drifted"] if name != "score"] == ["LIMIT_BAL"]
