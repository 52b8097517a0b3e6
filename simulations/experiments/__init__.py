"""Experiment grids: many ``fedcredit simulate`` runs from one TOML file, resumably.

:mod:`~simulations.experiments.options` reads the options a grid may set from the
command's own signature; :mod:`~simulations.experiments.grid` loads a grid file and
expands it to runs with a stable hash each; :mod:`~simulations.experiments.runner`
runs them (resumable, ``jobs`` at a time) through an injectable run function, of
which :mod:`~simulations.experiments.subprocess_run` is the real one;
:mod:`~simulations.experiments.results` rebuilds ``results.csv`` and
``results.parquet`` from the run folders; :mod:`~simulations.experiments.report` plots
them and writes ``report.html`` (:mod:`~simulations.experiments.page`).
"""

from __future__ import annotations

from simulations.experiments.grid import Grid, GridRun, expand_grid, load_grid
from simulations.experiments.options import OptionSpace, option_space
from simulations.experiments.results import write_results
from simulations.experiments.runner import RunRecord, RunTask, default_jobs, run_grid

__all__ = [
    "Grid",
    "GridRun",
    "OptionSpace",
    "RunRecord",
    "RunTask",
    "default_jobs",
    "expand_grid",
    "load_grid",
    "option_space",
    "run_grid",
    "write_results",
]
