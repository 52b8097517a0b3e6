"""The coordinator's audit trail: where it writes, which key signs, how a failure ends it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from coordinator.app.audit_trail import CoordinatorAudit, coordinator_log_path
from credit.audit import fingerprint, load_or_create_signing_key, load_public_key, verify_audit
from credit.errors import ConfigError
from credit.run_config import RunConfig


def test_a_configured_key_signs_and_its_public_half_is_put_beside_the_log(tmp_path: Path) -> None:
    key_path = tmp_path / "consortium" / "audit" / "coordinator.key"
    key = load_or_create_signing_key(key_path)
    config = RunConfig(out_dir=str(tmp_path / "out"), audit_key=str(key_path), run_name="q3")
    audit = CoordinatorAudit(config, flower_run_id=77)
    audit.run_start("ab" * 32)
    audit.refusal("acme", 0, "bank 'acme' refused round 0 (privacy budget)")
    audit.run_failed(RuntimeError("too few banks"))
    audit.close()

    log = coordinator_log_path(tmp_path / "out")
    beside = load_public_key(tmp_path / "out" / "audit" / "coordinator.pub")
    assert fingerprint(beside) == fingerprint(key.public_key())
    assert not (tmp_path / "out" / "audit" / "coordinator.key").exists()
    report = verify_audit(log, key.public_key())
    assert report.closed and report.events == {
        "log-open": 1,
        "run-start": 1,
        "refusal": 1,
        "run-end": 1,
    }
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    start, end = entries[1]["data"], entries[-1]["data"]
    assert start["run"] == "q3" and start["flower_run_id"] == 77
    assert start["config_sha256"] == config.digest()
    assert end == {
        "status": "failed",
        "reason": "RuntimeError: too few banks",
        "rounds_completed": 0,
        "final_auc": None,
        "final_model_sha256": None,
    }


def test_a_failure_before_the_run_is_recorded_adds_nothing(tmp_path: Path) -> None:
    audit = CoordinatorAudit(RunConfig(out_dir=str(tmp_path)), flower_run_id=1)
    audit.run_failed(ValueError("no checkpoint"))
    audit.close()
    assert [
        json.loads(x)["event"] for x in coordinator_log_path(tmp_path).read_text().splitlines()
    ] == ["log-open"]
    assert (tmp_path / "audit" / "coordinator.key").stat().st_mode & 0o777 == 0o600


def test_another_key_cannot_continue_the_run_log(tmp_path: Path) -> None:
    CoordinatorAudit(RunConfig(out_dir=str(tmp_path)), flower_run_id=1).close()
    other = tmp_path / "elsewhere.key"
    load_or_create_signing_key(other)
    with pytest.raises(ConfigError, match="line 1: the log was written with key"):
        CoordinatorAudit(RunConfig(out_dir=str(tmp_path), audit_key=str(other)), flower_run_id=2)
