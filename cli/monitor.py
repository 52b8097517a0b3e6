"""``fedcredit monitor``: stability of a later file against a simulated run's development sample.

The development run is a finished ``fedcredit simulate`` folder; each bank's later
file is named after it (``bank-1.csv``). Every bank compares its later file with its
own development rows at the bank (nothing released); the consortium's later counts
are summed in a monitoring run through Flower's Simulation Engine (secure
aggregation on by default; noisy and charged to a bank's ledger when it has a budget)
and compared with the counts the development run released
(:mod:`simulations.monitor`). ``--bank NAME`` reports that bank's own comparison
only, with no federated run and no release.

Writes ``OUT/stability.json`` and ``OUT/stability.png`` and prints one table: the
score's PSI and each characteristic's CSI, with the 0.1 / 0.25 levels and the
sample-size-aware drift flag.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli.console import Column, console, fail_cleanly, say, show_table
from credit.errors import ConfigError

if TYPE_CHECKING:
    from participant.guard.settings import GuardSettings
    from simulations.monitor import MonitorPlan

__all__ = ["bank_report", "monitor", "show_stability"]

Run = Annotated[
    Path,
    typer.Option(help="The development run: a finished fedcredit simulate output folder."),
]
LaterData = Annotated[
    list[Path],
    typer.Option(
        help="A bank's later file (CSV of the run's schema, named after the bank: "
        "bank-1.csv), or a folder of them; repeat for more.",
    ),
]
Out = Annotated[Path, typer.Option(help="Output folder for stability.json and stability.png.")]
SecureAggregation = Annotated[
    bool,
    typer.Option(help="Sum the banks' later counts by secure aggregation (the coordinator "
                 "learns only the sum)."),
]  # fmt: skip
Quantile = Annotated[
    float,
    typer.Option(
        help="Drift flag: PSI >= 0.1 and above the chi-square quantile (1/n + 1/m) "
        "chi2_q(B - 1) of no drift, in (0, 1).",
    ),
]
Bank = Annotated[
    str | None,
    typer.Option(help="Only this bank's own comparison (no federated run, nothing released)."),
]
Cpus = Annotated[int | None, typer.Option(min=1, help="CPUs for the Simulation Engine.")]


def monitor(
    run: Run,
    later_data: LaterData,
    out: Out = Path("runs/monitor"),
    secure_aggregation: SecureAggregation = True,
    quantile: Quantile = 0.99,
    bank: Bank = None,
    cpus: Cpus = None,
) -> None:
    """PSI of the score and CSI of every characteristic, per bank and consortium-wide."""
    started = time.monotonic()
    with fail_cleanly():
        if not 0.0 < quantile < 1.0:
            raise ConfigError(f"must lie in (0, 1); got {quantile}", source="--quantile")
        from simulations.monitor import plan_monitor, run_monitor

        plan = plan_monitor(  # a bank's own comparison runs nothing federated
            run,
            later_data,
            out,
            secure_aggregation=secure_aggregation and bank is None,
            quantile=quantile,
        )
        if bank is not None:
            document = _local_only(plan, bank)
        else:
            console.print(
                f"[bold]fedcredit monitor[/]: {len(plan.banks)} banks, secure aggregation "
                f"{'on' if secure_aggregation else 'off'}"
            )
            document = run_monitor(plan, on_event=say, cpus=cpus).document
    show_stability(document)
    say(
        f"stability: {out / 'stability.json'}",
        f"plot:      {out / 'stability.png'}",
        f"({time.monotonic() - started:.0f} s)",
    )


def _local_only(plan: MonitorPlan, bank: str) -> dict[str, Any]:
    """One bank's own comparison, written as a report of that bank alone."""
    settings = next((s for s in plan.banks if s.bank_name == bank), None)
    if settings is None:
        raise ConfigError(
            f"bank '{bank}' has no later file among --later-data "
            f"(banks: {', '.join(sorted(plan.later))})",
            source="--bank",
        )
    return bank_report(settings, plan.out_dir, quantile=plan.quantile, run_dir=plan.run_dir)


def bank_report(
    settings: GuardSettings, out: Path, *, quantile: float, run_dir: Path | None = None
) -> dict[str, Any]:
    """A bank's own comparison (its later file against all its development rows, at the
    bank, nothing released), written to ``out`` as a report of that bank alone.

    ``run_dir``: the development run's folder (default: the folder holding the bank's
    development model, ``RUN/model``).

    Raises
    ------
    ConfigError
        The bank has no later file and development model configured, or an unusable
        model folder.
    """
    from coordinator.app.monitor_files import stability_document, write_monitor_outputs
    from credit.schema import load_schema
    from participant.guard.stability_release import development_model, local_comparison

    policy = settings.stability
    if policy is None:
        raise ConfigError(
            f"bank '{settings.bank_name}' has no later file: start it with --later-data "
            "and --development-model",
            source="--later-data",
        )
    layout, comparison = local_comparison(settings, quantile=quantile)
    model = development_model(policy.model_dir, load_schema(settings.schema_path))
    document = stability_document(
        run_dir=run_dir or policy.model_dir.parent,
        later={settings.bank_name: str(policy.later_path)},
        layout=layout,
        model_sha256=model.sha256,
        consortium=None,
        consortium_missing="a bank's own comparison only (nothing released)",
        outcome=None,
        banks={settings.bank_name: comparison},
        quantile=quantile,
    )
    write_monitor_outputs(out, document)
    return document


def _cell(entry: Mapping[str, Any]) -> str:
    flag = " *" if entry["drift"] else ""
    return f"{entry['psi']:.4f} {entry['level']}{flag}"


def show_stability(document: Mapping[str, Any]) -> None:
    """One row per characteristic (score first), one column per sample compared."""
    series: dict[str, Mapping[str, Any]] = {}
    if document.get("consortium"):
        series["consortium"] = document["consortium"]
    series.update(document.get("banks") or {})
    if not series:
        say(f"consortium not compared: {document.get('consortium_missing')}")
        return
    first = next(iter(series.values()))
    names = ["score", *first["characteristics"]]

    def entry(part: Mapping[str, Any], name: str) -> Mapping[str, Any]:
        found: Mapping[str, Any] = (
            part["score"] if name == "score" else part["characteristics"][name]
        )
        return found

    columns: list[str | Column] = [
        Column("name", no_wrap=True),
        *(Column(label, justify="right", no_wrap=True) for label in series),
    ]
    rows = [[name, *(_cell(entry(part, name)) for part in series.values())] for name in names]
    show_table("PSI (score) and CSI: stable < 0.1 <= monitor < 0.25 <= shift", columns, rows)
    sizes = ", ".join(
        f"{label}: n={part['score']['expected_rows']:,.0f} m={part['score']['actual_rows']:,.0f}"
        for label, part in series.items()
    )
    say(
        "* drift: PSI >= 0.1 and above what sampling (and DP noise) explains at the "
        f"{document['quantile']:g} quantile",
        f"samples (development n, later m): {sizes}",
    )
    if document.get("consortium_missing"):
        say(f"consortium not compared: {document['consortium_missing']}")
