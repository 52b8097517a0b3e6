"""The bank's node launcher: what it checks before anything connects, and what it hands on."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result
from cryptography.hazmat.primitives.asymmetric import ed25519
from flwr.common.config import parse_config_args
from typer.testing import CliRunner

from cli.app import app
from credit import __version__
from credit.errors import ConfigError
from deploy.bundle import Bundle
from participant.guard.settings import EvaluationPolicy, SetupReleasePolicy
from participant.node.node_keys import BankKeyFiles
from participant.node.supernode import (
    NodePlan,
    NodeSettings,
    check_node_key,
    check_tls,
    node_plan,
    supernode_command,
)
from privacy.budget import PrivacyBudget
from tests.participant.guard.bank_messages import hold_out


def _settings(
    bundle: Bundle,
    keys: BankKeyFiles,
    tmp_path: Path,
    *,
    max_epsilon: float | None,
    node_user: str | None = None,
) -> NodeSettings:
    return NodeSettings(
        bundle=bundle,
        key=keys.node_key,
        data=tmp_path / "bank a.csv",
        home=tmp_path / "node",
        budget=None if max_epsilon is None else PrivacyBudget(max_epsilon=max_epsilon),
        audit_key=keys.audit_key,
        holdout=hold_out("5a" * 32),
        runtime_port=19194,
        node_user=node_user,
        evaluation=EvaluationPolicy(max_score_bins=40, min_holdout_rows=120),
        setup=SetupReleasePolicy(max_bins=32, budget_share=0.2),
    )


def test_the_supernode_gets_tls_its_key_and_only_the_guards_socket(
    bundle: Bundle, keys: BankKeyFiles, tmp_path: Path
) -> None:
    settings = _settings(bundle, keys, tmp_path, max_epsilon=2.5)
    plan = node_plan(settings)
    command = supernode_command(plan)

    assert "--insecure" not in command and "--isolation" not in command
    assert command[command.index("--root-certificates") + 1] == str(bundle.ca_cert)
    assert command[command.index("--auth-supernode-private-key") + 1] == str(settings.key)
    assert command[command.index("--superlink") + 1] == "fl.example:9443"
    node_config = parse_config_args([command[command.index("--node-config") + 1]])
    assert node_config == {"guard-socket": str(plan.socket)}  # nothing of the bank's
    for secret in (settings.data, settings.ledger, settings.audit_log, settings.audit_key):
        assert str(secret) not in " ".join(command)


def test_the_guard_gets_the_banks_settings_and_the_plan_reads_back(
    bundle: Bundle, keys: BankKeyFiles, tmp_path: Path
) -> None:
    settings = _settings(bundle, keys, tmp_path, max_epsilon=2.5)
    plan = node_plan(settings)
    guard = plan.guard
    assert guard.data_path == tmp_path / "bank a.csv" and guard.bank_name == "bank-a"
    assert guard.budget == PrivacyBudget(max_epsilon=2.5)
    assert guard.ledger_path == settings.ledger and guard.audit_log == settings.audit_log
    assert guard.approved_version == __version__
    assert guard.evaluation == EvaluationPolicy(max_score_bins=40, min_holdout_rows=120)
    assert guard.setup == SetupReleasePolicy(max_bins=32, budget_share=0.2)
    settings.home.mkdir()
    plan.save()
    assert NodePlan.load(settings.home) == plan
    assert (settings.home / "node.json").stat().st_mode & 0o777 == 0o600


def test_a_node_user_runs_clientapps_in_process_isolation_outside_the_home(
    bundle: Bundle, keys: BankKeyFiles, tmp_path: Path
) -> None:
    plan = node_plan(_settings(bundle, keys, tmp_path, max_epsilon=None, node_user="fc-node"))
    command = supernode_command(plan)
    assert command[command.index("--isolation") + 1] == "process"
    assert not plan.runtime_dir.is_relative_to(plan.home)
    assert plan.guard.ledger_path is None  # no budget: no ledger


def test_node_key_checks(keys: BankKeyFiles, tmp_path: Path) -> None:
    check_node_key(keys.node_key)
    with pytest.raises(ConfigError, match="cannot read the node key"):
        check_node_key(tmp_path / "missing.key")
    with pytest.raises(ConfigError, match="not an unencrypted OpenSSH private key"):
        check_node_key(keys.node_public)
    keys.node_key.chmod(0o644)
    with pytest.raises(ConfigError, match="readable by others; run `chmod 600"):
        check_node_key(keys.node_key)
    ed = tmp_path / "ed.key"
    from cryptography.hazmat.primitives import serialization

    ed.write_bytes(
        ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
    )
    ed.chmod(0o600)
    with pytest.raises(ConfigError, match="must be an ECDSA key"):
        check_node_key(ed)


def test_no_tls_without_the_consortium_ca(bundle: Bundle) -> None:
    check_tls(bundle)
    bundle.ca_cert.write_text("not a certificate\n")
    with pytest.raises(ConfigError, match="never connects without TLS"):
        check_tls(bundle)
    bundle.ca_cert.unlink()
    with pytest.raises(ConfigError, match="never connects without TLS"):
        check_tls(bundle)


def _start(*args: str) -> Result:
    """``fedcredit participant start ARGS`` in this process (stderr kept apart from stdout).

    The one test of the installed console script is in ``tests/cli/test_cli_errors.py``.
    """
    return CliRunner().invoke(app, ["participant", "start", *args])


def test_start_refuses_bad_data_or_no_budget_before_connecting(
    bundle: Bundle, keys: BankKeyFiles, tmp_path: Path, write_bank_csv: Callable[..., Path]
) -> None:
    home = tmp_path / "node"
    base = ["--bundle", str(bundle.folder), "--key", str(keys.node_key), "--home", str(home)]
    good = write_bank_csv(200)
    bad = tmp_path / "bad.csv"
    lines = good.read_text().splitlines(keepends=True)
    fields = lines[2].split(",")
    fields[1] = "lots"  # LIMIT_BAL of data row 2
    lines[2] = ",".join(fields)
    bad.write_text("".join(lines))

    from participant.node.supernode import stop_node

    try:
        no_budget = _start(*base, "--data", str(good))
        broken = _start(*base, "--data", str(bad), "--max-epsilon", "2")
        both = _start(*base, "--data", str(good), "--max-epsilon", "2", "--no-dp")
    finally:
        started = stop_node(home)  # never leave a stray SuperNode behind

    assert not started  # nothing was started
    assert no_budget.exit_code == 2
    assert "--max-epsilon: no privacy budget" in no_budget.stderr
    assert broken.exit_code == 2
    assert f"{bad}, column 'LIMIT_BAL', row 2:" in broken.stderr, broken.stderr
    assert both.exit_code == 2 and "either --max-epsilon or --no-dp" in both.stderr
    for result in (no_budget, broken, both):
        assert isinstance(result.exception, SystemExit), repr(result.exception)  # no crash
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_start_refuses_a_broken_ledger_or_audit_log_naming_the_entry(
    bundle: Bundle, keys: BankKeyFiles, tmp_path: Path, write_bank_csv: Callable[..., Path]
) -> None:
    """The guard does not start on records that fail verification (nothing starts)."""
    from credit.audit import AuditLog, load_or_create_signing_key
    from participant.node.supernode import stop_node

    home = tmp_path / "node"
    home.mkdir()
    data = write_bank_csv(300)
    base = ["--bundle", str(bundle.folder), "--key", str(keys.node_key), "--home", str(home)]
    base += ["--data", str(data), "--max-epsilon", "2"]
    ledger, audit = home / "privacy-ledger.jsonl", home / "audit.jsonl"
    budget = {"type": "budget", "bank": "bank-a", "max_epsilon": 2.0, "delta": 1 / 2400}
    ledger.write_text(f'{json.dumps(budget)}\n{{"type": "event", "round": \n', encoding="utf-8")
    try:
        broken_ledger = _start(*base)
        ledger.unlink()
        with AuditLog(audit, load_or_create_signing_key(keys.audit_key), "bank bank-a") as log:
            log.append("train", {"server_round": 1})
            log.append("train", {"server_round": 2})
        lines = audit.read_text(encoding="utf-8").splitlines(keepends=True)
        lines[2] = lines[2].replace('"server_round":2', '"server_round":9')
        audit.write_text("".join(lines), encoding="utf-8")
        broken_audit = _start(*base)
    finally:
        started = stop_node(home)

    assert not started
    assert broken_ledger.exit_code == 2, broken_ledger.stderr
    assert f"{ledger}: line 2: not a ledger entry" in broken_ledger.stderr
    assert broken_audit.exit_code != 0 and f"{audit} line 3" in broken_audit.stderr
    for result in (broken_ledger, broken_audit):
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_a_restart_forgets_the_pid_files_a_stopped_node_left(tmp_path: Path) -> None:
    """The guard leaves ``supernode.pid`` behind when it stops; read at the next start,
    that dead pid made ``participant stop`` then ``start`` fail with "the SuperNode
    stopped during start-up" before the new SuperNode had started."""
    import os
    import subprocess
    import sys

    from deploy.services import Service
    from participant.node.supernode import _forget_stopped_children

    services = tmp_path / "services"
    services.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    for name in ("supernode.pid", "superexec.pid"):
        (services / name).write_text(f"{dead.pid}\n")
    guard = Service("guard", services)

    _forget_stopped_children(guard, services)

    assert sorted(p.name for p in services.iterdir()) == []
    # A running guard keeps its children's files (its start is refused anyway).
    (services / "guard.pid").write_text(f"{os.getpid()}\n")
    (services / "supernode.pid").write_text(f"{os.getpid()}\n")
    _forget_stopped_children(guard, services)
    assert (services / "supernode.pid").is_file()
