"""The node keeps the bank's hold-out: a salt made at the first start, kept across restarts."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from cli.app import app
from credit.errors import ConfigError
from deploy.bundle import Bundle
from participant.guard.bank import prepare_bank
from participant.guard.bank_guard import BankGuard
from participant.node.node_keys import BankKeyFiles
from participant.node.supernode import (
    NodePlan,
    NodeSettings,
    keeps_holdout_salt,
    node_holdout,
    prepare_node,
    stop_node,
    supernode_command,
)
from privacy.budget import PrivacyBudget
from tests.participant.guard.bank_messages import hold_out


def _settings(bundle: Bundle, keys: BankKeyFiles, data: Path, home: Path) -> NodeSettings:
    """What ``participant start --max-epsilon 2`` makes of its flags (hold-out as kept)."""
    return NodeSettings(
        bundle=bundle,
        key=keys.node_key,
        data=data,
        home=home,
        budget=PrivacyBudget(max_epsilon=2.0),
        audit_key=keys.audit_key,
        holdout=node_holdout(home, fraction=None, salt=None),
        runtime_port=19194,
    )


def _first_start(settings: NodeSettings) -> tuple[NodePlan, BankGuard]:
    """What ``participant start`` does before the guard service starts."""
    plan = prepare_node(settings)
    if not keeps_holdout_salt(plan.home):
        plan.save()
    guard = BankGuard.open(plan.guard)
    guard.close()
    plan.save()
    return plan, guard


def test_the_first_start_makes_a_salt_and_a_restart_keeps_it_and_the_split(
    bundle: Bundle, keys: BankKeyFiles, tmp_path: Path, write_bank_csv: Callable[..., Path]
) -> None:
    home, data = tmp_path / "node", write_bank_csv(400)
    first = _settings(bundle, keys, data, home)
    plan, guard = _first_start(first)
    salt = first.holdout.salt.get_secret_value()
    prepare_bank.cache_clear()  # a restart is a new process
    again = _settings(bundle, keys, data, home)
    _, restarted = _first_start(again)

    assert len(salt) == 64 and first.holdout.fraction == 0.2
    assert again.holdout == first.holdout  # the salt kept in node.json
    assert restarted.bank.split_digest == guard.bank.split_digest
    assert restarted.bank.test["ID"].tolist() == guard.bank.test["ID"].tolist()
    assert NodePlan.load(home).guard.holdout == first.holdout
    assert (home / "node.json").stat().st_mode & 0o777 == 0o600
    assert salt not in " ".join(supernode_command(plan))
    other_node = node_holdout(tmp_path / "other", fraction=None, salt=None)
    assert other_node.salt != first.holdout.salt  # each node draws its own


def test_the_bank_may_pass_its_own_salt_or_fraction(tmp_path: Path) -> None:
    home = tmp_path / "node"
    home.mkdir()
    kept = {"guard": {"holdout": {"fraction": 0.25, "salt": "1f" * 32}}}
    (home / "node.json").write_text(json.dumps(kept))

    assert node_holdout(home, fraction=None, salt=None) == hold_out("1f" * 32, fraction=0.25)
    assert node_holdout(home, fraction=0.3, salt=None) == hold_out("1f" * 32, fraction=0.3)
    assert node_holdout(home, fraction=None, salt="2e" * 32) == hold_out("2e" * 32, fraction=0.25)


def test_a_plan_from_before_the_salt_gets_one_and_keeps_its_fraction(tmp_path: Path) -> None:
    home = tmp_path / "node"
    home.mkdir()
    old = {"guard": {"holdout": {"fraction": 0.3, "seed": 0}}}
    (home / "node.json").write_text(json.dumps(old))

    holdout = node_holdout(home, fraction=None, salt=None)
    assert holdout.fraction == 0.3 and len(holdout.salt.get_secret_value()) == 64
    assert not keeps_holdout_salt(home)


def test_an_unreadable_plan_or_a_bad_salt_is_refused_without_showing_it(tmp_path: Path) -> None:
    home = tmp_path / "node"
    home.mkdir()
    plan = home / "node.json"
    plan.write_text("{ torn")
    with pytest.raises(ConfigError, match="pass --holdout-salt and --holdout-fraction") as torn:
        node_holdout(home, fraction=None, salt=None)
    assert str(plan) in str(torn.value)

    plan.write_text(json.dumps({"guard": {"holdout": {"fraction": 0.2, "salt": "ab" * 20}}}))
    with pytest.raises(ConfigError, match=r"guard\.holdout\.salt of .*node\.json") as short:
        node_holdout(home, fraction=None, salt=None)
    with pytest.raises(ConfigError, match="'--holdout-salt': must have at least 64") as flag:
        node_holdout(home, fraction=None, salt="cd" * 20)
    assert "ab" * 20 not in str(short.value) and "cd" * 20 not in str(flag.value)


def _start(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(app, ["participant", "start", *args], env=env)


def test_start_refuses_a_ledger_bound_to_another_split(
    bundle: Bundle, keys: BankKeyFiles, tmp_path: Path, write_bank_csv: Callable[..., Path]
) -> None:
    """Another salt, fraction or data file: one line naming the ledger; the salt stays kept.

    Fails on the old code, which had no salt and let a restart with another
    ``--holdout-seed`` move training rows into the test split.
    """
    home, data = tmp_path / "node", write_bank_csv(400)
    settings = _settings(bundle, keys, data, home)
    _first_start(settings)
    kept = (home / "node.json").read_text()
    ledger = home / "privacy-ledger.jsonl"
    bound = ledger.read_text()
    base = ["--bundle", str(bundle.folder), "--key", str(keys.node_key), "--home", str(home)]
    base += ["--data", str(data), "--max-epsilon", "2"]
    try:
        prepare_bank.cache_clear()
        other_salt = _start(*base, "--holdout-salt", "0f" * 32)
        prepare_bank.cache_clear()
        other_salt_env = _start(*base, env={"FEDCREDIT_HOLDOUT_SALT": "0e" * 32})
        prepare_bank.cache_clear()
        other_fraction = _start(*base, "--holdout-fraction", "0.3")
        write_bank_csv(500)  # the same file, 100 customers more
        prepare_bank.cache_clear()
        other_data = _start(*base)
    finally:
        started = stop_node(home)

    assert not started
    for result in (other_salt, other_salt_env, other_fraction, other_data):
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert f"{ledger}: the ledger is bound to hold-out split" in result.stderr
        assert "start a new node folder with --home" in result.stderr
    assert (home / "node.json").read_text() == kept  # the refused salt replaced nothing
    assert ledger.read_text() == bound


def test_the_validation_part_is_new_nodes_default_and_older_nodes_keep_none(
    tmp_path: Path,
) -> None:
    """A first start keeps 0.2 of the training rows for validation; a node whose plan
    predates validation parts keeps none (its ledger's split stays); a passed one wins."""
    assert node_holdout(tmp_path / "new", fraction=None, salt=None).validation_fraction == 0.2
    home = tmp_path / "node"
    home.mkdir()
    older = {"guard": {"holdout": {"fraction": 0.25, "salt": "1f" * 32}}}
    (home / "node.json").write_text(json.dumps(older))
    assert node_holdout(home, fraction=None, salt=None).validation_fraction == 0.0
    passed = node_holdout(home, fraction=None, salt=None, validation_fraction=0.15)
    assert passed == hold_out("1f" * 32, fraction=0.25).model_copy(
        update={"validation_fraction": 0.15}
    )
    kept = {"guard": {"holdout": {**older["guard"]["holdout"], "validation_fraction": 0.15}}}
    (home / "node.json").write_text(json.dumps(kept))
    assert node_holdout(home, fraction=None, salt=None) == passed


def test_the_banks_boosting_policy_reaches_its_guard_through_the_saved_plan(
    bundle: Bundle, keys: BankKeyFiles, tmp_path: Path, write_bank_csv: Callable[..., Path]
) -> None:
    from dataclasses import replace

    from participant.guard.settings import GbdtPolicy
    from participant.node.supernode import node_plan

    home = tmp_path / "node"
    policy = GbdtPolicy(max_trees=40, max_depth=3, min_node_rows=25)
    settings = replace(_settings(bundle, keys, write_bank_csv(400), home), gbdt=policy)
    assert node_plan(settings).guard.gbdt == policy
    plan, _ = _first_start(settings)  # what participant start does: the plan saved
    assert NodePlan.load(plan.home).guard.gbdt == policy
