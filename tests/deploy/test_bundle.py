"""Onboarding bundles: written by the operator, checked by the bank on arrival."""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from credit.audit import (
    fingerprint,
    load_or_create_signing_key,
    load_public_key,
    public_key_path,
    public_key_pem,
)
from credit.errors import ConfigError
from credit.schema import embedded_schema_path, load_schema
from deploy.bundle import BUNDLE_FILE, Bundle
from privacy.budget import PrivacyBudget
from privacy.secagg.members import Member, MemberList

SCHEMA_HASH = load_schema().schema_hash()


def _bundle(**fields: object) -> Bundle:
    values: dict[str, object] = {
        "consortium": "nordic",
        "bank": "bank-a",
        "superlink": "fl.example:9443",
        "config_sha256": hashlib.sha256(b"config").hexdigest(),
        "schema_sha256": SCHEMA_HASH,
        "fedcredit_version": "0.1.0",
        "privacy": {"max_epsilon": 3.0},
    }
    values.update(fields)
    return Bundle.model_validate(values)


@pytest.fixture
def written(tmp_path: Path) -> Bundle:
    ca = tmp_path / "source-ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    return _bundle().write(tmp_path / "bundle", ca_cert=ca, schema=embedded_schema_path())


def test_round_trip(written: Bundle, tmp_path: Path) -> None:
    folder = tmp_path / "bundle"
    assert sorted(p.name for p in folder.iterdir()) == ["bundle.toml", "ca.crt", "schema.toml"]
    for where in (folder, folder / BUNDLE_FILE):
        loaded = Bundle.load(where)
        assert loaded == written
        assert loaded.folder == folder.resolve()
        assert loaded.ca_cert == folder.resolve() / "ca.crt"
        assert loaded.schema_path == folder.resolve() / "schema.toml"
    assert loaded.privacy == PrivacyBudget(max_epsilon=3.0)


def test_folder_is_not_serialized(written: Bundle, tmp_path: Path) -> None:
    raw = tomllib.loads((tmp_path / "bundle" / BUNDLE_FILE).read_text())
    assert "folder" not in raw
    assert raw["privacy"] == {"max_epsilon": 3.0}  # unset optional values are left out
    assert raw["superlink"] == "fl.example:9443"


def test_copying_a_bundle(written: Bundle, tmp_path: Path) -> None:
    copy = written.write(tmp_path / "copy")
    assert Bundle.load(tmp_path / "copy") == copy
    assert copy.ca_cert.read_bytes() == written.ca_cert.read_bytes()


def test_changed_schema_is_refused(written: Bundle) -> None:
    text = written.schema_path.read_text().replace("max = 2_000_000", "max = 3_000_000", 1)
    assert text != written.schema_path.read_text()
    written.schema_path.write_text(text)
    with pytest.raises(ConfigError, match=r"schema\.toml: schema hash .* differs"):
        Bundle.load(written.folder)


def test_comment_only_changes_keep_the_schema_hash(written: Bundle) -> None:
    written.schema_path.write_text("# annotated by the bank\n" + written.schema_path.read_text())
    assert Bundle.load(written.folder).schema_sha256 == SCHEMA_HASH


@pytest.mark.parametrize("missing", ["ca.crt", "schema.toml"])
def test_missing_file_is_named(written: Bundle, missing: str) -> None:
    (written.folder / missing).unlink()
    with pytest.raises(ConfigError, match=rf"{missing}: missing from the bundle"):
        Bundle.load(written.folder)


def test_not_a_bundle_folder(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"bundle\.toml: file not found; pass the bundle folder the operator sent"
    ):
        Bundle.load(tmp_path)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t + "\n[[[", r"bundle\.toml: not valid TOML"),
        (lambda t: 'extra = "x"\n' + t, r"bundle\.toml: 'extra': unknown key"),
        (lambda t: 'folder = "/etc"\n' + t, r"bundle\.toml: 'folder': unknown key"),
        (
            lambda t: t.replace('"fl.example:9443"', '"https://fl.example"'),
            r"bundle\.toml: 'superlink': must be host:port",
        ),
        (
            lambda t: t.replace('bank = "bank-a"', 'bank = "Bank A"'),
            r"bundle\.toml: 'bank': String should match pattern",
        ),
        (
            lambda t: t.replace("max_epsilon = 3.0", "max_epsilon = -1.0"),
            r"bundle\.toml: 'privacy.max_epsilon': Input should be greater than 0",
        ),
        (
            lambda t: "\n".join(line for line in t.splitlines() if "schema_sha256" not in line),
            r"bundle\.toml: 'schema_sha256': Field required",
        ),
    ],
)
def test_bad_bundle_toml(written: Bundle, edit: object, message: str) -> None:
    path = written.folder / BUNDLE_FILE
    path.write_text(edit(path.read_text()))  # type: ignore[operator]
    with pytest.raises(ConfigError, match=message) as caught:
        Bundle.load(written.folder)
    assert "\n" not in str(caught.value)


def _member_list(consortium: str = "nordic") -> MemberList:
    keys = [
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        for _ in range(3)
    ]
    members = (Member(name=f"bank-{n}", signing_key=k) for n, k in zip("abc", keys, strict=True))
    return MemberList(consortium=consortium, members=tuple(members))


@pytest.fixture
def with_members(tmp_path: Path) -> Bundle:
    ca = tmp_path / "source-ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    members = _member_list()
    source = tmp_path / "source-members.json"
    members.write(source)
    return _bundle(members_fingerprint=members.fingerprint).write(
        tmp_path / "bundle", ca_cert=ca, schema=embedded_schema_path(), members=source
    )


def test_a_bundle_carries_the_member_list_and_its_fingerprint(
    with_members: Bundle, tmp_path: Path
) -> None:
    folder = tmp_path / "bundle"
    assert (folder / "members.json").is_file()
    loaded = Bundle.load(folder)
    assert loaded.members_path == folder.resolve() / "members.json"
    assert loaded.members_fingerprint == MemberList.load(folder / "members.json").fingerprint
    copy = loaded.write(tmp_path / "copy")  # a copy keeps the list
    assert Bundle.load(copy.folder).members_fingerprint == loaded.members_fingerprint
    assert _bundle().members_path is None  # a bundle from before member lists has none


def test_a_bundle_whose_member_list_changed_or_went_missing_is_refused(
    with_members: Bundle, tmp_path: Path
) -> None:
    folder = tmp_path / "bundle"
    _member_list().write(folder / "members.json")  # same names, other keys
    with pytest.raises(ConfigError, match="differs from the bundle's members_fingerprint"):
        Bundle.load(folder)
    (folder / "members.json").unlink()
    with pytest.raises(ConfigError, match=r"members\.json: missing from the bundle"):
        Bundle.load(folder)


def test_a_malformed_members_fingerprint_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="members_fingerprint"):
        _bundle(members_fingerprint="sha256:abc")


@pytest.fixture
def with_coordinator_key(tmp_path: Path) -> Bundle:
    ca = tmp_path / "source-ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    key = tmp_path / "keys" / "coordinator.key"
    public = load_or_create_signing_key(key).public_key()
    return _bundle(coordinator_key_sha256=fingerprint(public)).write(
        tmp_path / "bundle",
        ca_cert=ca,
        schema=embedded_schema_path(),
        coordinator_key=public_key_path(key),
    )


def test_a_bundle_carries_the_coordinator_key_a_bank_pins_for_model_packages(
    with_coordinator_key: Bundle, tmp_path: Path
) -> None:
    folder = tmp_path / "bundle"
    loaded = Bundle.load(folder)
    assert loaded.coordinator_key_path == folder.resolve() / "coordinator.pub"
    expected = load_public_key(public_key_path(tmp_path / "keys" / "coordinator.key"))
    assert fingerprint(load_public_key(folder / "coordinator.pub")) == fingerprint(expected)
    copy = loaded.write(tmp_path / "copy")  # a copy keeps the key
    assert Bundle.load(copy.folder).coordinator_key_sha256 == loaded.coordinator_key_sha256
    assert _bundle().coordinator_key_path is None  # a bundle from before signed packages


def test_a_bundle_whose_coordinator_key_changed_or_went_missing_is_refused(
    with_coordinator_key: Bundle, tmp_path: Path
) -> None:
    folder = tmp_path / "bundle"
    other = load_or_create_signing_key(tmp_path / "other" / "coordinator.key").public_key()
    (folder / "coordinator.pub").write_bytes(public_key_pem(other))
    with pytest.raises(ConfigError, match="differs from the bundle's coordinator_key_sha256"):
        Bundle.load(folder)
    (folder / "coordinator.pub").write_text("not a key\n")
    with pytest.raises(ConfigError, match=r"coordinator\.pub: not an Ed25519 public key"):
        Bundle.load(folder)
    (folder / "coordinator.pub").unlink()
    with pytest.raises(ConfigError, match=r"coordinator\.pub: missing from the bundle"):
        Bundle.load(folder)
