"""One implementation of every bank-side rule: the same bank files give the same model
through the guard service in deployment and through the in-process guard of a simulation.

Three banks' files are trained for two rounds (differential privacy off, secure
aggregation on, as both default) once by ``fedcredit coordinator launch`` against real
guards and SuperNodes on loopback, and once (at the same time, in its own process) by
``fedcredit simulate --bank-data`` with the same files; the final AUC agrees to 1e-6.
The deployed banks are given the salt a simulation of seed 0 derives, so both hold out
the same customers.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from participant.guard.settings import HoldOut
from tests.deployment.consortium import CLI_TIMEOUT, FEDCREDIT, process_env, started_consortium

pytestmark = pytest.mark.deployment

ROWS_PER_BANK = 1_500
BANKS = ("bank-a", "bank-b", "bank-c")


def _final_auc(out: Path) -> float:
    document = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert document["status"] == "completed", document
    return float(document["final"]["auc"])


@contextlib.contextmanager
def _simulation(files: list[Path], out: Path) -> Iterator[None]:
    """``fedcredit simulate --bank-data`` on ``files`` in the background; on leaving,
    wait for it (AssertionError with its output if it fails), or stop it if the body
    raised."""
    log = out.parent / "simulate.log"
    bank_data = [arg for path in files for arg in ("--bank-data", str(path))]
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(FEDCREDIT), "simulate", *bank_data, "--rounds", "2", "--out", str(out)],
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=process_env(),
            start_new_session=True,  # Ray's processes too: stopped as a group
        )
    try:
        yield
        code = process.wait(timeout=CLI_TIMEOUT)
        assert code == 0, f"fedcredit simulate exited {code}:\n{log.read_text(errors='replace')}"
    finally:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


def _deploy(files: list[Path], tmp_path: Path) -> Path:
    """Train the banks' ``files`` with ``coordinator launch`` against real guards; the
    run's output folder."""
    salt = HoldOut.for_simulation(fraction=0.2, seed=0).salt.get_secret_value()
    with started_consortium(
        tmp_path / "consortium", extra_init=["--rounds", "2", "--min-banks", "3"]
    ) as consortium:
        started = consortium.add_banks_and_start(
            dict(zip(BANKS, files, strict=True)), max_epsilon=None, holdout_salt=salt
        )
        homes = list(started.values())
        consortium.wait_for_statuses(BANKS, "online")
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
    return deployed


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

    # The simulation needs nothing of the deployment: it runs meanwhile.
    simulated = tmp_path / "simulated"
    with _simulation(files, simulated):
        deployed = _deploy(files, tmp_path)

    assert _final_auc(deployed) == pytest.approx(_final_auc(simulated), abs=1e-6)
    assert _final_auc(deployed) > 0.6
