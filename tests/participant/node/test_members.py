"""The bank pins the consortium's member list at ``participant start``.

The start path runs for real up to the guard service: flags, bundle, member list,
data, ledger and audit log are checked in this process and the plan is written; only
:func:`participant.node.supernode.start_node` (which spawns the guard and the
SuperNode) is replaced, so no process is left behind. The deployment tests start the
real services with pinned lists.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from cli.app import app
from credit.errors import ConfigError
from deploy.bundle import Bundle
from participant.guard.bank import prepare_bank
from participant.guard.settings import SecAggPolicy
from participant.node import supernode
from participant.node.members import choose_member_list
from participant.node.node_keys import BankKeyFiles, generate_bank_keys
from participant.node.supernode import NodePlan, StartedNode
from privacy.secagg.members import MemberList
from tests.participant.node.conftest import CONSORTIUM, member_list
from tests.support.cli import one_error_line


@pytest.fixture
def no_services(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[NodePlan]]:
    """``start_node`` records the plan it was given instead of spawning the guard."""
    started: list[NodePlan] = []

    def record(plan: NodePlan) -> StartedNode:
        started.append(plan)
        return StartedNode(pid=4242, connected=False)

    monkeypatch.setattr(supernode, "start_node", record)
    yield started
    prepare_bank.cache_clear()


@pytest.fixture
def start(
    bundle: Bundle,
    keys: BankKeyFiles,
    tmp_path: Path,
    write_bank_csv: Callable[..., Path],
    no_services: list[NodePlan],
) -> Callable[..., Result]:
    """``fedcredit participant start`` of bank-a (no DP) with extra flags, in this process."""
    data = write_bank_csv(300)
    base = ["--bundle", str(bundle.folder), "--key", str(keys.node_key), "--data", str(data)]
    base += ["--home", str(tmp_path / "node"), "--no-dp"]

    def run(*extra: str) -> Result:
        prepare_bank.cache_clear()
        return CliRunner().invoke(app, ["participant", "start", *base, *extra])

    return run


def _plan(tmp_path: Path) -> NodePlan:
    return NodePlan.load(tmp_path / "node")


def test_the_first_start_pins_the_bundles_list_and_prints_its_fingerprint(
    start: Callable[..., Result], bundle: Bundle, tmp_path: Path, no_services: list[NodePlan]
) -> None:
    result = start()

    assert result.exit_code == 0, result.stdout + result.stderr
    members = MemberList.load(bundle.folder / "members.json")
    assert f"member list of {CONSORTIUM}: 3 banks, fingerprint {members.fingerprint}" in (
        result.stdout
    )
    assert "compare this fingerprint with the other banks out of band" in result.stdout
    guard = _plan(tmp_path).guard
    assert guard.members_path == tmp_path / "node" / "members.json"
    assert guard.members_fingerprint == members.fingerprint
    assert guard.pinned_members() == members  # the node's own copy
    assert no_services and no_services[0].guard == guard


def test_secure_aggregation_is_required_unless_the_bank_allows_plain_updates(
    start: Callable[..., Result], tmp_path: Path
) -> None:
    required = start()
    assert required.exit_code == 0, required.stderr
    assert _plan(tmp_path).guard.require_secure_aggregation is True
    assert "secure aggregation required" in required.stdout

    allowed = start("--allow-plain-updates")
    assert allowed.exit_code == 0, allowed.stderr
    assert _plan(tmp_path).guard.require_secure_aggregation is False
    assert "plain updates allowed (--allow-plain-updates)" in allowed.stdout
    assert "no differential privacy" in allowed.stdout  # this start passed --no-dp

    again = start("--require-secure-aggregation")  # the old flag still means "required"
    assert again.exit_code == 0, again.stderr
    assert _plan(tmp_path).guard.require_secure_aggregation is True


def test_the_threshold_policy_flags_reach_the_guard(
    start: Callable[..., Result], tmp_path: Path
) -> None:
    default = start()
    assert default.exit_code == 0, default.stderr
    assert _plan(tmp_path).guard.secure_aggregation == SecAggPolicy()

    chosen = start("--secagg-threshold-fraction", "0.75", "--min-roster", "4")
    assert chosen.exit_code == 0, chosen.stderr
    policy = _plan(tmp_path).guard.secure_aggregation
    assert policy == SecAggPolicy(threshold_fraction=0.75, min_roster=4)
    assert policy.threshold(8) == 7


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--secagg-threshold-fraction", "0.4"], "'--secagg-threshold-fraction': "),
        (["--secagg-threshold-fraction", "1"], "'--secagg-threshold-fraction': "),
        (["--min-roster", "2"], "'--min-roster': "),
    ],
)
def test_a_weaker_threshold_policy_is_refused_naming_the_flag(
    start: Callable[..., Result], tmp_path: Path, flags: list[str], expected: str
) -> None:
    line = one_error_line(start(*flags))
    assert line.startswith(f"error: fedcredit participant start: {expected}"), line
    assert not (tmp_path / "node" / "node.json").exists()


def test_a_bank_not_on_the_list_is_refused(
    start: Callable[..., Result], keys: BankKeyFiles, tmp_path: Path
) -> None:
    others = tmp_path / "others.json"
    member_list(keys, "bank-c", bank="bank-b").write(others)  # bank-a's key, under bank-b

    line = one_error_line(start("--members", str(others)))
    assert line == (
        f"error: {others}: 'bank-a' is not on the member list of '{CONSORTIUM}' (members: "
        "bank-b, bank-c); ask the operator for the current list (`fedcredit coordinator "
        "members`)"
    )
    assert not (tmp_path / "node" / "node.json").exists()


def test_a_list_naming_the_bank_by_another_key_is_refused(
    start: Callable[..., Result], tmp_path: Path
) -> None:
    impostor = generate_bank_keys(tmp_path / "impostor")
    swapped = tmp_path / "swapped.json"
    member_list(impostor, "bank-b", "bank-c").write(swapped)  # bank-a under another key

    line = one_error_line(start("--members", str(swapped)))
    assert line.startswith(f"error: {swapped}: the list names 'bank-a' by another key")
    assert "do not start" in line and "--audit-key" in line
    assert not (tmp_path / "node" / "node.json").exists()


def test_a_list_of_another_consortium_is_refused(
    start: Callable[..., Result], keys: BankKeyFiles, tmp_path: Path
) -> None:
    ours = member_list(keys, "bank-b", "bank-c")
    theirs = tmp_path / "theirs.json"
    MemberList(consortium="southern", members=ours.members).write(theirs)

    line = one_error_line(start("--members", str(theirs)))
    assert "member list of consortium 'southern', not of 'nordic'" in line


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{ torn", "not JSON"),
        ('{"consortium": "nordic", "members": []}', "'members' must be a non-empty list"),
        (
            '{"consortium": "nordic", "members": [{"name": "bank-a", "signing_key": "AAAA"}]}',
            "signing_key must be 32 raw Ed25519 bytes",
        ),
    ],
)
def test_a_bad_member_list_file_is_one_line_naming_it(
    start: Callable[..., Result], tmp_path: Path, content: str, expected: str
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    line = one_error_line(start("--members", str(bad)))
    assert line.startswith(f"error: {bad}: ") and expected in line, line
    missing = tmp_path / "missing.json"
    assert f"{missing}: cannot read the member list" in one_error_line(
        start("--members", str(missing))
    )


def test_a_missing_audit_key_is_refused_before_anything_is_written(
    start: Callable[..., Result], tmp_path: Path
) -> None:
    nowhere = tmp_path / "nowhere.key"
    line = one_error_line(start("--audit-key", str(nowhere)))
    assert line.startswith(f"error: {nowhere}: no audit key here") and "--audit-key" in line
    assert not nowhere.exists()  # never created: the list names the key keygen made


def test_a_bundle_without_a_list_needs_members(
    start: Callable[..., Result], bundle: Bundle, keys: BankKeyFiles, tmp_path: Path
) -> None:
    toml = bundle.folder / "bundle.toml"
    toml.write_text(
        "\n".join(line for line in toml.read_text().splitlines() if "members" not in line)
    )
    (bundle.folder / "members.json").unlink()

    line = one_error_line(start())
    assert line.startswith(
        "error: --members: no member list to pin: the bundle has no members.json"
    )
    assert "fedcredit coordinator members DIR --out FILE" in line

    given = tmp_path / "given.json"
    member_list(keys, "bank-b", "bank-c").write(given)
    assert start("--members", str(given)).exit_code == 0


def test_a_changed_list_is_pinned_only_when_the_bank_passes_it(
    start: Callable[..., Result], bundle: Bundle, keys: BankKeyFiles, tmp_path: Path
) -> None:
    first = start()
    assert first.exit_code == 0, first.stderr
    pinned = _plan(tmp_path).guard.members_fingerprint
    grown = member_list(keys, "bank-b", "bank-c", "bank-d")
    new_list = tmp_path / "new-members.json"
    grown.write(new_list)

    # Restarted with the new list given explicitly: both fingerprints, the new one pinned.
    explicit = start("--members", str(new_list))
    assert explicit.exit_code == 0, explicit.stderr
    assert f"pinned {pinned}, now {grown.fingerprint}" in explicit.stdout
    assert f"member list of {CONSORTIUM}: 4 banks" in explicit.stdout
    assert _plan(tmp_path).guard.members_fingerprint == grown.fingerprint

    # Restarted without --members: the pinned (new) list stays, though the bundle's
    # (old) one differs; both fingerprints are shown.
    kept = start()
    assert kept.exit_code == 0, kept.stderr
    assert f"the bundle's member list ({pinned}) is not the pinned one" in kept.stdout
    assert f"({grown.fingerprint}); keeping the pinned list" in kept.stdout
    assert _plan(tmp_path).guard.members_fingerprint == grown.fingerprint


def test_a_pinned_list_changed_on_disk_is_refused_at_start_and_by_the_guard_service(
    start: Callable[..., Result], keys: BankKeyFiles, tmp_path: Path
) -> None:
    assert start().exit_code == 0
    guard = _plan(tmp_path).guard
    copy = tmp_path / "node" / "members.json"
    member_list(keys, "bank-b", "bank-c", "bank-x").write(copy)  # edited after pinning

    line = one_error_line(start())
    assert line.startswith(f"error: {copy}: the pinned member list changed on disk")
    assert f"the pinned one {guard.members_fingerprint}" in line

    # The guard service itself (`participant run-guard`, started by `start`) refuses too.
    service = CliRunner().invoke(app, ["participant", "run-guard", "--home", str(copy.parent)])
    line = one_error_line(service)
    assert line.startswith(f"error: {copy}: the member list's fingerprint is ")
    assert f"not the pinned {guard.members_fingerprint}" in line

    copy.unlink()
    gone = CliRunner().invoke(app, ["participant", "run-guard", "--home", str(copy.parent)])
    assert f"{copy}: cannot read the member list" in one_error_line(gone)


def test_status_shows_the_pinned_list(start: Callable[..., Result], tmp_path: Path) -> None:
    assert start().exit_code == 0
    members = _plan(tmp_path).guard.pinned_members()
    assert members is not None
    status = CliRunner().invoke(app, ["participant", "status", "--home", str(tmp_path / "node")])
    assert status.exit_code == 1  # nothing runs
    line = next(line for line in status.stdout.splitlines() if "member list:" in line)
    assert f"{CONSORTIUM}: 3 banks, fingerprint {members.fingerprint}" in line


def test_choose_member_list_prefers_the_pin_to_the_bundle(
    bundle: Bundle, keys: BankKeyFiles, tmp_path: Path
) -> None:
    home = tmp_path / "node"
    home.mkdir()
    first = choose_member_list(home=home, bundle=bundle, audit_key=keys.audit_key, members=None)
    assert first.pinned_before is None and not first.passed and not first.replaces_pin
    assert first.source == bundle.folder / "members.json"

    other = member_list(keys, "bank-z")
    other.write(home / "members.json")
    plan = {"guard": {"members_path": str(home / "members.json")}}
    plan["guard"]["members_fingerprint"] = other.fingerprint
    (home / "node.json").write_text(json.dumps(plan))
    again = choose_member_list(home=home, bundle=bundle, audit_key=keys.audit_key, members=None)
    assert again.members == other and again.pinned_before == other.fingerprint
    assert again.bundle_fingerprint == first.fingerprint

    with pytest.raises(ConfigError, match="no audit key here"):
        choose_member_list(home=home, bundle=bundle, audit_key=tmp_path / "x.key", members=None)


def test_a_pinned_copy_gone_from_disk_asks_for_the_list_again(
    start: Callable[..., Result], bundle: Bundle, tmp_path: Path
) -> None:
    assert start().exit_code == 0
    pinned = _plan(tmp_path).guard.members_fingerprint
    copy = tmp_path / "node" / "members.json"
    copy.unlink()

    line = one_error_line(start())
    assert line.startswith(f"error: {copy}: cannot read the member list")
    assert f"this node pinned {pinned} there: pass the member list with --members" in line
    again = start("--members", str(bundle.folder / "members.json"))
    assert again.exit_code == 0, again.stderr
    assert _plan(tmp_path).guard.pinned_members() is not None
