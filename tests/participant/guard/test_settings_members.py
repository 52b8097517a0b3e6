"""The guard's pinned member list and secure-aggregation policy."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import SecretStr, ValidationError

from credit.errors import ConfigError
from credit.run_config import RunConfig
from participant.guard.settings import GuardSettings, HoldOut, SecAggPolicy
from privacy.secagg.members import Member, MemberList
from privacy.secagg.protocol import DEFAULT_THRESHOLD_FRACTION


def _members(*names: str) -> MemberList:
    raw = [
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        for _ in names
    ]
    listed = tuple(Member(name=n, signing_key=k) for n, k in zip(names, raw, strict=True))
    return MemberList(consortium="test", members=listed)


def _settings(**fields: object) -> GuardSettings:
    holdout = HoldOut(salt=SecretStr("ab" * 32))
    return GuardSettings(bank_name="bank-a", data_path=Path("x.csv"), holdout=holdout, **fields)


@pytest.mark.parametrize(("size", "threshold"), [(3, 3), (4, 3), (5, 4), (6, 5), (9, 7), (10, 7)])
def test_the_default_threshold_is_more_than_two_thirds_of_the_roster(
    size: int, threshold: int
) -> None:
    assert SecAggPolicy().threshold(size) == threshold
    assert threshold > 2 * size / 3


def test_the_banks_and_the_coordinators_default_policies_are_the_same() -> None:
    assert RunConfig().secagg_threshold_fraction == SecAggPolicy().threshold_fraction
    assert SecAggPolicy().threshold_fraction == DEFAULT_THRESHOLD_FRACTION
    schema = RunConfig.model_json_schema()["properties"]["secagg_threshold_fraction"]
    assert (schema["minimum"], schema["exclusiveMaximum"]) == (0.5, 1)  # the bank's bounds too


def test_a_policy_below_a_majority_or_a_roster_below_three_is_refused() -> None:
    with pytest.raises(ValidationError, match="threshold_fraction"):
        SecAggPolicy(threshold_fraction=0.4)
    with pytest.raises(ValidationError, match="min_roster"):
        SecAggPolicy(min_roster=2)
    assert SecAggPolicy(threshold_fraction=0.5).threshold(4) == 3


def test_the_pinned_list_is_read_back_and_a_changed_list_is_refused(tmp_path: Path) -> None:
    members = _members("bank-a", "bank-b", "bank-c")
    path = tmp_path / "members.json"
    members.write(path)
    settings = _settings(members_path=path, members_fingerprint=members.fingerprint)
    assert settings.pinned_members() == members
    _members("bank-a", "bank-b", "bank-c").write(path)  # same names, other keys
    with pytest.raises(ConfigError, match="not the pinned SHA256:"):
        settings.pinned_members()
    assert _settings().pinned_members() is None


def test_a_path_without_a_fingerprint_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="go together"):
        _settings(members_path=tmp_path / "members.json")
