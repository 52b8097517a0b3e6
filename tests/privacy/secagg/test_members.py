"""The consortium member list: parsing, fingerprints, signature checks."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from credit.errors import ConfigError
from privacy.secagg.members import Member, MemberList, UnknownMember, ed25519_verifies


def _raw(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@pytest.fixture
def keys() -> dict[str, Ed25519PrivateKey]:
    return {name: Ed25519PrivateKey.generate() for name in ("bank-b", "bank-a", "bank-c")}


@pytest.fixture
def members(keys: dict[str, Ed25519PrivateKey]) -> MemberList:
    return MemberList(
        consortium="north-sea-credit",
        members=tuple(Member(name=n, signing_key=_raw(k)) for n, k in keys.items()),
    )


def test_a_written_list_reads_back_with_the_same_fingerprint(
    members: MemberList, tmp_path: Path
) -> None:
    path = tmp_path / "members.json"
    members.write(path)
    again = MemberList.load(path)
    assert again == members
    assert again.fingerprint == members.fingerprint
    assert [m.name for m in again.members] == ["bank-a", "bank-b", "bank-c"]


def test_the_fingerprint_ignores_order_and_layout_but_not_content(members: MemberList) -> None:
    document = json.loads(members.canonical_bytes())
    document["members"].reverse()
    reordered = MemberList.from_json(json.dumps(document, indent=4))
    assert reordered.fingerprint == members.fingerprint
    document["members"][0]["signing_key"] = base64.b64encode(
        _raw(Ed25519PrivateKey.generate())
    ).decode()
    assert MemberList.from_json(json.dumps(document)).fingerprint != members.fingerprint
    document = json.loads(members.canonical_bytes())
    document["consortium"] = "another-consortium"
    assert MemberList.from_json(json.dumps(document)).fingerprint != members.fingerprint


def test_a_member_verifies_only_its_own_signature(
    members: MemberList, keys: dict[str, Ed25519PrivateKey]
) -> None:
    message = b"round 3 keys"
    signature = keys["bank-a"].sign(message)
    assert members.member("bank-a").verifies(signature, message)
    assert not members.member("bank-b").verifies(signature, message)
    assert not members.member("bank-a").verifies(signature, message + b"!")
    assert not members.member("bank-a").verifies(b"short", message)


def test_a_remembered_check_answers_as_a_fresh_one_and_remembers_refusals(
    members: MemberList, keys: dict[str, Ed25519PrivateKey]
) -> None:
    """Many simulated banks in one process check the same signatures: the second check is
    remembered, and a forged signature, key or message is never taken for a remembered
    genuine one (the three byte strings are the key)."""
    message = b"enrollment of node 7"
    signature = keys["bank-c"].sign(message)
    bank_c = members.member("bank-c")
    forged = bytes([signature[0] ^ 1]) + signature[1:]
    assert bank_c.verifies(signature, message)
    hits = ed25519_verifies.cache_info().hits

    assert bank_c.verifies(signature, message)
    assert ed25519_verifies.cache_info().hits == hits + 1
    assert not bank_c.verifies(forged, message)
    assert not members.member("bank-b").verifies(signature, message)
    assert not bank_c.verifies(signature, message + b" ")
    assert not bank_c.verifies(forged, message)  # remembered as refused


def test_an_unknown_name_is_refused_by_name(members: MemberList) -> None:
    with pytest.raises(UnknownMember, match="'bank-z' is not on the pinned member list"):
        members.member("bank-z")


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ("not json", "not JSON"),
        ("[]", "must be a JSON object"),
        ('{"members": []}', "'consortium' must be a string"),
        ('{"consortium": "c", "members": []}', "'members' must be a non-empty list"),
        ('{"consortium": "c", "members": [1]}', r"'members\[0\]' must be an object"),
        (
            '{"consortium": "c", "members": [{"name": "a", "signing_key": "%%%"}]}',
            r"'members\[0\].signing_key' is not base64",
        ),
        (
            '{"consortium": "c", "members": [{"name": "a", "signing_key": "AAAA"}]}',
            r"'members\[0\]'.*32 raw Ed25519 bytes; got 3",
        ),
        (
            json.dumps(
                {
                    "consortium": "C D",
                    "members": [{"name": "a", "signing_key": base64.b64encode(bytes(32)).decode()}],
                }
            ),
            "consortium name must be lowercase",
        ),
    ],
)
def test_a_malformed_list_is_refused_naming_the_field(document: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        MemberList.from_json(document, source="members.json")


def test_a_name_or_key_listed_twice_is_refused() -> None:
    key = base64.b64encode(_raw(Ed25519PrivateKey.generate())).decode()
    other = base64.b64encode(_raw(Ed25519PrivateKey.generate())).decode()
    twice = {"consortium": "c", "members": [{"name": "a", "signing_key": key}] * 2}
    with pytest.raises(ConfigError, match=r"names \['a'\] more than once"):
        MemberList.from_json(json.dumps(twice))
    shared = {
        "consortium": "c",
        "members": [{"name": "a", "signing_key": key}, {"name": "b", "signing_key": key}],
    }
    with pytest.raises(ConfigError, match="share one signing key"):
        MemberList.from_json(json.dumps(shared))
    assert MemberList.from_json(
        json.dumps(
            {
                "consortium": "c",
                "members": [{"name": "a", "signing_key": key}, {"name": "b", "signing_key": other}],
            }
        )
    ).names == {"a", "b"}


def test_a_missing_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"members\.json: cannot read the member list"):
        MemberList.load(tmp_path / "members.json")


def test_a_list_read_again_is_remembered_and_a_changed_byte_is_read_afresh(
    members: MemberList, tmp_path: Path
) -> None:
    """Every simulated bank of a worker reads the pinned list at each message: the same
    bytes give the same (immutable) list; other bytes are parsed, and refused, afresh."""
    data = members.canonical_bytes()
    assert MemberList.from_json(data) is MemberList.from_json(bytes(data))
    assert MemberList.from_json(data) == members
    document = json.loads(data)
    document["members"][0]["signing_key"] = base64.b64encode(
        _raw(Ed25519PrivateKey.generate())
    ).decode()
    changed = MemberList.from_json(json.dumps(document).encode())
    assert changed.fingerprint != members.fingerprint
    document["members"].append(document["members"][1])
    for _ in range(2):
        with pytest.raises(ConfigError, match=r"names \['bank-b'\] more than once"):
            MemberList.from_json(json.dumps(document))
