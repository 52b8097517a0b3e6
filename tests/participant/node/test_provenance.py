"""A package's model checked against the models a bank's own audit log says it received."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from cli.app import app
from credit.audit import AuditBroken, AuditLog, public_key_path
from credit.errors import PackageRefused
from credit.package import load_package
from deploy.bundle import Bundle
from participant.node.node_keys import BankKeyFiles
from participant.node.provenance import check_received, package_model_sha256
from participant.node.supernode import NodePlan, NodeSettings, node_plan
from tests.participant.guard.bank_messages import hold_out
from tests.support.gbdt_packages import build_gbdt_package
from tests.support.packages import build_test_package


def _bank_log(path: Path, models: dict[int, str]) -> Path:
    """A bank's audit log that scored ``models`` (round -> model SHA-256) in run q3."""
    with AuditLog.open(path, path.with_suffix(".key"), "bank-a") as log:
        log.append("run-join", {"run": "q3", "task": "feature-stats"})
        for server_round, model in models.items():
            log.append(
                "train", {"run": "q3", "server_round": server_round, "model_sha256": "0" * 64}
            )
            log.append(
                "evaluate", {"run": "q3", "server_round": server_round, "model_sha256": model}
            )
    return path


def test_a_model_the_bank_scored_is_found_in_its_log(tmp_path: Path) -> None:
    package = load_package(build_test_package(tmp_path))
    model = package_model_sha256(package)
    log = _bank_log(tmp_path / "bank" / "audit.jsonl", {1: "1" * 64, 2: model})
    (receipt,) = check_received(package, log, public_key_path(log.with_suffix(".key")))
    assert (receipt.run, receipt.server_round, receipt.event) == ("q3", 2, "evaluate")


def test_a_model_the_bank_never_received_is_refused(tmp_path: Path) -> None:
    """An operator who signs a model of its own choosing: the bank's log never names it."""
    package = load_package(build_test_package(tmp_path))
    log = _bank_log(tmp_path / "bank" / "audit.jsonl", {1: "1" * 64, 2: "2" * 64})
    with pytest.raises(
        PackageRefused, match=r"is not one this bank received: .* 3 models of runs q3"
    ):
        check_received(package, log, public_key_path(log.with_suffix(".key")))


def test_an_edited_bank_log_is_refused_before_it_is_read(tmp_path: Path) -> None:
    """Whoever writes the model's hash into the bank's log breaks its signature."""
    package = load_package(build_test_package(tmp_path))
    model = package_model_sha256(package)
    log = _bank_log(tmp_path / "bank" / "audit.jsonl", {1: "1" * 64})
    log.write_text(log.read_text().replace("1" * 64, model))
    with pytest.raises(AuditBroken):
        check_received(package, log, public_key_path(log.with_suffix(".key")))


def test_the_hash_is_the_wire_hash_of_the_weights(tmp_path: Path) -> None:
    """Changing one weight changes it (the hash covers the arrays, not the file)."""
    package = load_package(build_test_package(tmp_path))
    before = package_model_sha256(package)
    state = package.model.module.state_dict()
    first = next(iter(state))
    state[first].view(-1)[0] += 1.0
    assert package_model_sha256(package) != before


@pytest.fixture
def node(bundle: Bundle, keys: BankKeyFiles, tmp_path: Path) -> Path:
    """bank-a's node folder with the plan `participant start` writes."""
    settings = NodeSettings(
        bundle=bundle,
        key=keys.node_key,
        data=tmp_path / "bank-a.csv",
        home=tmp_path / "node",
        budget=None,
        audit_key=keys.audit_key,
        holdout=hold_out("5a" * 32),
    )
    settings.home.mkdir()
    node_plan(settings).save()
    return settings.home


def _verify(*args: object) -> Result:
    return CliRunner().invoke(app, ["model", "verify", *(str(arg) for arg in args)])


def test_model_verify_with_home_names_the_banks_receipt_or_refuses(
    node: Path, tmp_path: Path
) -> None:
    folder = build_test_package(tmp_path)
    package = load_package(folder)
    audit = NodePlan.load(node).guard.audit_settings()
    assert audit is not None
    with AuditLog.open(audit.log_path, audit.key_path, "bank-a") as log:
        log.append("evaluate", {"run": "q3", "server_round": 1, "model_sha256": "1" * 64})
    refused = _verify(folder, "--home", node)
    assert refused.exit_code == 2
    assert "is not one this bank received" in refused.output
    with AuditLog.open(audit.log_path, audit.key_path, "bank-a") as log:
        model = package_model_sha256(package)
        log.append("evaluate", {"run": "q3", "server_round": 4, "model_sha256": model})
    accepted = _verify(folder, "--home", node)
    assert accepted.exit_code == 0, accepted.output
    assert "run q3 round 4: evaluate" in accepted.output


def test_model_verify_with_home_refuses_boosted_trees_in_one_line(
    node: Path, tmp_path: Path
) -> None:
    """Fail closed: a boosting run's bank log names no model, so nothing vouches for the
    trees (even a log that names other models does not help)."""
    folder = build_gbdt_package(tmp_path)
    audit = NodePlan.load(node).guard.audit_settings()
    assert audit is not None
    with AuditLog.open(audit.log_path, audit.key_path, "bank-a") as log:
        log.append("evaluate", {"run": "q3", "server_round": 1, "model_sha256": "1" * 64})
    refused = _verify(folder, "--home", node)
    assert refused.exit_code == 2
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), refused.stderr
    assert "a boosted-trees package's provenance cannot be checked" in lines[0]
    assert _verify(folder).exit_code == 0  # whole and signed: only the provenance is unknown
