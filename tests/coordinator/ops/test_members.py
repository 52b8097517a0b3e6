"""add/remove-participant input checks that need no SuperLink (the rest is integration)."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app
from coordinator.ops.consortium import Consortium, ConsortiumConfig
from coordinator.ops.members import (
    Participant,
    add_participant,
    list_participants,
    remove_participant,
    validate_bank_name,
)
from coordinator.ops.provisioning import init_consortium
from credit.errors import ConfigError
from deploy.services import ServiceError
from participant.node.node_keys import generate_bank_keys


@pytest.fixture
def consortium(tmp_path: Path) -> Consortium:
    config = ConsortiumConfig.model_validate({"name": "nordic", "hosts": ["localhost"]})
    return init_consortium(tmp_path / "c", config)


@pytest.mark.parametrize("name", ["bank-a", "b", "0bank", "a" * 63])
def test_valid_bank_names(name: str) -> None:
    assert validate_bank_name(name) == name


@pytest.mark.parametrize("name", ["Bank", "-bank", "bank_a", "bank a", "", "a" * 64, "ü"])
def test_invalid_bank_names(name: str) -> None:
    with pytest.raises(ConfigError, match="BANK: bank names use lower-case letters"):
        validate_bank_name(name)


def test_add_needs_a_running_superlink(consortium: Consortium, tmp_path: Path) -> None:
    keys = generate_bank_keys(tmp_path / "keys")
    with pytest.raises(ServiceError, match=r"start it with `fedcredit coordinator start .*c`"):
        add_participant(consortium, "bank-a", keys.node_public)
    assert list_participants(consortium) == []


def test_add_refuses_keys_that_are_not_node_keys(consortium: Consortium, tmp_path: Path) -> None:
    keys = generate_bank_keys(tmp_path / "keys")
    with pytest.raises(ConfigError, match=r"node\.key: not an OpenSSH public key"):
        add_participant(consortium, "bank-a", keys.node_key)
    with pytest.raises(ConfigError, match=r"audit\.pub: not an OpenSSH public key"):
        add_participant(consortium, "bank-a", keys.audit_public)
    with pytest.raises(ConfigError, match=r"nothing\.pub: cannot read"):
        add_participant(consortium, "bank-a", tmp_path / "nothing.pub")


def _record(consortium: Consortium, name: str, node_id: int, key_sha256: str) -> None:
    folder = consortium.paths.participant(name)
    folder.mkdir(parents=True)
    record = Participant(name=name, node_id=node_id, key_sha256=key_sha256, added_at="now")
    (folder / "participant.json").write_text(record.model_dump_json())


def test_duplicates_are_refused_before_flower_is_asked(
    consortium: Consortium, tmp_path: Path
) -> None:
    keys = generate_bank_keys(tmp_path / "keys")
    _record(consortium, "bank-a", 1, "0" * 64)
    with pytest.raises(ConfigError, match="participant 'bank-a' is already registered"):
        add_participant(consortium, "bank-a", keys.node_public)
    blob = base64.b64decode(keys.node_public.read_text().split()[1])
    _record(consortium, "bank-b", 2, hashlib.sha256(blob).hexdigest())
    with pytest.raises(ConfigError, match="already registered for participant 'bank-b'"):
        add_participant(consortium, "bank-c", keys.node_public)


def test_remove_unknown_lists_the_registered(consortium: Consortium) -> None:
    _record(consortium, "bank-a", 1, "0" * 64)
    _record(consortium, "bank-b", 2, "1" * 64)
    with pytest.raises(
        ConfigError, match=r"unknown participant 'x' \(registered: bank-a, bank-b\)"
    ):
        remove_participant(consortium, "x")


def test_remove_command_unknown_bank_exits_2(consortium: Consortium) -> None:
    result = CliRunner().invoke(
        app, ["coordinator", "remove-participant", str(consortium.paths.root), "nope"]
    )
    assert result.exit_code == 2
    assert result.stderr == "error: BANK: unknown participant 'nope' (registered: none)\n"


def test_status_with_everything_down(consortium: Consortium) -> None:
    _record(consortium, "bank-a", 7, "0" * 64)
    result = CliRunner().invoke(app, ["coordinator", "status", str(consortium.paths.root)])
    assert result.exit_code == 0, result.output
    assert "superlink" in result.stdout and "down" in result.stdout
    assert "unknown (SuperLink down)" in result.stdout
