"""``fedcredit monitor``: stability of a later file against a simulated run's development sample.

The development run is a finished ``fedcredit simulate`` folder; each bank's later
file is named after it (``bank-1.csv``). Every bank compares its later file with its
own development rows at the bank (nothing released); the consortium's later counts
are summed in a monitoring run through Flower's Simulation Engine (secure
aggregation on by default; noisy and charged to a bank's ledger when it has a budget)
and compared with the counts the development run released
(:mod:`simulations.monitor`). ``--bank NAME`` reports that bank's own comparison
only, with no federated run and no release.

``--model DIR`` (instead of ``--run``) is a bank's own check against a signed model
package: the package is verified, the later file scored with it and its counts
compared with the development bins the package holds (the counts the run released,
with their DP noise variance under privacy budgets, which the drift flag allows for
as ``--run`` does), as ``fedcredit serve`` does for the applicants it scores; nothing
is released.

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
    import pandas as pd

    from credit.schema import DatasetSchema
    from participant.guard.settings import GuardSettings
    from simulations.monitor import MonitorPlan

__all__ = ["bank_report", "monitor", "show_stability"]

Run = Annotated[
    Path | None,
    typer.Option(help="The development run: a finished fedcredit simulate output folder."),
]
Model = Annotated[
    Path | None,
    typer.Option(
        help="Instead of --run: a signed model package (a run's model/ folder); one later "
        "file is scored with it and compared with the package's development bins, at the "
        "bank."
    ),
]
Signer = Annotated[
    Path | None,
    typer.Option(help="With --model: pin the package's signer (the consortium's audit .pub)."),
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
    later_data: LaterData,
    run: Run = None,
    model: Model = None,
    signer: Signer = None,
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
        if model is not None:
            if run is not None or bank is not None:
                raise ConfigError(
                    "compares one later file with the package's development bins; "
                    "leave out --run and --bank",
                    source="--model",
                )
            document = package_report(model, later_data, out, quantile=quantile, signer=signer)
        elif run is None:
            raise ConfigError(
                "give the development run (--run) or a model package (--model)", source="--run"
            )
        else:
            document = _run_report(
                run, later_data, out, secure_aggregation, quantile=quantile, bank=bank, cpus=cpus
            )
    show_stability(document)
    say(
        f"stability: {out / 'stability.json'}",
        f"plot:      {out / 'stability.png'}",
        f"({time.monotonic() - started:.0f} s)",
    )


def _run_report(
    run: Path,
    later_data: list[Path],
    out: Path,
    secure_aggregation: bool,
    *,
    quantile: float,
    bank: str | None,
    cpus: int | None,
) -> dict[str, Any]:
    """The comparison against a development run: federated, or one bank's own."""
    from simulations.monitor import plan_monitor, run_monitor

    plan = plan_monitor(  # a bank's own comparison runs nothing federated
        run,
        later_data,
        out,
        secure_aggregation=secure_aggregation and bank is None,
        quantile=quantile,
    )
    if bank is not None:
        return _local_only(plan, bank)
    console.print(
        f"[bold]fedcredit monitor[/]: {len(plan.banks)} banks, secure aggregation "
        f"{'on' if secure_aggregation else 'off'}"
    )
    return run_monitor(plan, on_event=say, cpus=cpus).document


PACKAGE_SAMPLE = (
    "the development counts the run released, stored in the model package's scoring.json "
    "(characteristics: the summed set-up release over the banks' training rows; score: the "
    "final model's summed score histograms over the banks' held-out rows; under privacy "
    "budgets the drift flag allows for the DP noise variance the package stores for them)"
)


def package_report(
    model: Path, later_data: list[Path], out: Path, *, quantile: float, signer: Path | None
) -> dict[str, Any]:
    """One later file against a model package's development bins, at the bank, written to
    ``out`` (``stability.json``, ``stability.png``); the package is verified first.

    Raises
    ------
    ConfigError
        Not exactly one later file, or a package without development bins.
    credit.errors.PackageRefused
        The package fails verification.
    credit.errors.SchemaError
        The later file breaks the package's schema (the first violation named).
    """
    from coordinator.app.monitor_files import stability_document, write_monitor_outputs
    from credit.audit import load_public_key
    from credit.model_card import WEIGHTS_FILE
    from credit.package import load_package
    from credit.scoring import Scorer
    from serving import drift_baseline, file_comparison

    if len(later_data) != 1 or not later_data[0].is_file():
        raise ConfigError(
            "with --model give exactly one later file (CSV of the package's schema)",
            source="--later-data",
        )
    path = later_data[0]
    package = load_package(model, signer=None if signer is None else load_public_key(signer))
    baseline = drift_baseline(package)
    if baseline is None:
        raise ConfigError(
            "the package holds no development bins to compare with: "
            f"{package.scoring.development_missing}",
            source="--model",
        )
    frame = _applicants(path, package.schema)
    if frame.empty:
        raise ConfigError(f"{path} holds no rows", source="--later-data")
    comparison = file_comparison(Scorer(package), baseline, frame, quantile=quantile)
    label = path.name.removesuffix(".gz").removesuffix(".csv")
    document = stability_document(
        run_dir=model,
        later={label: str(path)},
        layout=baseline.layout,
        model_sha256=package.manifest.files[WEIGHTS_FILE].sha256,
        consortium=None,
        consortium_missing="a bank's own comparison with the model package (nothing released)",
        outcome=None,
        banks={label: comparison},
        quantile=quantile,
    )
    document["development_sample"] = PACKAGE_SAMPLE
    document["package"] = package.digest
    write_monitor_outputs(out, document)
    return document


def _applicants(path: Path, schema: DatasetSchema) -> pd.DataFrame:
    """The later file's rows, validated against the package's schema (no target needed)."""
    import pandas as pd

    from credit.scoring import check_applicants

    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    checked = check_applicants(raw, schema, source=path)
    if checked.data is None:
        raise checked.report.error()
    return checked.data.frame


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
    model = development_model(
        policy.model_dir, load_schema(settings.schema_path), signer=policy.signer
    )
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
