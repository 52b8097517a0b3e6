"""The ``fedcredit`` command line: one console script, a subcommand group per role.

Errors the user can fix (bad data, schema, flags, configuration) print one line on
stderr and exit with code 2; a run that fails (too few banks replied) exits with 1.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from credit.encoding import EncodingKind, StatsSource
from credit.errors import FedcreditError
from credit.models import ModelKind
from credit.run_config import PartitionScheme

__all__ = ["app", "main"]

app = typer.Typer(
    name="fedcredit",
    help="Privacy-preserving federated credit-default modelling on Flower.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
error_console = Console(stderr=True, soft_wrap=True)

EXIT_BAD_INPUT = 2
EXIT_RUN_FAILED = 1


@contextlib.contextmanager
def fail_cleanly() -> Iterator[None]:
    """Turn fedcredit's own errors into one line on stderr and an exit code."""
    from coordinator.errors import CoordinatorError

    try:
        yield
    except CoordinatorError as exc:
        error_console.print(f"error: {exc}", markup=False, highlight=False)
        raise typer.Exit(EXIT_RUN_FAILED) from None
    except FedcreditError as exc:
        error_console.print(f"error: {exc}", markup=False, highlight=False)
        raise typer.Exit(EXIT_BAD_INPUT) from None


@app.callback()
def _root() -> None:
    """Privacy-preserving federated credit-default modelling on Flower.

    Researchers: `fedcredit simulate`. Operators and banks: see README.md.
    """


@app.command()
def simulate(
    data: Annotated[
        Path | None,
        typer.Option(help="Bank data CSV (plain or gzip); default: the embedded UCI data set."),
    ] = None,
    schema: Annotated[
        Path | None,
        typer.Option(help="Dataset schema TOML; default: the embedded data set's schema."),
    ] = None,
    banks: Annotated[
        int, typer.Option(min=1, help="Number of simulated banks (iid and dirichlet).")
    ] = 5,
    partition: Annotated[
        PartitionScheme, typer.Option(help="How rows are split into banks.")
    ] = PartitionScheme.IID,
    alpha: Annotated[
        float, typer.Option(help="Dirichlet concentration (smaller = more skewed).")
    ] = 0.5,
    partition_column: Annotated[
        str, typer.Option(help="Column for --partition column: one bank per value.")
    ] = "EDUCATION",
    rounds: Annotated[int, typer.Option(min=1, help="Federated rounds.")] = 10,
    model: Annotated[ModelKind, typer.Option(help="Model family.")] = ModelKind.LOGREG,
    encoding: Annotated[
        EncodingKind, typer.Option(help="Numeric encoding: quantile bins or z-scores.")
    ] = EncodingKind.BINNED,
    feature_stats: Annotated[
        StatsSource, typer.Option(help="Encoder parameters from bank aggregates or public bounds.")
    ] = StatsSource.FEDERATED,
    local_epochs: Annotated[int, typer.Option(min=1, help="Local epochs per round.")] = 1,
    batch_size: Annotated[int, typer.Option(min=1, help="Local batch size.")] = 64,
    learning_rate: Annotated[float, typer.Option(help="Local SGD learning rate (> 0).")] = 0.01,
    seed: Annotated[
        int, typer.Option(help="Seed for partitions, splits, initialisation and shuffles.")
    ] = 0,
    out: Annotated[
        Path, typer.Option(help="Output folder for metrics.json, model/ and rounds.png.")
    ] = Path("runs/simulate"),
    cpus: Annotated[
        int | None, typer.Option(min=1, help="CPUs for the simulation engine (default: all).")
    ] = None,
) -> None:
    """Train a shared model across simulated banks with Flower's Simulation Engine."""
    from coordinator.server_app import format_round
    from credit.run_config import RunConfig
    from simulations.engine import plan_simulation, run_simulated_consortium

    with fail_cleanly():
        config = RunConfig.build(
            {
                "rounds": rounds,
                "model": model,
                "encoding": encoding,
                "feature_stats": feature_stats,
                "local_epochs": local_epochs,
                "batch_size": batch_size,
                "learning_rate": learning_rate,
                "seed": seed,
                "schema": str(schema) if schema else "",
                "data": str(data) if data else "",
                "partition": partition,
                "alpha": alpha,
                "partition_column": partition_column,
                "out_dir": str(out),
            },
            source="fedcredit simulate",
        )
        started = time.monotonic()
        console.print(
            "[bold]fedcredit simulate[/]: validating data and splitting it into banks "
            f"({partition})"
        )
        plan = plan_simulation(config, banks)
        for bank, part in zip(plan.banks, plan.partitions, strict=True):
            console.print(f"  {bank.name:<18} {part.rows.size:>6,} rows  -> {bank.data_path}")
        console.print(
            f"starting Flower's Simulation Engine with {len(plan.banks)} virtual SuperNodes ..."
        )
        files = run_simulated_consortium(
            plan,
            on_round=lambda result, total: console.print(
                format_round(result, total), highlight=False
            ),
            on_event=lambda text: console.print(text, highlight=False),
            cpus=cpus,
        )
        _print_summary(files.metrics, time.monotonic() - started)
        console.print(f"metrics: {files.metrics}\nmodel:   {files.model}\nplot:    {files.plot}")


def _print_summary(metrics_path: Path, seconds: float) -> None:
    import json

    document = json.loads(metrics_path.read_text(encoding="utf-8"))
    table = Table(
        title=f"Final pooled test metrics ({len(document['participants'])} banks, {seconds:.0f} s)"
    )
    for column in ("AUC", "KS", "Gini", "Brier", "log loss", "accuracy", "F1"):
        table.add_column(column, justify="right")
    final = document["final"]
    table.add_row(
        *(
            f"{final[key]:.4f}"
            for key in ("auc", "ks", "gini", "brier", "log_loss", "accuracy", "f1")
        )
    )
    console.print(table)
    banks = Table(title="Participants")
    banks.add_column("bank")
    banks.add_column("train rows", justify="right")
    banks.add_column("test rows", justify="right")
    for name, counts in document["participants"].items():
        banks.add_row(name, f"{counts['n_train']:,}", f"{counts['n_test']:,}")
    console.print(banks)


def main() -> None:
    """Console-script entry point."""
    sys.exit(app())
