"""Run the Simulation Engine on an existing Ray cluster (``--ray-address HOST:PORT``).

By default Flower's Simulation Engine starts a private Ray instance on this machine.
Given the address of a running cluster (the GCS address ``ray start --head`` prints),
the harness connects to it instead: :func:`parse_ray_address` checks the spelling,
:func:`probe_ray_cluster` asks the address for its cluster id with a deadline (so a
wrong address fails in seconds, not after Ray's minutes of retries), and
:func:`connected_to` joins the cluster for the length of one run. Flower's Ray
backend initialises Ray only if this process has not already
(``RayBackend.init_ray``), so its local ``init_args`` (CPUs, loopback address) are
unused on a cluster: each node gives the CPUs it was started with
(``ray start --num-cpus``), one virtual bank per CPU at a time.

Notes
-----
The virtual banks run in Ray workers on any node, so every node must be able to
import the ClientApp Flower sends them. The connection ships this checkout's
packages (:data:`SHIPPED_PACKAGES`) to the cluster as Ray ``py_modules``: the workers
run the driver's code, whatever fedcredit version a node has installed. Their
third-party dependencies (torch, Opacus, Flower, Ray of the same version, Python
3.11) must be installed on every node. Nothing else is shipped: each simulated bank
reads its file, and writes its ledger and audit log, at the absolute path the plan
gives (under ``--out``), so on several machines ``--out`` (and ``--bank-data`` or
``--data``) must be a shared file system mounted at the same path on every node,
one whose file locks work across machines (the ledgers lock).

Threat model: every virtual bank of a simulation is the researcher's own. A Ray
cluster is one trust domain: any worker, and anyone who can submit work to the
cluster, can read every simulated bank's data and secrets. Secure aggregation and DP
in a simulation measure cost and utility; on a shared cluster they protect nothing.
Never put real bank data on a Ray cluster.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from credit.errors import ConfigError
from deploy.flower_env import SIMULATION_ENV

__all__ = [
    "PROBE_TIMEOUT_SECONDS",
    "SHIPPED_PACKAGES",
    "RayAddress",
    "cluster_runtime_env",
    "connected_to",
    "parse_ray_address",
    "probe_ray_cluster",
]

FLAG = "--ray-address"
PROBE_TIMEOUT_SECONDS = 10.0
"""How long :func:`probe_ray_cluster` waits for the cluster's answer."""
SHIPPED_PACKAGES = (
    "cli",
    "coordinator",
    "credit",
    "deploy",
    "participant",
    "privacy",
    "serving",
    "simulations",
)
"""fedcredit's top-level packages: what the workers of a cluster import."""
_EXCLUDED = ["__pycache__/", "*.pyc"]
_EXAMPLE = "the HOST:PORT that `ray start --head` printed, e.g. 127.0.0.1:6379"


@dataclass(frozen=True)
class RayAddress:
    """A Ray cluster's GCS address.

    Attributes
    ----------
    host : str
        Host name or IP address of the cluster's head node (IPv6 without brackets).
    port : int
        The GCS port (``ray start --head --port``, 6379 by default), 1 to 65535.
    """

    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_ray_address(value: str) -> RayAddress:
    """The address in ``value`` (``HOST:PORT`` or ``[IPv6]:PORT``).

    Raises
    ------
    credit.errors.ConfigError
        ``value`` is not ``HOST:PORT`` (names ``--ray-address`` and the value).
    """
    text = value.strip()
    if "://" in text:
        raise ConfigError(
            f"'{value}' is a URL; give the cluster's GCS address as HOST:PORT ({_EXAMPLE}) "
            "and run fedcredit simulate on a node of the cluster (Ray Client ray:// "
            "addresses are not supported)",
            source=FLAG,
        )
    try:
        parts = urlsplit(f"//{text}")
        port = parts.port
    except ValueError as exc:
        raise ConfigError(
            f"'{value}' is not HOST:PORT ({exc}); give {_EXAMPLE}", source=FLAG
        ) from exc
    if not parts.hostname or port is None or port == 0 or parts.path or parts.query:
        raise ConfigError(f"'{value}' is not HOST:PORT; give {_EXAMPLE}", source=FLAG)
    if parts.username is not None or parts.fragment:
        raise ConfigError(f"'{value}' is not HOST:PORT; give {_EXAMPLE}", source=FLAG)
    return RayAddress(host=parts.hostname, port=port)


def probe_ray_cluster(address: RayAddress, *, timeout: float = PROBE_TIMEOUT_SECONDS) -> None:
    """Check that a Ray cluster answers at ``address`` within ``timeout`` seconds.

    One gRPC call to the cluster's GCS (its cluster id), with a deadline. ``ray.init``
    against a wrong address retries for minutes and then exits the process; this
    fails at once with a message instead.

    Raises
    ------
    credit.errors.ConfigError
        Nothing answers (refused, unknown host, no answer in time), or what answers
        is not a Ray cluster (names ``--ray-address``, the value and Ray's reason).
    """
    # gRPC (Flower's dependency) and Ray's generated GCS service carry no type hints.
    import grpc  # type: ignore[import-untyped]
    from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc

    with grpc.insecure_channel(str(address)) as channel:
        stub = gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel)  # type: ignore[no-untyped-call]
        request = gcs_service_pb2.GetClusterIdRequest()  # type: ignore[attr-defined]
        try:
            stub.GetClusterId(request, timeout=timeout)
        except grpc.RpcError as exc:
            raise ConfigError(_probe_problem(address, exc, timeout), source=FLAG) from exc


def _probe_problem(address: RayAddress, error: Any, timeout: float) -> str:
    """What a failed probe means, in one line: nobody answered, or not a Ray cluster."""
    import grpc

    code = error.code()
    details = " ".join(str(error.details() or "").split())
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        return f"no Ray cluster answered at '{address}' within {timeout:g} s; check {_EXAMPLE}"
    if code is grpc.StatusCode.UNAVAILABLE:
        return (
            f"no Ray cluster at '{address}' ({details}); start one with `ray start --head` "
            f"or give {_EXAMPLE}"
        )
    return (
        f"'{address}' answers, but not as a Ray cluster ({code.name}: {details}); give {_EXAMPLE}"
    )


def cluster_runtime_env() -> dict[str, Any]:
    """The Ray ``runtime_env`` of a run on a cluster: this checkout's code, offline switches.

    ``py_modules`` uploads :data:`SHIPPED_PACKAGES` from where this process imports
    them (bytecode caches left out); ``env_vars`` turns Flower's and Ray's network
    calls off in the workers (:data:`deploy.flower_env.SIMULATION_ENV`).
    """
    return {
        "py_modules": [str(_package_dir(name)) for name in SHIPPED_PACKAGES],
        "excludes": list(_EXCLUDED),
        "env_vars": dict(SIMULATION_ENV),
    }


def _package_dir(name: str) -> Path:
    """The folder package ``name`` is imported from (found without importing it)."""
    spec = find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"cannot find fedcredit's package '{name}' to ship it", source=FLAG)
    return Path(next(iter(spec.submodule_search_locations)))


@contextmanager
def connected_to(address: RayAddress | None) -> Iterator[None]:
    """Within the block, this process is a driver of the Ray cluster at ``address``.

    ``None``: nothing happens (Flower starts its own local Ray). Otherwise the
    address is probed (:func:`probe_ray_cluster`), then Ray joins the cluster with
    :func:`cluster_runtime_env`; leaving the block disconnects (the cluster keeps
    running).

    Raises
    ------
    credit.errors.ConfigError
        The address does not answer as a Ray cluster, Ray refuses to join it
        (another Ray or Python version, no Ray node on this machine), or the
        cluster has no CPU.
    """
    if address is None:
        yield
        return
    import ray

    probe_ray_cluster(address)
    try:
        ray.init(
            address=str(address),
            runtime_env=cluster_runtime_env(),
            logging_level=logging.ERROR,
            log_to_driver=False,
        )
    except (ConnectionError, RuntimeError, ValueError) as exc:
        reason = " ".join(str(exc).split())
        raise ConfigError(
            f"cannot join the Ray cluster at '{address}': {reason}", source=FLAG
        ) from exc
    try:
        _check_cpus(address, ray.cluster_resources())  # type: ignore[no-untyped-call]
        yield
    finally:
        ray.shutdown()


def _check_cpus(address: RayAddress, resources: dict[str, float]) -> None:
    """A cluster without a CPU could host no virtual bank (each takes one)."""
    if resources.get("CPU", 0.0) < 1:
        raise ConfigError(
            f"the Ray cluster at '{address}' has no CPU for a virtual bank (each takes "
            "one): start its nodes with `ray start --num-cpus 1` or more",
            source=FLAG,
        )
