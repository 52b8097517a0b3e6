"""A throwaway two-node Ray cluster on this machine, and what Ray saw run on each node.

:func:`two_node_cluster` starts a head node (``ray start --head``) and one worker node
(``ray start --address``) at 127.0.0.1, one CPU each, with usage statistics off, and
stops both on exit, whatever happens.

Why not ``ray stop``: it ends every Ray process of the machine (it matches process
names; Ray 2.55 has no way to name one cluster), so it would kill any other Ray the
machine runs: a parallel test's (``make test-all`` runs under pytest-xdist), or a
researcher's. The cluster here is stopped by process id instead: the processes
whose command line names the cluster's own temporary folder, and their descendants
(the raylets' workers and agents), are sent SIGTERM, then SIGKILL after a grace
period (:meth:`LocalRayCluster.stop`); Linux only (``/proc``), as Ray clusters are.

Ray places its Unix sockets under ``--temp-dir``, and a socket path must fit in 107
bytes: pytest's ``tmp_path`` is too deep for them, so the folder is a fresh one
directly under the system's temporary folder, removed on exit.

``python -m tests.support.ray_cluster HOST:PORT`` prints, as JSON, the cluster's
nodes (the head first) and how many tasks of each name ran on each node, from the
task events Ray's GCS keeps (:func:`tasks_per_node` runs it in a child process, so
the test process never joins a Ray cluster). Ray's public state API
(``ray.util.state.list_tasks``) would need the dashboard, which these nodes do not
start.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploy.flower_env import SIMULATION_ENV, venv_tool

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 120.0
OBJECT_STORE_BYTES = 150_000_000
"""Each node's object store (Ray's default is 30 % of the machine's memory)."""


def free_port() -> int:
    """A loopback port free right now (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def ray_environment() -> dict[str, str]:
    """The nodes' environment: offline, no usage statistics, no PYTHONPATH.

    Without PYTHONPATH the workers import fedcredit from what the driver ships
    (``runtime_env`` ``py_modules``), as on a machine without this checkout.
    """
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    environment.update(SIMULATION_ENV)
    return environment


@dataclass(frozen=True)
class LocalRayCluster:
    """A two-node Ray cluster this test session started.

    Attributes
    ----------
    address : str
        The head's GCS address, ``127.0.0.1:PORT``.
    temp_dir : pathlib.Path
        Both nodes' ``--temp-dir`` (sessions, logs, sockets, shipped packages).
    """

    address: str
    temp_dir: Path

    def processes(self) -> set[int]:
        """Ids of the cluster's live processes (see the module docstring)."""
        table = _process_table()
        marker = str(self.temp_dir).encode()
        mine = _ancestry(os.getpid(), table)  # never this process or what started it
        found = {pid for pid, (_, cmdline) in table.items() if marker in cmdline} - mine
        grown = True
        while grown:
            children = {pid for pid, (parent, _) in table.items() if parent in found}
            grown = not children <= found
            found |= children
        return found

    def stop(self, *, grace: float = 5.0) -> set[int]:
        """SIGTERM the cluster's processes, SIGKILL what is left after ``grace`` s.

        Returns the ids still alive afterwards (none, unless a process is stuck in
        the kernel). Ray's GCS server and autoscaler monitor outlive SIGTERM (seen
        for 20 s); ``ray stop`` too SIGKILLs what is left after its grace period.
        """
        for pid in self.processes():
            _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while self.processes() and time.monotonic() < deadline:
            time.sleep(0.5)
        for pid in self.processes():
            _signal(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10.0
        while self.processes() and time.monotonic() < deadline:
            time.sleep(0.2)
        return self.processes()


def _process_table() -> dict[int, tuple[int, bytes]]:
    """pid -> (parent pid, command line) of every live, non-zombie process."""
    table: dict[int, tuple[int, bytes]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:  # gone meanwhile
            continue
        state, parent = stat.rsplit(")", 1)[1].split()[:2]
        if state != "Z":
            table[int(entry.name)] = (int(parent), cmdline)
    return table


def _ancestry(pid: int, table: dict[int, tuple[int, bytes]]) -> set[int]:
    """``pid`` and the processes that started it."""
    chain = set()
    while pid in table and pid not in chain:
        chain.add(pid)
        pid = table[pid][0]
    return chain


def _signal(pid: int, number: signal.Signals) -> None:
    with suppress(ProcessLookupError):
        os.kill(pid, number)


def _ray_start(arguments: list[str], log: Path) -> None:
    """``ray start ARGUMENTS`` (it returns once the node runs); its output goes to ``log``."""
    with log.open("w", encoding="utf-8") as output:
        completed = subprocess.run(
            [venv_tool("ray"), "start", *arguments],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=ray_environment(),
            timeout=START_TIMEOUT,
            check=False,
        )
    if completed.returncode != 0:
        raise RuntimeError(f"ray start failed ({completed.returncode}): {log.read_text()}")


@contextmanager
def two_node_cluster(log_dir: Path) -> Iterator[LocalRayCluster]:
    """A head and a worker node at 127.0.0.1, one CPU each; stopped by pid on exit.

    ``ray start``'s output goes to ``log_dir``. Each node gets its own free ports
    where Ray's defaults are fixed (GCS, Ray Client server, dashboard agent), so the
    cluster does not collide with another Ray on the machine.
    """
    port = free_port()
    cluster = LocalRayCluster(
        address=f"127.0.0.1:{port}",
        temp_dir=Path(tempfile.mkdtemp(prefix="fcray-", dir=tempfile.gettempdir())),
    )
    node = [
        "--node-ip-address", "127.0.0.1", "--num-cpus", "1", "--num-gpus", "0",
        "--object-store-memory", str(OBJECT_STORE_BYTES), "--disable-usage-stats",
        "--temp-dir", str(cluster.temp_dir),
    ]  # fmt: skip
    try:
        _ray_start(
            [
                "--head", "--port", str(port), "--include-dashboard", "false",
                "--dashboard-port", str(free_port()),
                "--ray-client-server-port", str(free_port()),
                "--dashboard-agent-listen-port", str(free_port()), *node,
            ],
            log_dir / "ray-head.log",
        )  # fmt: skip
        _ray_start(
            [
                "--address", cluster.address,
                "--dashboard-agent-listen-port", str(free_port()), *node,
            ],
            log_dir / "ray-worker.log",
        )  # fmt: skip
        yield cluster
    finally:
        left = cluster.stop()
        shutil.rmtree(cluster.temp_dir, ignore_errors=True)
        if left:
            raise RuntimeError(f"Ray processes {sorted(left)} outlived SIGKILL")


def tasks_per_node(address: str) -> dict[str, Any]:
    """Ray's record of the cluster (see the module docstring), from a child process."""
    completed = subprocess.run(
        [sys.executable, "-m", "tests.support.ray_cluster", address],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **SIMULATION_ENV},
        timeout=120,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"cannot read the cluster's tasks: {completed.stderr}")
    record: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return record


def _report(address: str) -> dict[str, Any]:
    """The cluster's nodes (head first) and the tasks of each name run on each node."""
    import ray
    from ray.core.generated import gcs_pb2

    ray.init(address=address, logging_level="ERROR", log_to_driver=False)
    try:
        nodes = sorted(
            (node for node in ray.nodes() if node["Alive"]),
            key=lambda node: "node:__internal_head__" not in node["Resources"],
        )
        tasks: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        accessor = ray._private.state.state._connect_and_get_accessor()
        for raw in accessor.get_task_events():
            event = gcs_pb2.TaskEvents.FromString(raw)
            node_id = event.state_updates.node_id.hex()
            if node_id:
                tasks[event.task_info.name][node_id].add(event.task_id.hex())
    finally:
        ray.shutdown()
    return {
        "nodes": [node["NodeID"] for node in nodes],
        "tasks": {
            name: {node_id: len(ids) for node_id, ids in per_node.items()}
            for name, per_node in tasks.items()
        },
    }


if __name__ == "__main__":
    print(json.dumps(_report(sys.argv[1])))
