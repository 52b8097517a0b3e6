"""The consortium's two background services: the SuperLink and the edge proxy.

``fedcredit coordinator start DIR`` starts both, detached, with pid and log files in
``DIR/services``:

- **superlink**: ``flower-superlink`` with TLS, SuperNode authentication and a
  persistent database, bound to ``admin_host:superlink_port`` (loopback by default);
  telemetry, the update check and per-run dependency installation are off. The
  ServerApp runs in a subprocess of the SuperLink (``--isolation subprocess``).
- **edge**: nginx with ``DIR/edge/nginx.conf`` (see :mod:`coordinator.ops.edge`), the
  only port partner banks reach.

``shutdown`` ends the edge first (no new partner traffic), then the SuperLink.
"""

from __future__ import annotations

import contextlib
import socket
from dataclasses import dataclass
from pathlib import Path

from coordinator.ops import edge
from coordinator.ops.consortium import Consortium
from coordinator.ops.flower_cli import run_flwr
from coordinator.ops.layout import CONNECTION
from coordinator.ops.members import list_participants
from coordinator.ops.provisioning import write_derived_files
from credit.errors import ConfigError, OperationFailed
from deploy.flower_env import venv_tool
from deploy.services import Service, ServiceError, wait_for_port

__all__ = [
    "NodeState",
    "ServiceState",
    "edge_service",
    "node_states",
    "service_states",
    "start_services",
    "stop_services",
    "superlink_command",
    "superlink_service",
]

START_TIMEOUT = 60.0
"""Seconds to wait for each service's port (the SuperLink imports a lot on 2 cores)."""


@dataclass(frozen=True)
class ServiceState:
    """One service as ``status`` shows it."""

    name: str
    pid: int | None
    address: str
    log: Path

    @property
    def up(self) -> bool:
        return self.pid is not None


@dataclass(frozen=True)
class NodeState:
    """A registered bank as the SuperLink sees it."""

    bank: str
    node_id: int
    status: str
    """``online``, ``offline``, ``registered`` (never connected) or ``unregistered``."""


def superlink_service(consortium: Consortium) -> Service:
    """The SuperLink's pid and log files."""
    return Service("superlink", consortium.paths.services)


def edge_service(consortium: Consortium) -> Service:
    """The edge proxy's pid and log files."""
    return Service("edge", consortium.paths.services)


def superlink_command(consortium: Consortium) -> list[str]:
    """The ``flower-superlink`` command line of the consortium (TLS, node auth, DB)."""
    paths = consortium.paths
    return [
        venv_tool("flower-superlink"),
        "--host",
        consortium.config.admin_host,
        "--port",
        str(consortium.config.superlink_port),
        "--ssl-ca-certfile",
        str(paths.ca_cert),
        "--ssl-certfile",
        str(paths.server_cert),
        "--ssl-keyfile",
        str(paths.server_key),
        "--enable-supernode-auth",
        "--database",
        str(paths.database),
        "--isolation",
        "subprocess",
        "--disable-runtime-dependency-installation",
    ]


def _superlink_env(consortium: Consortium) -> dict[str, str]:
    """The consortium's FLWR_HOME (Service adds the offline switches and PATH)."""
    return {"FLWR_HOME": str(consortium.paths.flwr_home)}


def _check_port_free(host: str, port: int, flag: str) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host.strip("[]"), port))
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {host}:{port} ({exc.strerror}); another program uses it: "
                f"stop it or change {flag} in consortium.toml",
                source=flag,
            ) from exc


def start_services(consortium: Consortium, *, timeout: float = START_TIMEOUT) -> list[ServiceState]:
    """Start the SuperLink, then the edge; wait until both accept connections.

    The Flower connection and the edge config are re-rendered from
    ``consortium.toml`` first, and ``nginx -t`` checks the latter.

    Raises
    ------
    ServiceError
        A service of this consortium already runs.
    ConfigError
        nginx is missing or rejects the config, or a port is taken.
    OperationFailed
        A service exited during start-up or did not open its port in time (the
        SuperLink is stopped again if the edge fails).
    """
    superlink, proxy = superlink_service(consortium), edge_service(consortium)
    for service in (superlink, proxy):
        pid = service.pid()
        if pid is not None:
            raise ServiceError(
                f"the {service.name} of this consortium already runs (pid {pid}); "
                f"see `fedcredit coordinator status {consortium.paths.root}` or stop it with "
                f"`fedcredit coordinator shutdown {consortium.paths.root}`"
            )
    config = consortium.config
    write_derived_files(consortium)
    edge.test_nginx_config(consortium)
    _check_port_free(config.admin_host, config.superlink_port, "superlink_port")
    _check_port_free(config.edge_host, config.edge_port, "edge_port")
    consortium.paths.database.parent.mkdir(parents=True, exist_ok=True)

    superlink.start(
        superlink_command(consortium), env=_superlink_env(consortium), cwd=consortium.paths.root
    )
    _await(superlink, consortium.superlink_dial_host, config.superlink_port, timeout)
    proxy.start(edge.nginx_command(consortium), cwd=consortium.paths.root)
    try:
        _await(proxy, consortium.edge_dial_host, config.edge_port, timeout)
    except OperationFailed:
        superlink.stop()
        raise
    return service_states(consortium)


def _await(service: Service, host: str, port: int, timeout: float) -> None:
    try:
        wait_for_port(host, port, timeout=timeout, service=service)
    except ServiceError as exc:
        service.stop()
        last = [line for line in service.log_tail(20).splitlines() if line.strip()]
        reason = last[-1].strip() if last else str(exc).splitlines()[0]
        raise OperationFailed(
            f"the {service.name} did not start ({reason}); full log: {service.log_file}"
        ) from exc


def stop_services(consortium: Consortium) -> list[tuple[str, bool]]:
    """Stop the edge, then the SuperLink; ``(name, was running)`` for each."""
    return [(service.name, service.stop()) for service in _services(consortium)]


def _services(consortium: Consortium) -> tuple[Service, Service]:
    return edge_service(consortium), superlink_service(consortium)


def service_states(consortium: Consortium) -> list[ServiceState]:
    """The SuperLink and the edge: pid (None when down), address and log file."""
    config = consortium.config
    return [
        ServiceState(
            name="superlink",
            pid=superlink_service(consortium).pid(),
            address=f"{config.admin_host}:{config.superlink_port}",
            log=superlink_service(consortium).log_file,
        ),
        ServiceState(
            name="edge",
            pid=edge_service(consortium).pid(),
            address=f"{config.edge_host}:{config.edge_port}",
            log=edge.EdgeFiles(consortium).error_log,
        ),
    ]


def node_states(consortium: Consortium) -> list[NodeState]:
    """Each registered bank's node status from ``flwr supernode ls --format json``.

    Needs the SuperLink running; nodes registered by other means than
    ``add-participant`` are listed under their Flower owner name.
    """
    names = {p.node_id: p.name for p in list_participants(consortium)}
    reply = run_flwr(consortium.paths.flwr_home, "supernode", "ls", CONNECTION)
    states = []
    for node in reply.get("nodes", []):
        with contextlib.suppress(KeyError, ValueError, TypeError):
            node_id = int(node["node-id"])
            states.append(
                NodeState(
                    bank=names.get(node_id, str(node.get("owner-name", "?"))),
                    node_id=node_id,
                    status=str(node["status"]),
                )
            )
    return states
