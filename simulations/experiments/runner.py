"""Run a grid's runs, resumably: each in ``DIR/runs/<hash>/``, finished ones never again.

A run is *finished* when its folder holds the runner's record (``run.json``, written
only after the run's process has ended) with exit code 0 and a ``metrics.json``
whose status is ``completed`` (or ``stopped: ...``, a run that ended early by its own
rules: repeating it would stop again). Any other folder (an interrupted run, a
failed one) is deleted and the run started again from scratch. The run itself is a
callable (:data:`RunFunction`), so tests inject a fake and the CLI the real
``fedcredit simulate`` subprocess (:mod:`simulations.experiments.subprocess_run`).
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from simulations.experiments.grid import GridRun

__all__ = [
    "METRICS_FILE",
    "RECORD_FILE",
    "RUNS_DIR",
    "RunRecord",
    "RunTask",
    "default_jobs",
    "is_finished",
    "read_record",
    "read_status",
    "run_folder",
    "run_grid",
]

RUNS_DIR = "runs"
RECORD_FILE = "run.json"
METRICS_FILE = "metrics.json"
RUN_MEMORY_BYTES = 3 * 2**30
"""Memory set aside per run at a time: a 5-bank, 10-round ``simulate`` run's process
tree (the driver, Ray's raylet and workers) peaked at 2.5 GiB on this project's machine."""
_MEMINFO = Path("/proc/meminfo")


@dataclass(frozen=True)
class RunTask:
    """What a run function gets: the run and the folder it writes into (exists, empty)."""

    run: GridRun
    folder: Path


@dataclass(frozen=True)
class RunRecord:
    """How a run's process ended, written to ``run.json`` by :func:`run_grid`.

    Attributes
    ----------
    exit_code : int
        The process's exit code (0: it finished).
    wall_seconds : float
        Wall time from start to exit, in seconds.
    peak_rss_mb : float
        Peak summed resident set size of the process tree, in MiB.
    error : str
        The last line the process wrote on stderr when it failed, else ``""``.
    """

    exit_code: int
    wall_seconds: float
    peak_rss_mb: float
    error: str = ""


RunFunction = Callable[[RunTask], RunRecord]
"""Executes one run into its folder and returns how it ended."""


def run_folder(out: Path, run: GridRun) -> Path:
    """``out/runs/<hash>``."""
    return out / RUNS_DIR / run.hash


def read_record(folder: Path) -> RunRecord | None:
    """The ``run.json`` in ``folder``, or ``None`` when there is none (or it is unreadable)."""
    try:
        document = json.loads((folder / RECORD_FILE).read_text(encoding="utf-8"))
        return RunRecord(**document["record"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def read_status(folder: Path) -> str | None:
    """The ``status`` of ``folder/metrics.json``, or ``None`` when there is none."""
    try:
        status = json.loads((folder / METRICS_FILE).read_text(encoding="utf-8"))["status"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return str(status)


def is_finished(folder: Path) -> bool:
    """Whether the run in ``folder`` ended well (see the module docstring)."""
    record = read_record(folder)
    status = read_status(folder) or ""
    ended = status == "completed" or status.startswith("stopped")
    return record is not None and record.exit_code == 0 and ended


def default_jobs(*, cpus: int | None = None, available_bytes: int | None = None) -> int:
    """Runs at a time when the user does not say: one per CPU, as many as memory allows.

    Parameters
    ----------
    cpus : int, optional
        CPUs this process may use; default: its CPU affinity (``os.sched_getaffinity``).
    available_bytes : int, optional
        Memory available for new processes; default: ``MemAvailable`` of
        ``/proc/meminfo`` (where there is none: no memory limit).

    Returns
    -------
    int
        ``min(cpus, available_bytes // RUN_MEMORY_BYTES)``, at least 1 (one run after
        another on one CPU or in little memory).
    """
    cpus = len(os.sched_getaffinity(0)) if cpus is None else cpus
    available = _available_memory() if available_bytes is None else available_bytes
    by_memory = cpus if available is None else available // RUN_MEMORY_BYTES
    return max(1, min(cpus, by_memory))


def _available_memory() -> int | None:
    """``MemAvailable`` in bytes, or ``None`` without ``/proc/meminfo``."""
    try:
        lines = _MEMINFO.read_text(encoding="ascii").splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return None


def run_grid(
    runs: Sequence[GridRun],
    out: Path,
    run_function: RunFunction,
    *,
    jobs: int = 1,
    on_start: Callable[[int], None] = lambda pending: None,
    on_end: Callable[[GridRun, RunRecord], None] = lambda run, record: None,
) -> list[GridRun]:
    """Run every run of ``runs`` not yet finished under ``out``; the runs that failed.

    Parameters
    ----------
    runs : sequence of GridRun
        The grid's runs, in order (started in that order).
    out : pathlib.Path
        The experiment folder; run ``h`` goes to ``out/runs/h/``.
    run_function : callable
        Executes one run (:data:`RunFunction`).
    jobs : int, default 1
        Runs at a time (>= 1), each in a thread of its own that waits on its run.
    on_start : callable, optional
        Called once with the number of runs still to do, before any starts.
    on_end : callable, optional
        Called after each run ends, with its record (from the thread that ran it).
    """
    if jobs < 1:
        raise ValueError(f"`jobs` must be >= 1; got {jobs}")
    pending = [run for run in runs if not is_finished(run_folder(out, run))]
    on_start(len(pending))

    def execute(run: GridRun) -> RunRecord:
        record = _execute(run, run_folder(out, run), run_function)
        on_end(run, record)
        return record

    # At most `jobs` runs are submitted at a time: after an interruption (Ctrl-C) or a
    # broken run function, nothing more starts; the runs under way end first.
    queue = iter(pending)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        running = {pool.submit(execute, run) for run in itertools.islice(queue, jobs)}
        while running:
            done, running = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                future.result()  # a broken run function: raise before anything more starts
            for following in itertools.islice(queue, len(done)):
                running.add(pool.submit(execute, following))
    return [run for run in pending if not is_finished(run_folder(out, run))]


def _execute(run: GridRun, folder: Path, run_function: RunFunction) -> RunRecord:
    """Start ``run`` from scratch in ``folder`` and record how it ended."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / "options.json").write_text(_json(run.options), encoding="utf-8")
    record = run_function(RunTask(run=run, folder=folder))
    document = {"hash": run.hash, "varied": run.varied, "record": asdict(record)}
    (folder / RECORD_FILE).write_text(_json(document), encoding="utf-8")
    return record


def _json(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2) + "\n"
