"""``fedcredit experiment run GRID.toml --out DIR``: a grid of ``simulate`` runs, resumably.

The grid file (:mod:`simulations.experiments.grid`) is checked against
``fedcredit simulate``'s own options before anything runs. Each run goes to
``DIR/runs/<hash>/`` as a ``fedcredit simulate`` subprocess; a finished run is never
repeated, an interrupted or failed one starts again from scratch, so running the
same command again resumes the grid. ``--jobs N`` runs N at a time (default: one per
CPU, as many as memory allows); a progress bar shows the runs done and the ETA.
``DIR/results.csv`` and ``DIR/results.parquet`` are rebuilt from the run folders at
the end (:mod:`simulations.experiments.results`). Exit codes: 0 every run finished,
1 a run failed (named on stderr), 2 a bad grid file or flag.

``fedcredit experiment report DIR`` plots the AUC against each varied numeric option
and writes ``DIR/report.html`` (:mod:`simulations.experiments.report`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from cli.console import EXIT_RUN_FAILED, console, error_console, fail_cleanly, say

if TYPE_CHECKING:
    from simulations.experiments import GridRun, OptionSpace, RunRecord
    from simulations.experiments.runner import RunFunction

__all__ = ["NOT_GRID_OPTIONS", "experiment_app", "run_function", "simulate_options"]

NOT_GRID_OPTIONS = frozenset({"out", "dashboard", "dashboard_port", "folds"})
"""``simulate`` options a grid cannot set: the runner picks each run's ``--out``; a
dashboard or a cross-validation does not fit one row of results."""

experiment_app = typer.Typer(
    help="Experiment grids: many `fedcredit simulate` runs from one TOML file, resumably."
)

GridFile = Annotated[
    Path,
    typer.Argument(
        help="Grid TOML: a [fixed] table of simulate options and a [vary] table of lists "
        '(keys spelled as the flags without dashes, e.g. epsilon = [0.5, 1, "none"]).'
    ),
]
Out = Annotated[
    Path,
    typer.Option(
        help="Experiment folder: runs/<hash>/ per run, results.csv and results.parquet; "
        "run the same command again to resume.",
    ),
]
Jobs = Annotated[
    int | None,
    typer.Option(
        min=1,
        help="Runs at a time, each a Simulation Engine of its own (1: one after another). "
        "Default: one per CPU, as many as memory allows at 3 GiB a run.",
        show_default=False,
    ),
]


def simulate_options() -> OptionSpace:
    """The options a grid may set: ``fedcredit simulate``'s, less :data:`NOT_GRID_OPTIONS`."""
    from cli.simulate import simulate
    from simulations.experiments import option_space

    return option_space(simulate, exclude=NOT_GRID_OPTIONS)


def run_function(space: OptionSpace) -> RunFunction:
    """How each run is executed: a ``fedcredit simulate`` subprocess (tests replace this)."""
    from simulations.experiments.subprocess_run import SimulateSubprocess

    return SimulateSubprocess(space)


@experiment_app.command("run")
def run(grid: GridFile, out: Out, jobs: Jobs = None) -> None:
    """Run every run of GRID not yet finished in --out, then write --out/results.csv."""
    from simulations.experiments import load_grid, run_grid, write_results
    from simulations.experiments.results import PARQUET_FILE
    from simulations.experiments.runner import default_jobs

    with fail_cleanly():
        space = simulate_options()
        loaded = load_grid(grid, space)
    total = len(loaded.runs)
    jobs = default_jobs() if jobs is None else jobs
    say(
        f"grid {grid}: {total} runs varying {', '.join(loaded.varied) or 'nothing'} -> {out} "
        f"({jobs} at a time)"
    )
    columns = (
        TextColumn("runs"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("runs", total=total)

        def started(pending: int) -> None:
            progress.update(task, completed=total - pending)
            if pending < total:
                progress.console.print(f"{total - pending} runs already finished: skipped")

        def ended(grid_run: GridRun, record: RunRecord) -> None:
            progress.console.print(_end_line(grid_run, record), markup=False, highlight=False)
            progress.advance(task)

        failed = run_grid(
            loaded.runs, out, run_function(space), jobs=jobs, on_start=started, on_end=ended
        )
    results = write_results(loaded, out)
    say(f"results: {results} and {PARQUET_FILE} ({total - len(failed)} of {total} runs finished)")
    if failed:
        for grid_run in failed:
            error_console.print(
                f"error: run {grid_run.hash} ({_settings(grid_run.varied)}) failed; see "
                f"{out / 'runs' / grid_run.hash / 'simulate.log'}",
                markup=False,
                highlight=False,
            )
        raise typer.Exit(EXIT_RUN_FAILED)


@experiment_app.command("report")
def report(
    out: Annotated[Path, typer.Argument(help="An experiment folder (holds results.csv).")],
) -> None:
    """Plot AUC against each varied numeric option of OUT/results.csv; OUT/report.html."""
    from simulations.experiments.report import write_report

    with fail_cleanly():
        files = write_report(out)
    say(*(f"plot: {path}" for path in files.plots), f"report: {files.page}")


def _settings(varied: dict[str, Any]) -> str:
    return ", ".join(f"{name}={value}" for name, value in varied.items()) or "the only run"


def _end_line(grid_run: GridRun, record: RunRecord) -> str:
    outcome = "finished" if record.exit_code == 0 else f"FAILED ({record.error})"
    return (
        f"run {grid_run.hash} ({_settings(grid_run.varied)}): {outcome} in "
        f"{record.wall_seconds:.0f} s, peak {record.peak_rss_mb:.0f} MiB"
    )
