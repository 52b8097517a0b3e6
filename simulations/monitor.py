"""Stability monitoring of a simulated consortium: ``fedcredit monitor`` in a simulation.

The development run is a finished ``fedcredit simulate`` folder (``RUN``): its
``simulation.json`` names the banks, their files and budgets; its ``model/`` and
``metrics.json`` give the model and the development counts
(:mod:`coordinator.app.monitor_files`). Each bank that has a later file (one file per
bank, named after it: ``bank-1.csv``; a folder of such files, or the files themselves)
takes part as the same bank: its data file, hold-out salt, audit log and privacy
ledger are the run's (``RUN/audit/``, ``RUN/ledgers/``), so a private monitoring run
charges the ledgers the training run charged, and ``fedcredit privacy verify --ledger
RUN/ledgers/<bank>.jsonl`` recomputes them. Its guard is configured with the later file
and the run's model (:class:`~participant.guard.settings.StabilityPolicy`).

:func:`run_monitor` then

1. computes each bank's own comparison (its later file against all its development
   rows; what the bank computes locally, nothing released:
   :func:`~participant.guard.stability_release.local_comparison`);
2. runs the monitoring run (:mod:`coordinator.app.monitor_driver`) through Flower's
   Simulation Engine, secure aggregation on unless the caller turns it off, so the
   consortium learns only the sum of the later counts;
3. compares the sum with the consortium's development counts and writes
   ``OUT_MONITOR/stability.json`` and ``stability.png``.

The configuration, the comparison and the files are those a deployed monitoring run
uses too (:mod:`coordinator.app.monitor_run`); only the banks (simulated here, with
their per-bank comparisons) and the engine differ.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flwr.clientapp import ClientApp

from coordinator.app.monitor_driver import MonitorOutcome, make_monitor_app
from coordinator.app.monitor_files import (
    Development,
    read_development,
    stability_document,
    write_monitor_outputs,
)
from coordinator.app.monitor_run import consortium_comparison, monitoring_config
from credit.errors import ConfigError, OperationFailed
from credit.governance.stability import DEFAULT_QUANTILE
from credit.governance.stability_release import PopulationComparison
from credit.loading import load_bank_csv
from credit.run_config import RunConfig
from credit.schema import load_schema
from deploy.flower_env import set_offline_defaults
from participant.guard.settings import (
    GuardSettings,
    HoldOut,
    SecAggPolicy,
    StabilityPolicy,
)
from participant.guard.stability_release import local_comparison
from privacy.budget import PrivacyBudget
from privacy.secagg.graph import GraphChoice
from privacy.secagg.protocol import MIN_ROSTER
from simulations.engine import (
    LEDGERS_DIR,
    PartitionPlan,
    pinned_banks,
    relay_app,
    run_on_simulation_engine,
)
from simulations.settings import SIMULATION_FILE

__all__ = [
    "FederatedSum",
    "MonitorPlan",
    "MonitorResult",
    "later_files",
    "monitor_client_app",
    "plan_monitor",
    "run_monitor",
]

EventCallback = Callable[[str], None]
_AUDIT_DIR = "audit"


@dataclass(frozen=True)
class MonitorPlan:
    """The banks of a monitoring run and what they compare.

    Attributes
    ----------
    run_dir : pathlib.Path
        The development run's folder.
    out_dir : pathlib.Path
        Where the monitoring run writes its files.
    development : Development
        The development run's model, configuration and released counts.
    banks : tuple of GuardSettings
        Each taking bank's guard settings, with its later file (by Flower partition id).
    later : dict of str to str
        Each bank's later file.
    quantile : float
        The drift flag's chi-square quantile.
    """

    run_dir: Path
    out_dir: Path
    development: Development
    banks: tuple[GuardSettings, ...]
    later: dict[str, str]
    quantile: float = DEFAULT_QUANTILE


@dataclass(frozen=True)
class MonitorResult:
    """A monitoring run's report and where it was written."""

    document: dict[str, Any]
    path: Path


def later_files(paths: Sequence[Path]) -> dict[str, Path]:
    """Each bank's later file: the files given, or the CSV files of a folder given.

    A file is named after its bank (``bank-1.csv``, ``bank-1.csv.gz``).

    Raises
    ------
    ConfigError
        A path that does not exist, a folder without CSV files, or two files of one
        bank (named, ``--later-data``).
    """
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.name.endswith((".csv", ".csv.gz")))
            if not found:
                raise ConfigError(f"'{path}' holds no .csv files", source="--later-data")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise ConfigError(f"'{path}' does not exist", source="--later-data")
    named: dict[str, Path] = {}
    for file in files:
        name = file.name[: len(file.name) - len("".join(file.suffixes))]
        if name in named:
            raise ConfigError(
                f"'{named[name]}' and '{file}' are both bank '{name}''s later file",
                source="--later-data",
            )
        named[name] = file
    return named


def plan_monitor(
    run_dir: Path,
    later: Sequence[Path],
    out_dir: Path,
    *,
    secure_aggregation: bool = True,
    quantile: float = DEFAULT_QUANTILE,
) -> MonitorPlan:
    """Check the inputs and configure the banks that have a later file (module docstring).

    Every later file is validated against the run's schema before anything runs.

    Raises
    ------
    ConfigError
        Not a finished simulation (``RUN``), a later file of a bank the run does not
        have, too few banks for secure aggregation, or an unusable model (the file,
        folder or flag is named).
    credit.errors.SchemaError
        A later file breaks the schema (file, column and row named).
    """
    development = read_development(run_dir)
    simulated = _simulated_banks(run_dir)
    files = later_files(later)
    unknown = sorted(set(files) - set(simulated))
    if unknown:
        raise ConfigError(
            f"bank '{unknown[0]}' (file {files[unknown[0]]}) is not a bank of the run "
            f"(banks: {', '.join(sorted(simulated))})",
            source="--later-data",
        )
    if secure_aggregation and len(files) < MIN_ROSTER:
        raise ConfigError(
            f"secure aggregation needs at least {MIN_ROSTER} banks; {len(files)} have a "
            "later file: give more, or use --no-secure-aggregation",
            source="--later-data",
        )
    dev = development.config
    schema_path = Path(dev.schema_file) if dev.schema_file else None
    schema = load_schema(schema_path)
    for file in files.values():
        load_bank_csv(file, schema)  # SchemaError names the file, column and row
    own = dev.model_copy(
        update={
            "out_dir": str(out_dir),
            "secure_aggregation": secure_aggregation,
            "min_banks": len(files),
            "run_name": f"monitor-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}",
            "monitor_run": str(run_dir),
            "monitor_quantile": quantile,
        }
    )
    config = monitoring_config(dev, own)
    out_dir.mkdir(parents=True, exist_ok=True)
    banks = tuple(
        _bank_settings(name, simulated[name], run_dir, files[name], schema_path, config)
        for name in sorted(files)
    )
    return MonitorPlan(
        run_dir=run_dir,
        out_dir=out_dir,
        development=Development(
            config=config,
            layout=development.layout,
            model_sha256=development.model_sha256,
            counts=development.counts,
            missing=development.missing,
            noise=development.noise,
        ),
        banks=pinned_banks(banks, config),
        later={name: str(file) for name, file in sorted(files.items())},
        quantile=quantile,
    )


def _simulated_banks(run_dir: Path) -> dict[str, dict[str, Any]]:
    """The run's banks from its ``simulation.json``: name -> its entry (file, budget)."""
    path = run_dir / SIMULATION_FILE
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        banks = {str(bank["name"]): bank for bank in document["banks"]}
    except FileNotFoundError:
        raise ConfigError(
            "no simulation.json: fedcredit monitor compares a simulated run's banks "
            "(pass the folder of a fedcredit simulate run)",
            source=str(run_dir),
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"unreadable simulation.json ({exc})", source=str(path)) from exc
    return banks


def _bank_settings(
    name: str,
    entry: dict[str, Any],
    run_dir: Path,
    later: Path,
    schema_path: Path | None,
    config: RunConfig,
) -> GuardSettings:
    """The bank as the run simulated it (file, salt, ledger, audit log), with its later file."""
    stem = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)
    budget = None if entry.get("budget") is None else PrivacyBudget(**entry["budget"])
    audit = run_dir / _AUDIT_DIR
    return GuardSettings(
        bank_name=name,
        data_path=Path(entry["file"]),
        schema_path=schema_path,
        budget=budget,
        ledger_path=run_dir / LEDGERS_DIR / f"{stem}.jsonl" if budget is not None else None,
        audit_log=audit / f"{stem}.jsonl",
        audit_key=audit / f"{stem}.key",
        holdout=HoldOut.for_simulation(
            fraction=config.test_fraction,
            seed=config.seed,
            validation_fraction=config.validation_fraction,
        ),
        secure_aggregation=SecAggPolicy(
            threshold_fraction=config.secagg_threshold_fraction,
            graph=GraphChoice(config.secagg_graph),
            dropout_rate=config.secagg_dropout_rate,
            corruption_rate=config.secagg_corruption_rate,
        ),
        stability=StabilityPolicy(
            later_path=later.absolute(),
            model_dir=run_dir / "model",
            signer=run_dir / "audit" / "coordinator.pub",
        ),
    )


FederatedSum = Callable[[MonitorPlan], MonitorOutcome]
"""Runs a plan's monitoring run and returns its outcome (default: Flower's Simulation Engine)."""


def run_monitor(
    plan: MonitorPlan,
    *,
    on_event: EventCallback | None = None,
    cpus: int | None = None,
    federated_sum: FederatedSum | None = None,
) -> MonitorResult:
    """Each bank's own comparison, the federated sum, the consortium's; write the files.

    ``federated_sum`` replaces the Simulation Engine (tests run the same ServerApp body
    and ClientApp in-process).

    Raises
    ------
    credit.errors.OperationFailed
        The monitoring run produced no sum (it failed: the progress lines say why).
    """
    banks: dict[str, PopulationComparison] = {}
    for settings in plan.banks:
        _, banks[settings.bank_name] = local_comparison(settings, quantile=plan.quantile)
    if federated_sum is None:
        outcome = _federated_sum(plan, on_event=on_event, cpus=cpus)
    else:
        outcome = federated_sum(plan)
    development = plan.development
    consortium = consortium_comparison(
        development, outcome, run_key=development.config.run_name, quantile=plan.quantile
    )
    document = stability_document(
        run_dir=plan.run_dir,
        later=plan.later,
        layout=development.layout,
        model_sha256=development.model_sha256,
        consortium=consortium,
        consortium_missing=development.missing,
        outcome=outcome,
        banks=banks,
        quantile=plan.quantile,
    )
    return MonitorResult(document=document, path=write_monitor_outputs(plan.out_dir, document))


def monitor_client_app(plan: MonitorPlan) -> ClientApp:
    """The ClientApp every bank of the monitoring run runs: its relay and its guard."""
    return relay_app(PartitionPlan(plan.banks), seed=plan.development.config.seed)


def _federated_sum(
    plan: MonitorPlan, *, on_event: EventCallback | None, cpus: int | None
) -> MonitorOutcome:
    """The monitoring run in Flower's Simulation Engine; its outcome."""

    set_offline_defaults(simulation=True)
    outcomes: list[MonitorOutcome] = []
    server_app = make_monitor_app(
        plan.development.config,
        layout=plan.development.layout,
        model_sha256=plan.development.model_sha256,
        on_outcome=outcomes.append,
        on_event=on_event,
    )
    run_on_simulation_engine(
        server_app, monitor_client_app(plan), supernodes=len(plan.banks), cpus=cpus
    )
    if not outcomes:
        raise OperationFailed(
            "the monitoring run produced no sum (too few banks answered: see the lines above)"
        )
    return outcomes[0]
