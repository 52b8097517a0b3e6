"""One implementation of every bank-side rule: the same bank files give the same model
through the guard service in deployment and through the in-process guard of a simulation.

Three banks' files are trained for two rounds (differential privacy off, secure
aggregation on, as both default) once by ``fedcredit coordinator launch`` against real
guards and SuperNodes on loopback, and once by ``fedcredit simulate --bank-data`` with
the same files; the final AUC agrees to 1e-6. The deployed banks are given the salt a
simulation of seed 0 derives, so both hold out the same customers.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from participant.guard.settings import HoldOut
from tests.deployment.consortium import FEDCREDIT, fedcredit, process_env, started_consortium

pytestmark = pytest.mark.deployment

ROWS_PER_BANK = 1_500
BANKS = ("bank-a", "bank-b", "bank-c")


def _final_auc(out: Path) -> float:
    document = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert document["status"] == "completed", document
    return float(document["final"]["auc"])


def test_the_same_bank_files_give_the_same_model_in_deployment_and_simulation(
    tmp_path: Path, embedded_frame: pd.DataFrame
) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    files = []
    for index, bank in enumerate(BANKS):
        path = data / f"{bank}.csv"
        embedded_frame.iloc[index * ROWS_PER_BANK : (index + 1) * ROWS_PER_BANK].to_csv(
            path, index=False
        )
        files.append(path)

    salt = HoldOut.for_simulation(fraction=0.2, seed=0).salt.get_secret_value()
    with started_consortium(
        tmp_path / "consortium", extra_init=["--rounds", "2", "--min-banks", "3"]
    ) as consortium:
        started = consortium.add_banks_and_start(
            dict(zip(BANKS, files, strict=True)), max_epsilon=None, holdout_salt=salt
        )
        homes = list(started.values())
        for bank in BANKS:
            consortium.wait_for_status(bank, "online")
        deployed = tmp_path / "deployed"
        launch = subprocess.run(
            [str(FEDCREDIT), "coordinator", "launch", str(consortium.root), "--rounds", "2",
             "--out", str(deployed)],
            capture_output=True, text=True, env=process_env(), timeout=900, check=False,
        )  # fmt: skip
        assert launch.returncode == 0, launch.stdout + launch.stderr
        for home in homes:  # every bank's answers came from its guard service
            guard_log = (home / "services" / "guard.log").read_text(encoding="utf-8")
            assert guard_log.count("request kind=train") == 2, guard_log

    simulated = tmp_path / "simulated"
    bank_data = [arg for path in files for arg in ("--bank-data", str(path))]
    fedcredit("simulate", *bank_data, "--rounds", "2", "--out", str(simulated))

    assert _final_auc(deployed) == pytest.approx(_final_auc(simulated), abs=1e-6)
    assert _final_auc(deployed) > 0.6
