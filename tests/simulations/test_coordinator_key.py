"""A simulation's coordinator signs with its own key, kept outside the output folder.

Each new simulation is a new consortium: a fresh key and a fresh log, so deleting a
run's folder and simulating again works; a resumed simulation keeps both.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from coordinator.app.audit_trail import coordinator_log_path
from credit.audit import verify_audit
from credit.run_config import RunConfig
from simulations.engine import plan_simulation
from tests.support.consortium import run_in_process


def _config(out: Path, *, rounds: int = 1, resume: bool = False) -> RunConfig:
    return RunConfig(out_dir=str(out), rounds=rounds, resume=resume, secure_aggregation=False)


def test_a_simulation_folder_deleted_and_simulated_again_gets_a_new_key(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = plan_simulation(_config(out), n_banks=2)
    key = Path(first.config.audit_key)
    assert key.is_absolute() and out not in key.parents  # outside the run folder
    run_in_process(first)
    before = verify_audit(coordinator_log_path(out)).fingerprint

    shutil.rmtree(out)
    again = plan_simulation(_config(out), n_banks=2)
    assert Path(again.config.audit_key) == key  # one key path per output folder ...
    run_in_process(again)
    after = verify_audit(coordinator_log_path(out)).fingerprint
    assert after != before  # ... but a new key for a new simulation


def test_a_resumed_simulation_keeps_its_key_and_log(tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_in_process(plan_simulation(_config(out), n_banks=2))
    log = coordinator_log_path(out)
    before = verify_audit(log).fingerprint
    lines = log.read_bytes().count(b"\n")

    run_in_process(plan_simulation(_config(out, rounds=2, resume=True), n_banks=2))
    report = verify_audit(log)
    assert report.fingerprint == before
    assert log.read_bytes().count(b"\n") > lines  # the same log, continued
