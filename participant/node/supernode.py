"""The bank's SuperNode: validate the data, then connect to the consortium over TLS.

``fedcredit participant start`` builds one ``flower-supernode`` command from the
bank's onboarding bundle (consortium address, root certificate, schema), its node
key and its data file, and runs it as a background service in the bank's node
folder (``--home``). Before anything connects it checks, locally:

* the bundle is whole and its schema is the consortium's (hash in the bundle);
* the data file passes the schema (the first problem is named, nothing starts);
* the node key is an ECDSA private key, readable only by its owner;
* TLS is on: the SuperNode always gets ``--root-certificates`` and never
  ``--insecure``; a bundle without a CA certificate is refused.

The node config the ClientApp reads carries the data path, the bank's name, its
privacy budget and ledger, its audit log and key, and the fedcredit version the
bank approved (see :mod:`participant.app.approval`).
"""

from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_ssh_private_key
from cryptography.x509 import load_pem_x509_certificate

from credit import __version__
from credit.errors import ConfigError
from deploy.bundle import Bundle
from deploy.flower_env import venv_tool
from deploy.services import Service, ServiceError
from participant.app.node_config import NodeConfig
from privacy.budget import PrivacyBudget

__all__ = [
    "NodeSettings",
    "NodeStatus",
    "StartedNode",
    "node_command",
    "node_service",
    "start_node",
    "stop_node",
]

SERVICE_NAME = "supernode"
DEFAULT_RUNTIME_PORT = 9094
_STARTUP_GRACE_SECONDS = 6.0


@dataclass(frozen=True, kw_only=True)
class NodeSettings:
    """Everything ``participant start`` needs, as the bank gave it.

    Parameters
    ----------
    bundle : Bundle
        The onboarding bundle from the operator.
    key : pathlib.Path
        The node's private key (``participant keygen``).
    data : pathlib.Path
        The bank's data file.
    home : pathlib.Path
        The node folder: service files, privacy ledger, audit log, Flower's home.
    budget : PrivacyBudget or None
        The bank's record-level budget; ``None`` trains without differential
        privacy (only when the bank passes ``--no-dp``).
    audit_key : pathlib.Path
        The bank's Ed25519 audit-signing key.
    runtime_port : int
        Local port of the SuperNode's runtime API (one per node on a host).
    """

    bundle: Bundle
    key: Path
    data: Path
    home: Path
    budget: PrivacyBudget | None
    audit_key: Path
    runtime_port: int = DEFAULT_RUNTIME_PORT

    @property
    def ledger(self) -> Path:
        """The bank's privacy ledger."""
        return self.home / "privacy-ledger.jsonl"

    @property
    def audit_log(self) -> Path:
        """The bank's audit log."""
        return self.home / "audit.jsonl"

    @property
    def flwr_home(self) -> Path:
        """Flower's home for this node (apps it has received are unpacked here)."""
        return self.home / "flwr-home"


@dataclass(frozen=True)
class NodeStatus:
    """Whether the bank's SuperNode runs, and where its log is."""

    running: bool
    pid: int | None
    log: Path


def node_service(home: Path) -> Service:
    """The background service of the SuperNode kept in ``home``."""
    return Service(SERVICE_NAME, home.expanduser().resolve() / "services")


def check_node_key(path: Path) -> None:
    """Refuse a missing, unreadable, wrong-type or world-readable node key."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"cannot read the node key: {exc.strerror}; make one with "
            "`fedcredit participant keygen DIR`",
            source=str(path),
        ) from exc
    try:
        key = load_ssh_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            "not an unencrypted OpenSSH private key; use the node.key that "
            "`fedcredit participant keygen` wrote",
            source=str(path),
        ) from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ConfigError(
            "the node key must be an ECDSA key (Flower's SuperNode authentication); "
            "use the node.key that `fedcredit participant keygen` wrote",
            source=str(path),
        )
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"the node key is readable by others; run `chmod 600 {path}`", source=str(path)
        )


def check_tls(bundle: Bundle) -> None:
    """Refuse to connect without the consortium's root certificate (TLS is mandatory)."""
    try:
        load_pem_x509_certificate(bundle.ca_cert.read_bytes())
    except OSError as exc:
        raise ConfigError(
            "the bundle has no readable ca.crt: fedcredit never connects without TLS; "
            "ask the operator for the bundle again",
            source=str(bundle.ca_cert),
        ) from exc
    except ValueError as exc:
        raise ConfigError(
            "ca.crt is not a PEM certificate: fedcredit never connects without TLS; "
            "ask the operator for the bundle again",
            source=str(bundle.ca_cert),
        ) from exc


def node_config(settings: NodeSettings) -> NodeConfig:
    """The node config the bank's ClientApp reads (``--node-config``: its ``to_flower()``)."""
    budget = settings.budget
    return NodeConfig(
        data_path=settings.data,
        bank_name=settings.bundle.bank,
        schema_path=settings.bundle.schema_path,
        approved_version=__version__,
        audit_log=settings.audit_log,
        audit_key=settings.audit_key,
        max_epsilon=None if budget is None else budget.max_epsilon,
        delta=None if budget is None else budget.delta,
        ledger_path=None if budget is None else settings.ledger,
    )


def node_command(settings: NodeSettings) -> list[str]:
    """The ``flower-supernode`` command: TLS, node authentication, the bank's config."""
    return [
        venv_tool("flower-supernode"),
        "--superlink",
        settings.bundle.superlink,
        "--root-certificates",
        str(settings.bundle.ca_cert),
        "--auth-supernode-private-key",
        str(settings.key),
        "--host",
        "127.0.0.1",
        "--port",
        str(settings.runtime_port),
        "--node-config",
        node_config(settings).to_flower(),
    ]


@dataclass(frozen=True)
class StartedNode:
    """A SuperNode just started: its pid, and whether it reached the consortium yet."""

    pid: int
    connected: bool


def start_node(settings: NodeSettings) -> StartedNode:
    """Start the SuperNode in the background; return its pid and whether it connected.

    A SuperNode that cannot reach the edge yet keeps retrying in the background;
    one the consortium refuses (unknown key, wrong CA) exits, and that is an error.

    Raises
    ------
    ServiceError
        If the SuperNode exits during start-up (for example, the consortium refused
        the node key); the message carries the end of its log.
    """
    check_tls(settings.bundle)
    check_node_key(settings.key)
    settings.home.mkdir(parents=True, exist_ok=True)
    os.chmod(settings.home, 0o700)
    service = node_service(settings.home)
    environment = {"FLWR_HOME": str(settings.flwr_home)}
    pid = service.start(node_command(settings), env=environment, cwd=settings.home)
    deadline = time.monotonic() + _STARTUP_GRACE_SECONDS
    while time.monotonic() < deadline:
        if service.pid() is None:
            raise ServiceError(
                f"the SuperNode stopped during start-up; see {service.log_file}:\n"
                f"{service.log_tail(6)}"
            )
        if "SuperNode ID" in service.log_tail(40):
            return StartedNode(pid=pid, connected=True)
        time.sleep(0.3)
    return StartedNode(pid=pid, connected=False)


def stop_node(home: Path) -> bool:
    """Stop the SuperNode kept in ``home``; False if it was not running."""
    return node_service(home).stop()


def node_status(home: Path) -> NodeStatus:
    """Whether the SuperNode in ``home`` runs."""
    service = node_service(home)
    pid = service.pid()
    return NodeStatus(running=pid is not None, pid=pid, log=service.log_file)
