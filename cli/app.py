"""The ``fedcredit`` command line: one console script, a subcommand group per role.

Errors the user can fix (bad data, schema, flags, configuration) print one line on
stderr and exit with code 2; a run that fails (too few banks replied) exits with 1.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from cli.console import (
    EXIT_RUN_FAILED,
    console,
    fail_cleanly,
)
from credit.encoding import EncodingKind, StatsSource
from credit.errors import ConfigError
from credit.model_spec import ModelKind

if TYPE_CHECKING:
    from simulations.budgets import BudgetPolicy
from credit.run_config import PartitionScheme

__all__ = ["app", "main"]

app = typer.Typer(
    name="fedcredit",
    help="Privacy-preserving federated credit-default modelling on Flower.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


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
    epsilon: Annotated[
        float | None,
        typer.Option(help="Differential privacy: every bank's max epsilon (DP-SGD with Opacus)."),
    ] = None,
    delta: Annotated[
        float | None,
        typer.Option(help="With --epsilon: every bank's delta (default 1/(10 n_train) per bank)."),
    ] = None,
    budgets: Annotated[
        Path | None,
        typer.Option(help="TOML file with a privacy budget per bank (see README)."),
    ] = None,
    max_grad_norm: Annotated[float, typer.Option(help="DP-SGD per-sample clipping norm.")] = 1.0,
    secure_aggregation: Annotated[
        bool,
        typer.Option(
            help="Combine updates by secure aggregation (the coordinator learns only the sum)."
        ),
    ] = True,
    dropout_rate: Annotated[
        float,
        typer.Option(help="Chance a bank drops out of a round at a random stage (0 <= p < 1)."),
    ] = 0.0,
    cpus: Annotated[
        int | None, typer.Option(min=1, help="CPUs for the simulation engine (default: all).")
    ] = None,
) -> None:
    """Train a shared model across simulated banks with Flower's Simulation Engine."""
    from coordinator.app.server_app import format_round
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
                "max_grad_norm": max_grad_norm,
                "secure_aggregation": secure_aggregation,
            },
            source="fedcredit simulate",
        )
        policy, policy_source = _budget_policy(epsilon, delta, budgets)
        started = time.monotonic()
        console.print(
            "[bold]fedcredit simulate[/]: validating data and splitting it into banks "
            f"({partition})"
        )
        plan = plan_simulation(
            config,
            banks,
            budgets=policy,
            budget_source=policy_source,
            dropout_rate=dropout_rate,
        )
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


privacy_app = typer.Typer(help="Differential privacy: re-check a run's privacy ledgers.")
app.add_typer(privacy_app, name="privacy")


def _register_roles() -> None:
    """Attach the operator's, the bank's and the auditor's command groups."""
    from cli.audit import audit_app
    from cli.coordinator import coordinator_app
    from cli.participant import participant_app

    app.add_typer(coordinator_app, name="coordinator")
    app.add_typer(participant_app, name="participant")
    app.add_typer(audit_app, name="audit")


_register_roles()


@privacy_app.command("verify")
def privacy_verify(
    run_dir: Annotated[Path, typer.Argument(help="A run's output folder (holds metrics.json).")],
) -> None:
    """Recompute each bank's epsilon from its ledger with Google's dp_accounting."""
    from privacy.verify import TOLERANCE, verify_run

    with fail_cleanly():
        checks = verify_run(run_dir)
    table = Table(title=f"Privacy ledgers of {run_dir} (independent: dp_accounting)")
    for column in ("bank", "reported ε", "RDP ε", "PLD ε", "max ε", "δ", "verdict"):
        table.add_column(column, justify="left" if column == "bank" else "right")
    for check in checks:
        verdict = (
            "ok"
            if check.agrees and check.within_budget
            else ("MISMATCH" if not check.agrees else "OVER BUDGET")
        )
        table.add_row(
            check.bank,
            f"{check.reported:.4f}",
            f"{check.independent_rdp:.4f}",
            f"{check.independent_pld:.4f}",
            f"{check.max_epsilon:.4f}",
            f"{check.delta:.3g}",
            verdict,
        )
    console.print(table)
    if all(c.agrees and c.within_budget for c in checks):
        console.print(
            f"all {len(checks)} ledgers agree within {TOLERANCE:.0%} and are within budget"
        )
        return
    raise typer.Exit(EXIT_RUN_FAILED)


def _budget_policy(
    epsilon: float | None, delta: float | None, budgets: Path | None
) -> tuple[BudgetPolicy | None, str]:
    """The simulated banks' budgets from --epsilon/--delta or --budgets FILE."""
    from privacy.budget import PrivacyBudget
    from simulations.budgets import BudgetPolicy, load_budget_file

    if budgets is not None and epsilon is not None:
        raise ConfigError("give either --epsilon or --budgets, not both", source="--budgets")
    if budgets is not None:
        return load_budget_file(budgets), str(budgets)
    if epsilon is None:
        if delta is not None:
            raise ConfigError("--delta needs --epsilon", source="--delta")
        return None, "--epsilon"
    try:
        spec = PrivacyBudget(max_epsilon=epsilon, delta=delta)
    except ValueError as exc:
        raise ConfigError("epsilon must be > 0 and delta in (0, 1)", source="--epsilon") from exc
    return BudgetPolicy(default=spec), "--epsilon"


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
