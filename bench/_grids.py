"""Shared by the benchmarks built on experiment grids (quality, privacy_utility).

A benchmark loads its example grid (``examples/grids/<name>.toml``), narrows it by its
own flags (fewer seeds, splits, budgets; other rounds) by editing the parsed document,
and runs it with :mod:`simulations.experiments`, the code path of
``fedcredit experiment run``: the same ``simulate`` subprocesses, resumable in the
experiment folder (a finished run is never repeated). It then reads the run folders
and writes its own JSON, Markdown and plot.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import sys
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from cli.experiment import simulate_options
from simulations.experiments import (
    Grid,
    GridRun,
    RunRecord,
    default_jobs,
    expand_grid,
    run_grid,
    write_results,
)
from simulations.experiments.subprocess_run import SimulateSubprocess

__all__ = [
    "EXAMPLES",
    "GridDocument",
    "arguments",
    "fixed_settings",
    "grid_parser",
    "load_document",
    "narrowed",
    "run",
    "run_announced",
]

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "grids"


class GridDocument:
    """A parsed grid file, to narrow before expanding.

    Attributes
    ----------
    path : pathlib.Path
        The grid file (relative paths in it are read from its folder).
    document : dict
        Its ``[fixed]`` and ``[vary]`` tables (a copy: edit freely).
    """

    def __init__(self, path: Path, document: Mapping[str, Any]) -> None:
        self.path = path
        self.document = copy.deepcopy(dict(document))

    @property
    def fixed(self) -> dict[str, Any]:
        """The ``[fixed]`` table (created when absent)."""
        table: dict[str, Any] = self.document.setdefault("fixed", {})
        return table

    @property
    def vary(self) -> dict[str, Any]:
        """The ``[vary]`` table (created when absent)."""
        table: dict[str, Any] = self.document.setdefault("vary", {})
        return table

    def grid(self) -> Grid:
        """Expand the (narrowed) document against ``fedcredit simulate``'s options."""
        return expand_grid(self.document, self.path, simulate_options())


def load_document(name: str) -> GridDocument:
    """``examples/grids/<name>.toml``, parsed."""
    path = EXAMPLES / f"{name}.toml"
    return GridDocument(path, tomllib.loads(path.read_text(encoding="utf-8")))


def narrowed(grid: Grid, keep: Callable[[GridRun], bool]) -> Grid:
    """``grid`` with only the runs ``keep`` accepts (in the grid's order)."""
    return dataclasses.replace(grid, runs=tuple(run for run in grid.runs if keep(run)))


def arguments(grid_run: GridRun) -> list[str]:
    """The ``fedcredit simulate`` flags of ``grid_run`` (before ``--out``)."""
    return simulate_options().arguments(grid_run.given)


def fixed_settings(grid: Grid) -> list[str]:
    """The flags every run of ``grid`` is given, ``--rounds`` aside (a benchmark's settings)."""
    first = grid.runs[0]
    fixed = {
        name: value
        for name, value in first.given.items()
        if name not in grid.varied and name != "rounds"
    }
    return simulate_options().arguments(fixed)


def grid_parser(description: str, *, rounds: int, out: str) -> argparse.ArgumentParser:
    """A grid benchmark's common flags: ``--seeds``, ``--rounds``, ``--jobs``, ``--out``.

    ``rounds`` is the default of ``--rounds``; ``out`` the experiment folder's name
    under ``runs/``. A benchmark adds its own flags to the parser it gets.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument(
        "--jobs",
        type=int,
        default=default_jobs(),
        help="simulations at a time (AUC is unaffected); default: one per CPU within memory",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "runs" / out,
        help="experiment folder: a second call with it resumes (finished runs are kept)",
    )
    return parser


def run_announced(grid: Grid, out: Path, *, jobs: int) -> None:
    """Say how many runs and the first one's flags, then :func:`run` them."""
    print(f"{len(grid.runs)} runs, e.g. simulate {' '.join(arguments(grid.runs[0]))}", flush=True)
    run(grid, out, jobs=jobs)


def run(grid: Grid, out: Path, *, jobs: int) -> None:
    """Run every run of ``grid`` not yet finished in ``out``; results.csv; exit on a failure."""
    space = simulate_options()
    total = len(grid.runs)

    def started(pending: int) -> None:
        print(f"{total - pending} of {total} runs already finished in {out}", flush=True)

    def ended(grid_run: GridRun, record: RunRecord) -> None:
        settings = ", ".join(f"{name}={value}" for name, value in grid_run.varied.items())
        outcome = "finished" if record.exit_code == 0 else f"FAILED ({record.error})"
        print(f"run {grid_run.hash} ({settings}): {outcome} in {record.wall_seconds:.0f} s",
              flush=True)  # fmt: skip

    failed = run_grid(
        grid.runs, out, SimulateSubprocess(space), jobs=jobs, on_start=started, on_end=ended
    )
    write_results(grid, out)
    if failed:
        names = ", ".join(grid_run.hash for grid_run in failed)
        print(f"{len(failed)} runs failed ({names}): see {out}/runs/<run>/simulate.log",
              file=sys.stderr)  # fmt: skip
        raise SystemExit(1)
