"""A real ``fedcredit simulate --dashboard`` run as a child process, its output read as it comes.

The command prints its dashboard's URL before the first round and ``still serving the
finished run`` once the run has ended, then serves until Ctrl-C (SIGINT). A thread
drains its output (stdout and stderr together) into :attr:`LiveSimulation.lines`, so a
chatty run never blocks on a full pipe while the test watches the page.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

__all__ = ["LiveSimulation", "simulate_with_dashboard"]

FINISHED = "still serving the finished run"
"""What the command prints once the run has ended and its dashboard goes on serving it."""


@dataclass
class LiveSimulation:
    """The running command and every line it printed so far."""

    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    ended: threading.Event = field(default_factory=threading.Event)

    def drain(self) -> None:
        """Read the command's output to its end (run in a thread)."""
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
        self.ended.set()

    def wait_for(self, pattern: str, *, timeout: float) -> re.Match[str]:
        """The first printed line matching ``pattern``, waiting up to ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            for line in self.lines[seen:]:
                found = re.search(pattern, line)
                if found is not None:
                    return found
                seen += 1
            if self.ended.is_set() and seen == len(self.lines):
                break
            time.sleep(0.05)
        pytest.fail(f"simulate did not print {pattern!r}; it printed:\n{''.join(self.lines)}")

    def dashboard_url(self) -> str:
        """The dashboard's address, as the command prints it before the first round."""
        return self.wait_for(r"dashboard: (http://127\.0\.0\.1:\d+/) ", timeout=120).group(1)

    def output(self) -> str:
        """Everything printed so far."""
        return "".join(self.lines)


@contextlib.contextmanager
def simulate_with_dashboard(*argv: str) -> Iterator[LiveSimulation]:
    """Run ``fedcredit simulate ARGV --dashboard --dashboard-port 0``; Ctrl-C it on exit.

    On leaving the block the command gets SIGINT (as Ctrl-C) and up to 60 s to stop its
    dashboard and exit; it is killed if it has not.
    """
    process = subprocess.Popen(
        [sys.executable, "-c", "from cli.app import main; main()", "simulate", *argv,
         "--dashboard", "--dashboard-port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"},
    )  # fmt: skip
    live = LiveSimulation(process)
    reader = threading.Thread(target=live.drain, daemon=True)
    reader.start()
    try:
        yield live
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        reader.join(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
