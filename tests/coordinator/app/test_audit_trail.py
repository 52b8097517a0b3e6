"""The coordinator's audit trail: where it writes, which key signs (never one in the run's
output folder), how a failure ends it, and a log that was cut is not begun anew."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app
from coordinator.app.audit_trail import CoordinatorAudit, coordinator_log_path, default_key_path
from coordinator.app.exchange import BankHeads
from credit.audit import fingerprint, load_or_create_signing_key, load_public_key, verify_audit
from credit.errors import ConfigError
from credit.messages import AuditHead
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


def test_another_key_cannot_continue_the_run_log(tmp_path: Path) -> None:
    out = tmp_path / "out"
    CoordinatorAudit(RunConfig(out_dir=str(out)), flower_run_id=1).close()
    other = tmp_path / "keys" / "elsewhere.key"
    load_or_create_signing_key(other)
    with pytest.raises(ConfigError, match="line 1: the log was written with key"):
        CoordinatorAudit(RunConfig(out_dir=str(out), audit_key=str(other)), flower_run_id=2)


# -- where the key lives: never in the run's output folder ------------------------------


def test_the_default_key_is_the_users_and_only_its_public_half_is_in_the_run(
    tmp_path: Path, coordinator_key_home: Path
) -> None:
    out = tmp_path / "out"
    audit = CoordinatorAudit(RunConfig(out_dir=str(out)), flower_run_id=1)
    audit.run_start("ab" * 32)
    audit.run_failed(RuntimeError("stopped"))
    audit.close()

    key_path = coordinator_key_home / "coordinator-audit.key"
    assert key_path.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in (out / "audit").iterdir()) == [
        "coordinator.jsonl",
        "coordinator.pub",
    ]
    key = load_or_create_signing_key(key_path)
    assert fingerprint(load_public_key(out / "audit" / "coordinator.pub")) == fingerprint(
        key.public_key()
    )
    result = CliRunner().invoke(
        app,
        [
            "audit",
            "verify",
            str(coordinator_log_path(out)),
            "--public-key",
            str(out / "audit" / "coordinator.pub"),
        ],
    )
    assert result.exit_code == 0 and "intact, 3 entries" in result.stdout


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        (
            {"FEDCREDIT_DATA_HOME": "/srv/fc", "XDG_DATA_HOME": "/x"},
            "/srv/fc/coordinator-audit.key",
        ),
        ({"XDG_DATA_HOME": "/x"}, "/x/fedcredit/coordinator-audit.key"),
        ({"XDG_DATA_HOME": "relative"}, "~/.local/share/fedcredit/coordinator-audit.key"),
        ({}, "~/.local/share/fedcredit/coordinator-audit.key"),
    ],
)
def test_the_per_user_key_follows_fedcredit_data_home_then_xdg(
    environ: dict[str, str], expected: str
) -> None:
    assert default_key_path(environ) == Path(expected).expanduser()


def test_a_key_named_inside_the_output_folder_is_refused_in_one_line(tmp_path: Path) -> None:
    out = tmp_path / "out"
    inside = out / "audit" / "coordinator.key"
    with pytest.raises(ConfigError) as caught:
        RunConfig.build(
            {"out_dir": str(out), "audit_key": str(inside)},
            source="fedcredit simulate",
            spelled={"audit_key": "--audit-key"},
        )
    assert str(caught.value) == (
        f"fedcredit simulate: '--audit-key': must lie outside the run's output folder {out}, "
        "where whoever can change the run's outputs could replace the key (leave it unset "
        f"for the per-user key); got '{inside}'"
    )
    assert not inside.exists()


def test_simulate_refuses_a_key_inside_out_before_doing_anything(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["simulate", "--out", str(out), "--audit-key", str(out / "k.key"), "--rounds", "1"]
    )
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "'--audit-key': must lie outside" in result.stderr
    assert not out.exists()


def test_a_per_user_key_inside_the_output_folder_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    monkeypatch.setenv("FEDCREDIT_DATA_HOME", str(out / "keys"))
    with pytest.raises(
        ConfigError, match=r"^audit-key: the audit signing key .* is inside the run"
    ):
        CoordinatorAudit(RunConfig(out_dir=str(out)), flower_run_id=1)


# -- a run log that was emptied, deleted or cut is not begun anew ---------------------------


def _run_log(out: Path, *, key: Path | None = None) -> Path:
    config = RunConfig(out_dir=str(out), audit_key=str(key or ""), run_name="q3")
    audit = CoordinatorAudit(config, flower_run_id=1)
    audit.run_start("ab" * 32)
    audit.refusal("acme", 0, "bank 'acme' refused round 0 (privacy budget)")
    audit.run_failed(RuntimeError("too few banks"))
    audit.close()
    return coordinator_log_path(out)


def _reopen(out: Path, *, key: Path | None = None) -> str:
    config = RunConfig(out_dir=str(out), audit_key=str(key or ""), run_name="q3")
    with pytest.raises(ConfigError) as caught:
        CoordinatorAudit(config, flower_run_id=2)
    assert "\n" not in str(caught.value)
    return str(caught.value)


def test_an_emptied_run_log_is_refused_not_begun_anew(
    tmp_path: Path, coordinator_key_home: Path
) -> None:
    """``truncate -s0 OUT/audit/coordinator.jsonl``; a resumed run used to start a new log."""
    log = _run_log(tmp_path / "out")
    os.truncate(log, 0)
    message = _reopen(tmp_path / "out")
    assert f"{log} is empty, but key {coordinator_key_home / 'coordinator-audit.key'}" in message
    assert message.endswith(
        "restore the log from a backup, or sign a genuinely new log with a new key"
    )
    assert log.read_bytes() == b""


def test_a_deleted_or_cut_run_log_is_refused(tmp_path: Path) -> None:
    key = tmp_path / "consortium" / "audit" / "coordinator.key"
    deleted, cut = _run_log(tmp_path / "a", key=key), _run_log(tmp_path / "b", key=key)
    deleted.unlink()
    assert f"{deleted} is missing, but key {key} has signed it up to seq 4" in _reopen(
        tmp_path / "a", key=key
    )
    lines = cut.read_bytes().splitlines(keepends=True)
    cut.write_bytes(b"".join(lines[:2]))  # log-open and run-start: a run that seems live
    assert f"{cut} ends at seq 2 (entries were cut off)" in _reopen(tmp_path / "b", key=key)


# -- exchanges: the banks' heads, recorded as they came ------------------------------------


def test_an_exchange_records_the_head_sent_and_every_banks_head_as_it_came(
    tmp_path: Path,
) -> None:
    audit = CoordinatorAudit(RunConfig(out_dir=str(tmp_path)), flower_run_id=1)
    sent = audit.current_head()
    assert sent.seq == 1
    bank = AuditHead(seq=12, head="c" * 64, key="d" * 64)
    heads = BankHeads(heads={7: bank}, missing=[9], malformed={8: "bad"}, errors=[3])
    audit.exchange("train", 2, sent, heads)
    audit.close()
    entry = json.loads(coordinator_log_path(tmp_path).read_text().splitlines()[-1])
    assert entry["event"] == "exchange" and entry["prev"] == sent.head
    assert entry["data"] == {
        "stage": "train",
        "server_round": 2,
        "sent": {"seq": 1, "head": sent.head},
        "heads": {"7": {"seq": 12, "head": "c" * 64, "key": "d" * 64}},
        "missing": [9],
        "malformed": {"8": "bad"},
        "errors": [3],
    }
