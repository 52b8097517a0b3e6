"""Helpers for tests that run a real consortium: SuperLink, edge proxy and SuperNodes.

Everything listens on free loopback ports inside a temporary folder, is started by
the real ``fedcredit`` console script (or ``flower-supernode``), and is stopped by
:meth:`RunningConsortium.close`, which the fixtures call in their finalizers.

Typical use (see ``tests/coordinator/conftest.py`` for the ``running_consortium``
fixture)::

    with started_consortium(tmp_path / "consortium") as consortium:
        keys = consortium.add_bank("bank-a")
        node = consortium.start_supernode("bank-a", keys.node_key, data_path=csv)
        consortium.wait_for_status("bank-a", "online")

Banks that run guards are onboarded as the README's operator and bank sections say:
every bank is added with its node and audit keys, then each starts with the member
list pinned (:meth:`RunningConsortium.add_banks_and_start`): the last bank added with
its bundle's list, the earlier ones with the list the operator sends afterwards
(``fedcredit coordinator members --out``), as banks that joined earlier would.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from coordinator.ops.consortium import Consortium, load_consortium
from deploy.flower_env import flower_env
from participant.node.node_keys import BankKeyFiles

BIN = Path(sys.executable).parent
FEDCREDIT = BIN / "fedcredit"
SUPERNODE = BIN / "flower-supernode"
CLI_TIMEOUT = 180.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def process_env(flwr_home: Path | None = None) -> dict[str, str]:
    """Offline Flower, this venv's tools first on PATH, a private FLWR_HOME if given."""
    return flower_env(flwr_home=flwr_home)


def fedcredit(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the ``fedcredit`` console script; AssertionError with its output on failure."""
    result = subprocess.run(
        [str(FEDCREDIT), *args],
        capture_output=True,
        text=True,
        env=process_env(),
        timeout=CLI_TIMEOUT,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"fedcredit {' '.join(args)} exited {result.returncode}:\n"
            f"{result.stdout}\n{result.stderr}"
        )
    return result


@dataclass
class SuperNode:
    """A ``flower-supernode`` process of a test, with its output in ``log``."""

    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_exit(self, timeout: float) -> int:
        """The exit code; AssertionError with the log if it still runs after ``timeout``."""
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"the SuperNode still runs after {timeout:.0f} s:\n{self.output()}"
            ) from None

    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        """SIGTERM its process group (it spawns a SuperExec), SIGKILL after 15 s."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=15)
        # The SuperExec child lives in the same group; make sure it is gone too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)


@dataclass
class RunningConsortium:
    """A started consortium on loopback and the SuperNodes tests start against it."""

    root: Path
    work: Path
    supernodes: list[SuperNode] = field(default_factory=list)
    bank_homes: list[Path] = field(default_factory=list)

    @property
    def consortium(self) -> Consortium:
        return load_consortium(self.root)

    @property
    def edge_port(self) -> int:
        return self.consortium.config.edge_port

    @property
    def superlink_port(self) -> int:
        return self.consortium.config.superlink_port

    @property
    def ca_cert(self) -> Path:
        return self.consortium.paths.ca_cert

    def keygen(self, bank: str) -> BankKeyFiles:
        """``fedcredit participant keygen`` into ``work/<bank>/keys``."""
        folder = self.work / bank / "keys"
        fedcredit("participant", "keygen", str(folder))
        return BankKeyFiles(folder)

    def add_bank(self, bank: str) -> BankKeyFiles:
        """Keygen at the bank, then ``add-participant`` with its node and audit keys."""
        keys = self.keygen(bank)
        self.add_participant(bank, keys)
        return keys

    def add_participant(self, bank: str, keys: BankKeyFiles) -> None:
        """``coordinator add-participant`` with the bank's node and audit keys."""
        fedcredit(
            "coordinator", "add-participant", str(self.root), bank,
            "--public-key", str(keys.node_public), "--audit-key", str(keys.audit_public),
        )  # fmt: skip

    def member_list(self) -> Path:
        """The current member list as the operator sends it (``coordinator members --out``)."""
        out = self.work / "members.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        fedcredit("coordinator", "members", str(self.root), "--out", str(out))
        return out

    def add_banks_and_start(
        self,
        files: dict[str, Path],
        *,
        max_epsilon: float | None,
        node_users: dict[str, str] | None = None,
        holdout_salt: str | None = None,
    ) -> dict[str, Path]:
        """Add every bank of ``files`` (bank -> data file), then start each with the member
        list of all of them pinned; return the node folders.

        The last bank added pins its bundle's list (it names everyone); the others were
        onboarded before the list was complete and pin the operator's current list,
        passed with ``--members``. The banks make their keys and start their nodes at
        the same time, each on its own machine as it were; the operator adds them one
        after the other.
        """
        banks = list(files)
        with ThreadPoolExecutor(max_workers=len(banks)) as pool:
            keys = dict(zip(banks, pool.map(self.keygen, banks), strict=True))
        for bank in banks:
            self.add_participant(bank, keys[bank])
        members = self.member_list()
        ports = dict(zip(banks, free_ports(len(banks)), strict=True))
        with ThreadPoolExecutor(max_workers=len(banks)) as pool:
            started = {
                bank: pool.submit(
                    self.start_bank,
                    bank,
                    keys[bank],
                    data,
                    max_epsilon=max_epsilon,
                    node_user=(node_users or {}).get(bank),
                    holdout_salt=holdout_salt,
                    members=None if bank == banks[-1] else members,
                    runtime_port=ports[bank],
                )
                for bank, data in files.items()
            }
            return {bank: future.result() for bank, future in started.items()}

    def bundle(self, bank: str) -> Path:
        return self.consortium.paths.participant(bank) / "bundle"

    def start_supernode(
        self,
        bank: str,
        *,
        key: Path | None,
        data_path: Path | None = None,
        root_certificates: Path | None = None,
        insecure: bool = False,
        extra: Sequence[str] = (),
    ) -> SuperNode:
        """``flower-supernode`` dialling the edge, as a bank runs it (own FLWR_HOME, port)."""
        home = self.work / bank / f"flwr-home-{len(self.supernodes)}"
        home.mkdir(parents=True, exist_ok=True)
        command = [
            str(SUPERNODE),
            "--superlink",
            f"127.0.0.1:{self.edge_port}",
            "--port",
            str(free_port()),
            "--node-config",
            f'data-path="{data_path or self.work / "none.csv"}" bank-name="{bank}"',
        ]
        if insecure:
            command.append("--insecure")
        else:
            command += ["--root-certificates", str(root_certificates or self.ca_cert)]
        if key is not None:
            command += ["--auth-supernode-private-key", str(key)]
        log = home / "supernode.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                [*command, *extra],
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=process_env(home),
                start_new_session=True,
            )
        node = SuperNode(process=process, log=log)
        self.supernodes.append(node)
        return node

    def node_status(self) -> dict[str, str]:
        """Bank -> Flower status (online, offline, registered, unregistered)."""
        from coordinator.ops.services import node_states

        return {state.bank: state.status for state in node_states(self.consortium)}

    def wait_for_status(self, bank: str, status: str, *, timeout: float = 90.0) -> None:
        """Poll ``flwr supernode ls`` until ``bank`` has ``status``."""
        self.wait_for_statuses([bank], status, timeout=timeout)

    def wait_for_statuses(
        self, banks: Sequence[str], status: str, *, timeout: float = 90.0
    ) -> None:
        """Poll ``flwr supernode ls`` until every bank of ``banks`` has ``status``."""
        deadline = time.monotonic() + timeout
        seen: dict[str, str] = {}
        while time.monotonic() < deadline:
            seen = self.node_status()
            if all(seen.get(bank) == status for bank in banks):
                return
            time.sleep(2.0)
        behind = ", ".join(bank for bank in banks if seen.get(bank) != status)
        raise AssertionError(f"{behind} not {status} after {timeout:.0f} s; nodes: {seen}")

    def request(
        self, method: str, path: str, *, port: int | None = None, body: bytes = b""
    ) -> tuple[int, str]:
        """An HTTPS request to the edge (or ``port``) trusting the consortium CA."""
        context = ssl.create_default_context(cafile=str(self.ca_cert))
        connection = http.client.HTTPSConnection(
            "127.0.0.1", port or self.edge_port, context=context, timeout=30
        )
        try:
            headers = {"content-type": "application/protobuf"} if method == "POST" else {}
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.read().decode(errors="replace")
        finally:
            connection.close()

    def start_bank(
        self,
        bank: str,
        keys: BankKeyFiles,
        data: Path,
        *,
        max_epsilon: float | None = 3.0,
        node_user: str | None = None,
        holdout_salt: str | None = None,
        members: Path | None = None,
        runtime_port: int | None = None,
    ) -> Path:
        """``fedcredit participant start`` as the bank runs it; return its node folder.

        ``node_user``: run the bank's ClientApps as that user (``--node-user``, root only).
        ``holdout_salt``: the bank's hold-out salt instead of a fresh one (``--holdout-salt``).
        ``members``: the member list to pin (``--members``); default: the bundle's.
        ``runtime_port``: the node's runtime API port; default: a free one.
        Secure aggregation is required (the default) and the list's fingerprint printed.
        """
        home = self.work / bank / "node"
        budget = ["--max-epsilon", str(max_epsilon)] if max_epsilon is not None else ["--no-dp"]
        as_user = ["--node-user", node_user] if node_user is not None else []
        salt = ["--holdout-salt", holdout_salt] if holdout_salt is not None else []
        listed = ["--members", str(members)] if members is not None else []
        started = fedcredit(
            "participant", "start", "--bundle", str(self.bundle(bank)),
            "--key", str(keys.node_key), "--data", str(data), "--home", str(home),
            "--runtime-port", str(runtime_port or free_port()), *budget, *as_user, *salt,
            *listed,
        )  # fmt: skip
        assert "fingerprint SHA256:" in started.stdout, started.stdout
        assert "secure aggregation required" in started.stdout, started.stdout
        self.bank_homes.append(home)
        return home

    def kill_bank(self, home: Path) -> None:
        """SIGKILL a bank's guard, its SuperNode and their children (the bank's machine
        crashed: no goodbye to the SuperLink). They share the guard's process group."""
        pid = int((home / "services" / "guard.pid").read_text())
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)

    def crash_coordinator(self) -> int:
        """SIGKILL every process of the operator's side (SuperLink, SuperExec, ServerApp,
        ``flwr run``, edge): the machine died. Return how many were killed."""
        flwr_home = str(self.consortium.paths.flwr_home).encode()
        marker = b"FLWR_HOME=" + flwr_home + b"\0"
        killed = 0
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                environment = (entry / "environ").read_bytes() + b"\0"
            except OSError:
                continue
            if marker in environment:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(entry.name), signal.SIGKILL)
                    killed += 1
        edge_pid = self.consortium.paths.services / "edge.pid"
        if edge_pid.is_file():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.killpg(int(edge_pid.read_text()), signal.SIGKILL)
        return killed

    def close(self) -> None:
        """Stop every SuperNode and bank node (all at once), then the edge and the SuperLink."""
        from participant.node.supernode import stop_node

        with ThreadPoolExecutor(max_workers=4) as pool:
            stopped = [pool.submit(node.stop) for node in self.supernodes]
            stopped += [pool.submit(stop_node, home) for home in self.bank_homes]
            for future in stopped:
                future.result()
        from coordinator.ops.services import stop_services

        stop_services(load_consortium(self.root))


@contextlib.contextmanager
def started_consortium(
    root: Path, *, name: str = "test-consortium", extra_init: Sequence[str] = ()
) -> Iterator[RunningConsortium]:
    """``coordinator init`` on free loopback ports, ``coordinator start``; stop on exit."""
    superlink_port, edge_port = free_ports(2)
    fedcredit(
        "coordinator", "init", str(root), "--name", name, "--host", "127.0.0.1",
        "--edge-host", "127.0.0.1", "--superlink-port", str(superlink_port),
        "--edge-port", str(edge_port), *extra_init,
    )  # fmt: skip
    running = RunningConsortium(root=root.resolve(), work=root.parent.resolve() / "banks")
    try:
        fedcredit("coordinator", "start", str(root))
        yield running
    finally:
        running.close()
