"""Background services (SuperLink, edge proxy, SuperNode) run by the fedcredit CLI.

Each service is one detached process with a pid file and a log file in a folder the
caller owns, so that ``start``, ``status`` and ``stop`` can be separate commands.
Flower's offline switches (no telemetry, no update check, no per-run dependency
installation; see :mod:`deploy.flower_env`) are always set in the service's
environment.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from credit.durable import write_durably
from credit.errors import FedcreditError
from deploy.flower_env import flower_env

__all__ = ["Service", "ServiceError", "wait_for_port"]


class ServiceError(FedcreditError):
    """A service did not start, or is not in the state a command needs."""


@dataclass(frozen=True)
class Service:
    """A named background process whose pid and log live in ``folder``."""

    name: str
    folder: Path

    @property
    def pid_file(self) -> Path:
        """Where the running process's pid is kept."""
        return self.folder / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        """Where the process's output goes."""
        return self.folder / f"{self.name}.log"

    def pid(self) -> int | None:
        """The pid of the running process, or None (stale pid files are removed)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        if not _alive(pid):
            self.pid_file.unlink(missing_ok=True)
            return None
        return pid

    def start(
        self,
        command: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> int:
        """Start ``command`` detached; refuse if this service already runs.

        The service runs offline (no telemetry, update check or dependency
        installation) with this environment's bin folder first on its PATH.
        """
        running = self.pid()
        if running is not None:
            raise ServiceError(f"{self.name} already runs (pid {running}); stop it first")
        self.folder.mkdir(parents=True, exist_ok=True)
        environment = {**flower_env(), **(env or {})}
        with self.log_file.open("ab") as log:
            log.write(f"\n--- {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(command)}\n".encode())
            log.flush()
            process = subprocess.Popen(
                list(command),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=environment,
                cwd=cwd,
                start_new_session=True,  # survives the CLI; stop() ends the whole group
            )
        # Whole or absent: a reader never sees the file empty (read as "not running").
        write_durably(self.pid_file, f"{process.pid}\n".encode())
        return process.pid

    def stop(self, timeout: float = 15.0) -> bool:
        """SIGTERM the process group, SIGKILL after ``timeout``; False if not running."""
        pid = self.pid()
        if pid is None:
            return False
        _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _alive(pid):
            _signal_group(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        return True

    def log_tail(self, lines: int = 20) -> str:
        """The last ``lines`` lines of the log (for error messages)."""
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def wait_for_port(host: str, port: int, *, timeout: float, service: Service | None = None) -> None:
    """Wait until ``host:port`` accepts TCP connections; ServiceError on timeout or exit."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service is not None and service.pid() is None:
            raise ServiceError(
                f"{service.name} exited during start-up; see {service.log_file}:\n"
                f"{service.log_tail(8)}"
            )
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return
        except OSError:
            time.sleep(0.3)
    raise ServiceError(f"nothing listens on {host}:{port} after {timeout:.0f} s")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped) is not alive.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)
