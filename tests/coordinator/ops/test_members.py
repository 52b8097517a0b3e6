"""add/remove-participant and the member list without a SuperLink (the rest is integration).

The member-list tests replace the two ``flwr supernode`` calls with a stand-in that
hands out node ids (:func:`fake_superlink`); ``tests/deployment/test_edge_integration.py``
registers banks with a real SuperLink.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest
from click.testing import Result
from cryptography.hazmat.primitives import serialization
from typer.testing import CliRunner

from cli.app import app
from coordinator.ops import members as members_module
from coordinator.ops.consortium import Consortium, ConsortiumConfig
from coordinator.ops.members import (
    Participant,
    ParticipantStatus,
    add_participant,
    list_participants,
    member_list,
    remove_participant,
    validate_bank_name,
)
from coordinator.ops.provisioning import init_consortium
from credit.audit import fingerprint, load_public_key
from credit.errors import ConfigError
from deploy.bundle import Bundle
from deploy.services import ServiceError
from participant.node.node_keys import BankKeyFiles, generate_bank_keys
from privacy.secagg.members import MemberList
from tests.support.cli import one_error_line


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
        add_participant(consortium, "bank-a", keys.node_public, keys.audit_public)
    assert list_participants(consortium) == []


def test_add_refuses_keys_that_are_not_node_keys(consortium: Consortium, tmp_path: Path) -> None:
    keys = generate_bank_keys(tmp_path / "keys")
    with pytest.raises(ConfigError, match=r"node\.key: not an OpenSSH public key"):
        add_participant(consortium, "bank-a", keys.node_key, keys.audit_public)
    with pytest.raises(ConfigError, match=r"audit\.pub: not an OpenSSH public key"):
        add_participant(consortium, "bank-a", keys.audit_public, keys.audit_public)
    with pytest.raises(ConfigError, match=r"nothing\.pub: cannot read"):
        add_participant(consortium, "bank-a", tmp_path / "nothing.pub", keys.audit_public)


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
        add_participant(consortium, "bank-a", keys.node_public, keys.audit_public)
    blob = base64.b64decode(keys.node_public.read_text().split()[1])
    _record(consortium, "bank-b", 2, hashlib.sha256(blob).hexdigest())
    with pytest.raises(ConfigError, match="already registered for participant 'bank-b'"):
        add_participant(consortium, "bank-c", keys.node_public, keys.audit_public)


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


@pytest.fixture
def fake_superlink(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, ...]]:
    """``flwr supernode register``/``unregister`` answered here: node ids 101, 102, ..."""
    calls: list[tuple[str, ...]] = []

    def flwr(flwr_home: Path, *args: str, timeout: float = 60.0) -> dict[str, object]:
        calls.append(args)
        return {"success": True, "node-id": 100 + len(calls)}

    monkeypatch.setattr(members_module, "run_flwr", flwr)
    monkeypatch.setattr(members_module, "_require_superlink", lambda consortium: None)
    return calls


def _raw(public: Path) -> bytes:
    return load_public_key(public).public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )


def _add(consortium: Consortium, tmp_path: Path, bank: str) -> BankKeyFiles:
    keys = generate_bank_keys(tmp_path / f"keys-{bank}")
    add_participant(consortium, bank, keys.node_public, keys.audit_public)
    return keys


def test_adding_banks_keeps_the_member_list_and_puts_it_in_each_new_bundle(
    consortium: Consortium, tmp_path: Path, fake_superlink: list[tuple[str, ...]]
) -> None:
    a = _add(consortium, tmp_path, "bank-a")
    first = MemberList.load(consortium.paths.members)
    b = _add(consortium, tmp_path, "bank-b")
    listed = MemberList.load(consortium.paths.members)

    assert first.names == {"bank-a"} and first.consortium == "nordic"
    assert listed.names == {"bank-a", "bank-b"} and listed.consortium == "nordic"
    assert listed.member("bank-a").signing_key == _raw(a.audit_public)
    assert listed.member("bank-b").signing_key == _raw(b.audit_public)
    assert member_list(consortium) == listed
    record = next(p for p in list_participants(consortium) if p.name == "bank-b")
    assert base64.b64decode(record.audit_key or "") == _raw(b.audit_public)
    # bank-b's bundle carries the list with both; bank-a's, written before, only bank-a.
    bundle_b = Bundle.load(consortium.paths.participant("bank-b") / "bundle")
    bundle_a = Bundle.load(consortium.paths.participant("bank-a") / "bundle")
    assert bundle_b.members_fingerprint == listed.fingerprint
    assert bundle_b.members_path is not None
    assert MemberList.load(bundle_b.members_path) == listed
    assert bundle_a.members_fingerprint == first.fingerprint
    # Each bundle carries the coordinator's audit key, which signs the model packages.
    coordinator_key = load_public_key(consortium.paths.audit_public_key)
    assert bundle_b.coordinator_key_sha256 == fingerprint(coordinator_key)
    assert bundle_b.coordinator_key_path is not None
    assert fingerprint(load_public_key(bundle_b.coordinator_key_path)) == fingerprint(
        coordinator_key
    )
    assert [call[:2] for call in fake_superlink] == [("supernode", "register")] * 2


def test_removing_a_bank_takes_it_off_the_member_list(
    consortium: Consortium, tmp_path: Path, fake_superlink: list[tuple[str, ...]]
) -> None:
    for bank in ("bank-a", "bank-b", "bank-c"):
        _add(consortium, tmp_path, bank)

    removal = remove_participant(consortium, "bank-b")
    assert removal.record.status is ParticipantStatus.REMOVED
    assert removal.members is not None and removal.members.names == {"bank-a", "bank-c"}
    assert MemberList.load(consortium.paths.members) == removal.members

    remove_participant(consortium, "bank-a")
    assert remove_participant(consortium, "bank-c").members is None
    assert not consortium.paths.members.exists()  # a list names at least one bank


def test_an_audit_key_is_needed_and_checked_before_anything_is_registered(
    consortium: Consortium, tmp_path: Path, fake_superlink: list[tuple[str, ...]]
) -> None:
    keys = generate_bank_keys(tmp_path / "keys")
    with pytest.raises(ConfigError, match=r"nothing\.pub: not the bank's audit key: cannot read"):
        add_participant(consortium, "bank-a", keys.node_public, tmp_path / "nothing.pub")
    with pytest.raises(
        ConfigError, match=r"node\.pub: not the bank's audit key: expected an Ed25519"
    ):
        add_participant(consortium, "bank-a", keys.node_public, keys.node_public)
    garbage = tmp_path / "garbage.pub"
    garbage.write_text("hello\n")
    with pytest.raises(ConfigError, match=r"garbage\.pub: not the bank's audit key: not a PEM"):
        add_participant(consortium, "bank-a", keys.node_public, garbage)

    _add(consortium, tmp_path, "bank-b")
    reused = generate_bank_keys(tmp_path / "reused")
    with pytest.raises(
        ConfigError, match="audit key is already registered for participant 'bank-b'"
    ):
        add_participant(
            consortium, "bank-c", reused.node_public, tmp_path / "keys-bank-b" / "audit.pub"
        )
    assert [p.name for p in list_participants(consortium)] == ["bank-b"]
    assert len(fake_superlink) == 1  # only bank-b was registered


def _invoke(*args: str) -> Result:
    return CliRunner().invoke(app, ["coordinator", *args])


def test_add_participant_command_takes_audit_pub_beside_the_node_key_or_refuses(
    consortium: Consortium, tmp_path: Path, fake_superlink: list[tuple[str, ...]]
) -> None:
    root = str(consortium.paths.root)
    keys = generate_bank_keys(tmp_path / "keys")
    lone = tmp_path / "lone"
    lone.mkdir()
    (lone / "node.pub").write_bytes(keys.node_public.read_bytes())

    missing = one_error_line(
        _invoke("add-participant", root, "bank-a", "--public-key", str(lone / "node.pub"))
    )
    assert missing == (
        f"error: --audit-key: no audit.pub beside {lone / 'node.pub'}: pass the bank's audit "
        "key (the audit.pub that `fedcredit participant keygen` wrote) with --audit-key"
    )
    wrong = one_error_line(
        _invoke(
            "add-participant", root, "bank-a", "--public-key", str(keys.node_public),
            "--audit-key", str(keys.node_public),
        )
    )  # fmt: skip
    assert wrong.startswith(f"error: {keys.node_public}: not the bank's audit key")
    assert fake_superlink == []

    added = _invoke("add-participant", root, "bank-a", "--public-key", str(keys.node_public))
    assert added.exit_code == 0, added.stderr
    listed = MemberList.load(consortium.paths.members)
    assert f"member list of nordic: 1 bank, fingerprint {listed.fingerprint}" in added.stdout
    assert "send it to the other banks" not in added.stdout  # nobody has an older list
    other = generate_bank_keys(tmp_path / "other")
    second = _invoke("add-participant", root, "bank-b", "--public-key", str(other.node_public))
    assert second.exit_code == 0, second.stderr
    assert f"fedcredit coordinator members {root} --out members.json" in second.stdout


def test_members_command_prints_the_list_and_its_fingerprint_and_writes_it(
    consortium: Consortium, tmp_path: Path, fake_superlink: list[tuple[str, ...]]
) -> None:
    root = str(consortium.paths.root)
    assert "no bank is registered" in one_error_line(_invoke("members", root))
    a = _add(consortium, tmp_path, "bank-a")
    _add(consortium, tmp_path, "bank-b")
    out = tmp_path / "to-send" / "members.json"
    out.parent.mkdir()

    result = _invoke("members", root, "--out", str(out))

    assert result.exit_code == 0, result.stderr
    listed = MemberList.load(consortium.paths.members)
    assert MemberList.load(out) == listed
    assert f"fingerprint {listed.fingerprint}" in result.stdout
    assert hashlib.sha256(_raw(a.audit_public)).hexdigest() in result.stdout
    assert "compare this fingerprint with each other out of band" in result.stdout
    unwritable = _invoke("members", root, "--out", str(tmp_path / "no" / "such" / "m.json"))
    assert "cannot write the member list" in one_error_line(unwritable)


def test_a_record_without_an_audit_key_blocks_the_list_with_what_to_do(
    consortium: Consortium, tmp_path: Path, fake_superlink: list[tuple[str, ...]]
) -> None:
    _record(consortium, "bank-old", 7, "0" * 64)  # a record from before member lists
    keys = generate_bank_keys(tmp_path / "keys")
    with pytest.raises(ConfigError, match="no audit key is recorded for bank-old"):
        add_participant(consortium, "bank-a", keys.node_public, keys.audit_public)
    assert fake_superlink == []  # refused before registering
    line = one_error_line(_invoke("members", str(consortium.paths.root)))
    assert "remove each with `fedcredit coordinator remove-participant`" in line
    assert "add it again with --audit-key" in line
    assert remove_participant(consortium, "bank-old").members is None  # revoking still works


def test_revoking_never_waits_on_the_member_list(
    consortium: Consortium, tmp_path: Path, fake_superlink: list[tuple[str, ...]]
) -> None:
    _add(consortium, tmp_path, "bank-a")
    _add(consortium, tmp_path, "bank-b")
    _record(consortium, "bank-old", 7, "0" * 64)  # a record from before member lists

    result = _invoke("remove-participant", str(consortium.paths.root), "bank-a")

    assert result.exit_code == 0, result.stderr
    assert "participant 'bank-a' removed" in result.stdout
    assert "no member list: bank-old has no recorded audit key" in result.stdout
    assert not consortium.paths.members.exists()  # no list left that names bank-a
    status = {p.name: p.status for p in list_participants(consortium)}
    assert status["bank-a"] is ParticipantStatus.REMOVED


def test_a_consortium_name_the_member_list_cannot_carry_is_refused(tmp_path: Path) -> None:
    for name in ("Nordic", "nordic.credit", "nordic_credit"):
        result = _invoke("init", str(tmp_path / name), "--name", name, "--host", "h")
        assert one_error_line(result).startswith("error: fedcredit coordinator init: 'name'")
