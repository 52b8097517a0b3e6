"""The consortium on real processes: SuperLink behind the nginx edge, real SuperNodes.

One consortium (``running_consortium``) serves the whole module; the tests run in
file order and build on each other only through the banks they register.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from coordinator.ops.edge import REFUSAL
from credit.audit import fingerprint, load_public_key
from deploy.bundle import Bundle
from privacy.secagg.members import MemberList
from tests.deployment.consortium import RunningConsortium, fedcredit

pytestmark = pytest.mark.deployment

REFUSED_FAST = 90.0
"""Seconds a refused SuperNode may take to give up (start-up dominates on 2 cores)."""


def test_health_passes_through_the_edge(running_consortium: RunningConsortium) -> None:
    assert running_consortium.request("GET", "/health") == (200, "")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/control/list-runs"),
        ("POST", "/v1/control/start-run"),
        ("POST", "/v1/runtime/acquire-task"),
        ("POST", "/v1/runtime/pull-task-input"),
        ("GET", "/docs"),
        ("GET", "/openapi.json"),
        ("POST", "/v1/fleet/../control/list-runs"),
        ("POST", "/v1/fleet/%2e%2e/control/list-runs"),
        ("POST", "/v1/fleet/..%2fcontrol/list-runs"),
        ("POST", "/"),
    ],
)
def test_edge_refuses_everything_but_the_fleet_api(
    running_consortium: RunningConsortium, method: str, path: str
) -> None:
    status, body = running_consortium.request(method, path)
    assert (status, body) == (403, REFUSAL + "\n")


def test_control_api_answers_on_the_admin_address(running_consortium: RunningConsortium) -> None:
    """The request the edge refuses works on loopback: the edge is what protects it."""
    status, _ = running_consortium.request(
        "POST", "/v1/control/list-runs", port=running_consortium.superlink_port
    )
    assert status == 200


def test_fleet_api_reaches_the_superlink(running_consortium: RunningConsortium) -> None:
    """Unsigned fleet calls get the SuperLink's own refusal, not the edge's."""
    status, body = running_consortium.request("POST", "/v1/fleet/pull-messages")
    assert (status, body) == (401, '{"detail":"Invalid SuperNode authentication"}')
    status, _ = running_consortium.request("GET", "/v1/fleet/pull-messages")
    assert status == 403  # fleet calls are POSTs only


def test_add_participant_registers_the_key(running_consortium: RunningConsortium) -> None:
    running_consortium.add_bank("bank-a")
    record = running_consortium.consortium.paths.participant("bank-a") / "participant.json"
    assert '"status": "registered"' in record.read_text()
    assert running_consortium.node_status() == {"bank-a": "registered"}
    status = fedcredit("coordinator", "status", str(running_consortium.root)).stdout
    assert "bank-a" in status and "offline" in status
    duplicate = fedcredit(
        "coordinator", "add-participant", str(running_consortium.root), "bank-a",
        "--public-key", str(running_consortium.work / "bank-a" / "keys" / "node.pub"),
        check=False,
    )  # fmt: skip
    assert duplicate.returncode == 2
    assert "participant 'bank-a' is already registered" in duplicate.stderr

    # The member list names bank-a by its audit key; its bundle carries the list.
    paths = running_consortium.consortium.paths
    listed = MemberList.load(paths.members)
    audit = load_public_key(running_consortium.work / "bank-a" / "keys" / "audit.pub")
    assert listed.consortium == "test-consortium" and listed.names == {"bank-a"}
    assert listed.member("bank-a").fingerprint == fingerprint(audit)
    assert Bundle.load(running_consortium.bundle("bank-a")).members_fingerprint == (
        listed.fingerprint
    )
    shown = fedcredit("coordinator", "members", str(running_consortium.root)).stdout
    assert f"fingerprint {listed.fingerprint}" in shown


def test_unregistered_key_is_refused(running_consortium: RunningConsortium) -> None:
    keys = running_consortium.keygen("intruder")
    node = running_consortium.start_supernode("intruder", key=keys.node_key)
    assert node.wait_exit(REFUSED_FAST) != 0
    output = node.output()
    assert "[code: 2004] Failed to activate SuperNode." in output, output
    superlink_log = (running_consortium.consortium.paths.services / "superlink.log").read_text()
    assert "No SuperNode found with the given public key" in superlink_log


def test_node_without_tls_is_refused(running_consortium: RunningConsortium) -> None:
    node = running_consortium.start_supernode("plain", key=None, insecure=True)
    assert node.wait_exit(REFUSED_FAST) != 0
    output = node.output()
    port = running_consortium.edge_port
    expected = f"Client error '400 Bad Request' for url 'http://127.0.0.1:{port}/v1/fleet/"
    assert expected in output, output


def test_node_trusting_another_ca_is_refused(
    running_consortium: RunningConsortium, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    fedcredit("coordinator", "init", str(other), "--name", "other", "--host", "127.0.0.1")
    keys = running_consortium.work / "bank-a" / "keys"
    node = running_consortium.start_supernode(
        "bank-a", key=keys / "node.key", root_certificates=other / "ca" / "ca.crt"
    )
    assert node.wait_exit(REFUSED_FAST) != 0
    output = node.output()
    assert "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed" in output, output


def test_registered_node_connects_and_removal_disconnects_it(
    running_consortium: RunningConsortium,
) -> None:
    keys = running_consortium.work / "bank-a" / "keys"
    bundle = running_consortium.bundle("bank-a")
    node = running_consortium.start_supernode(
        "bank-a", key=keys / "node.key", root_certificates=bundle / "ca.crt"
    )
    running_consortium.wait_for_status("bank-a", "online")
    status = fedcredit("coordinator", "status", str(running_consortium.root)).stdout
    assert "online" in status
    assert node.running()

    removed = fedcredit("coordinator", "remove-participant", str(running_consortium.root), "bank-a")
    assert "participant 'bank-a' removed" in removed.stdout
    assert "the member list is empty" in removed.stdout  # bank-a was the only member
    assert not running_consortium.consortium.paths.members.exists()
    node.wait_exit(60.0)
    assert "SuperNode terminated gracefully." in node.output()
    assert running_consortium.node_status().get("bank-a") != "online"


def test_start_twice_is_refused(running_consortium: RunningConsortium) -> None:
    again = fedcredit("coordinator", "start", str(running_consortium.root), check=False)
    assert again.returncode == 2
    assert "the superlink of this consortium already runs" in again.stderr
