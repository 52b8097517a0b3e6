"""The real run function: ``fedcredit simulate`` as a subprocess, its memory sampled.

Each run is the console script of this Python environment with the run's flags and
``--out`` its folder, in Flower's offline environment
(:func:`deploy.flower_env.flower_env`, ``simulation=True``), the way the benchmarks
run it (``bench/_simulate.py``). Its output goes to ``simulate.log`` in the run's
folder. Peak memory is the summed resident set size of the subprocess and all its
descendants (Ray's raylet and workers), sampled from ``/proc`` every 0.2 s as
``bench/_memory.py`` does for the benchmark's own tree; shared pages count once per
process, so the figure is an upper bound.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from deploy.flower_env import flower_env
from simulations.experiments.options import OptionSpace
from simulations.experiments.runner import RunRecord, RunTask

__all__ = ["LOG_FILE", "SimulateSubprocess", "tree_rss_bytes"]

LOG_FILE = "simulate.log"
_PAGE = os.sysconf("SC_PAGE_SIZE")
_SAMPLE_SECONDS = 0.2


class SimulateSubprocess:
    """A run function (:data:`~simulations.experiments.runner.RunFunction`) for ``simulate``.

    Parameters
    ----------
    space : OptionSpace
        Turns a run's options into flags.
    command : sequence of str, optional
        The command before the flags; default: this environment's
        ``fedcredit simulate``.
    """

    def __init__(self, space: OptionSpace, command: Sequence[str] | None = None) -> None:
        self.space = space
        self.command = list(command or [str(Path(sys.executable).parent / "fedcredit"), "simulate"])

    def __call__(self, task: RunTask) -> RunRecord:
        """Run ``task`` to the end; how it ended."""
        arguments = [*self.command, *self.space.arguments(task.run.given)]
        arguments += ["--out", str(task.folder)]
        log = task.folder / LOG_FILE
        started = time.monotonic()
        with log.open("w", encoding="utf-8") as stream:
            process = subprocess.Popen(
                arguments,
                stdout=stream,
                stderr=subprocess.STDOUT,
                env=flower_env(simulation=True),
            )
            peak = _watch(process)
        seconds = time.monotonic() - started
        error = "" if process.returncode == 0 else _last_line(log)
        return RunRecord(
            exit_code=process.returncode,
            wall_seconds=round(seconds, 2),
            peak_rss_mb=round(peak / 2**20, 1),
            error=error,
        )


def _watch(process: subprocess.Popen[bytes]) -> int:
    """Wait for ``process``; the peak of its tree's resident set size, in bytes."""
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, tree_rss_bytes(process.pid))
            stop.wait(_SAMPLE_SECONDS)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        process.wait()
    finally:
        stop.set()
        sampler.join()
    return peak


def _last_line(log: Path) -> str:
    lines = [line for line in log.read_text(encoding="utf-8", errors="replace").splitlines()]
    lines = [line.strip() for line in lines if line.strip()]
    return lines[-1] if lines else ""


def _parents() -> dict[int, int]:
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        parents[int(stat.parent.name)] = int(fields[1])
    return parents


def tree_rss_bytes(root: int) -> int:
    """Summed resident set size of process ``root`` and its descendants, in bytes."""
    children: dict[int, list[int]] = {}
    for pid, parent in _parents().items():
        children.setdefault(parent, []).append(pid)
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        stack.extend(children.get(pid, []))
        try:
            resident = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue
        total += resident * _PAGE
    return total
