"""``fedcredit coordinator launch | list | stop``: the operator's run commands."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from credit.console import EXIT_RUN_FAILED, console, fail_cleanly

__all__ = ["register"]

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_FLOWER_LEVEL = re.compile(r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL)\s*:\s*")

ConsortiumDir = Annotated[
    Path, typer.Argument(help="The consortium folder (from `fedcredit coordinator init`).")
]


def launch(
    consortium_dir: ConsortiumDir,
    out: Annotated[
        Path | None,
        typer.Option(help="Copy the finished run's results here (metrics, model, ledgers, audit)."),
    ] = None,
    rounds: Annotated[
        int | None, typer.Option(min=1, help="Federated rounds (default: the consortium's).")
    ] = None,
    run_name: Annotated[
        str | None, typer.Option(help="Name of the run (default: run-<UTC time>).")
    ] = None,
    resume: Annotated[
        str | None,
        typer.Option(
            help="Continue this run (name or Flower run id) after its last completed round."
        ),
    ] = None,
    min_banks: Annotated[
        int | None, typer.Option(min=1, help="Fewest banks a round needs (default: consortium's).")
    ] = None,
    secure_aggregation: Annotated[
        bool | None,
        typer.Option(
            "--secure-aggregation/--no-secure-aggregation",
            help="Combine updates by secure aggregation (default: the consortium's).",
        ),
    ] = None,
) -> None:
    """Submit a run to the SuperLink, stream per-round progress, collect the results."""
    from coordinator.consortium import load_consortium
    from coordinator.runs import launch_run

    def show(line: str) -> None:
        text = _ANSI.sub("", line).rstrip()
        level = _FLOWER_LEVEL.match(text)
        if level is None:
            console.print(text, highlight=False, markup=False)  # the ServerApp's own lines
            return
        message = text[level.end() :]
        if level.group(1) in {"WARNING", "ERROR"}:
            console.print(
                f"{level.group(1)}: {message}", style="red", highlight=False, markup=False
            )
        elif message:
            console.print(f"  flower: {message}", style="dim", highlight=False, markup=False)

    with fail_cleanly():
        consortium = load_consortium(consortium_dir)
        console.print(
            f"[bold]fedcredit coordinator launch[/]: submitting to {consortium.config.name}"
            + (f" (resuming {resume})" if resume else "")
        )
        result = launch_run(
            consortium,
            overrides={
                "rounds": rounds,
                "min_banks": min_banks,
                "secure_aggregation": secure_aggregation,
            },
            run_name=run_name,
            resume=resume,
            out=out,
            on_line=show,
        )
    console.print(
        f"run {result.run_name} (Flower run {result.flower_run_id}): {result.status}, "
        f"{result.rounds_done}/{result.rounds_planned} rounds; outputs in {result.run_dir}"
    )
    if result.out is not None:
        console.print(f"results copied to {result.out}")
    if not result.completed:
        if result.error:
            console.print(f"the run failed: {result.error}", style="red", highlight=False)
        if result.rounds_done:
            console.print(
                f"continue it with `fedcredit coordinator launch {consortium_dir} "
                f"--resume {result.run_name}`",
                style="yellow",
            )
        raise typer.Exit(EXIT_RUN_FAILED)


def list_runs(consortium_dir: ConsortiumDir) -> None:
    """List the runs launched from this consortium folder."""
    from coordinator.consortium import load_consortium
    from coordinator.runs import list_runs as runs_of

    with fail_cleanly():
        rows = runs_of(load_consortium(consortium_dir))
    table = Table(title=f"Runs of {consortium_dir}")
    for column in ("run", "Flower run ids", "status", "rounds", "submitted (UTC)"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row.run_name,
            ", ".join(str(i) for i in row.flower_run_ids),
            row.status,
            f"{row.rounds_done}/{row.rounds_planned}",
            row.submitted_at,
        )
    console.print(table)


def stop(
    consortium_dir: ConsortiumDir,
    run: Annotated[str, typer.Argument(help="The run's name or Flower run id.")],
) -> None:
    """Stop a running run (its checkpoint stays; `launch --resume` continues it)."""
    from coordinator.consortium import load_consortium
    from coordinator.runs import stop_run

    with fail_cleanly():
        flower_id = stop_run(load_consortium(consortium_dir), run)
    console.print(f"stopped Flower run {flower_id} of {run}")


def register(app: typer.Typer) -> None:
    """Add the run commands to the ``coordinator`` command group."""
    app.command("launch")(launch)
    app.command("list")(list_runs)
    app.command("stop")(stop)
