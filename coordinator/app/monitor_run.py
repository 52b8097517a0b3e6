"""A stability-monitoring run, from the development run's folder to ``stability.json``.

One path for both engines. ``fedcredit monitor`` runs it in Flower's Simulation Engine
(:mod:`simulations.monitor`); in a deployment, ``fedcredit coordinator monitor``
submits the project's ServerApp with ``monitor-run`` in its run config and the
ServerApp (:mod:`coordinator.app.server_app`) calls :func:`run_monitoring`:

1. :func:`~coordinator.app.monitor_files.read_development`: the development run's
   model, layout, model digest and released development counts, from its folder on
   the coordinator's host;
2. :func:`monitoring_config`: the development run's settings (those the banks check:
   schema, hold-out split, validation part) with the monitoring run's own;
3. :class:`~coordinator.app.monitor_driver.MonitorDriver`: the banks' later counts,
   summed (securely unless the run says otherwise);
4. :func:`consortium_comparison`: the sum against the development counts, allowing
   for both samples' DP noise;
5. :func:`~coordinator.app.monitor_files.stability_document` and
   :func:`~coordinator.app.monitor_files.write_monitor_outputs`.

A deployed coordinator holds neither a bank's later file nor its development rows:
its report is consortium-wide, with the banks that took part and those that refused;
each bank compares its own rows at the bank (``fedcredit monitor --bank``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from flwr.serverapp import Grid

from coordinator.app.monitor_driver import MonitorDriver, MonitorOutcome
from coordinator.app.monitor_files import (
    Development,
    read_development,
    stability_document,
    write_monitor_outputs,
)
from credit.governance.stability_release import PopulationComparison, compare_populations
from credit.run_config import RunConfig
from credit.stability_noise import later_noise

__all__ = ["OWN_FIELDS", "consortium_comparison", "monitoring_config", "run_monitoring"]

EventCallback = Callable[[str], None]

OWN_FIELDS = (
    "out_dir",
    "run_name",
    "secure_aggregation",
    "min_banks",
    "round_timeout",
    "audit_key",
    "monitor_run",
    "monitor_quantile",
)
"""The settings a monitoring run takes from its own run config; every other one is the
development run's."""


def monitoring_config(development: RunConfig, run: RunConfig) -> RunConfig:
    """The monitoring run's configuration: ``development``'s, with ``run``'s own fields.

    The banks check the run's schema, hold-out split and validation part against their
    own, so those are the development run's whatever the monitoring run was submitted
    with; :data:`OWN_FIELDS` are the monitoring run's (where it writes, its name, how it
    sums, how many banks it needs, how long it waits, its drift flag). It never resumes.

    Raises
    ------
    credit.errors.ConfigError
        The result breaks a rule of :class:`~credit.run_config.RunConfig` (e.g. its
        ``out-dir`` is the development run's folder).
    """
    fields = {
        **development.model_dump(by_alias=True),
        **{name: getattr(run, name) for name in OWN_FIELDS},
        "resume": False,
    }
    return RunConfig.build(fields, source=f"monitoring run of {run.monitor_run}")


def consortium_comparison(
    development: Development, outcome: MonitorOutcome, *, run_key: str, quantile: float
) -> PopulationComparison | None:
    """The summed later counts against the development counts (None: nothing to compare).

    ``run_key`` is the name the banks filed the monitoring run under (its run name, else
    Flower's run id): their ledger summaries' ``stability-release`` events of that run
    give the later counts' noise.
    """
    if development.counts is None or outcome.later is None:
        return None
    return compare_populations(
        development.counts,
        outcome.later,
        quantile=quantile,
        expected_noise=development.noise,
        actual_noise=later_noise(outcome.privacy, run_key, development.layout),
    )


def run_monitoring(grid: Grid, run: RunConfig, *, on_event: EventCallback) -> Path:
    """The ServerApp's monitoring run (module docstring); the path of ``stability.json``.

    ``run`` is the submitted run config, with ``monitor_run`` set.

    Raises
    ------
    credit.errors.ConfigError
        ``monitor_run`` is not a finished run's folder, or its model has no bins.
    coordinator.errors.RoundFailed
        Too few banks joined or answered the stability query.
    """
    run_dir = Path(run.monitor_run)
    development = read_development(run_dir)
    config = monitoring_config(development.config, run)
    on_event(
        f"monitoring run of {run_dir}: model {development.model_sha256[:12]}, "
        f"{len(development.layout.characteristics)} characteristics and the score, "
        f"secure aggregation {'on' if config.secure_aggregation else 'off'}"
    )
    driver = MonitorDriver(
        grid,
        config,
        layout=development.layout,
        model_sha256=development.model_sha256,
        on_event=on_event,
    )
    outcome = driver.run()
    consortium = consortium_comparison(
        development,
        outcome,
        run_key=config.run_name or str(grid.run.run_id),
        quantile=config.monitor_quantile,
    )
    document = stability_document(
        run_dir=run_dir,
        later={},
        layout=development.layout,
        model_sha256=development.model_sha256,
        consortium=consortium,
        consortium_missing=development.missing,
        outcome=outcome,
        banks={},
        quantile=config.monitor_quantile,
    )
    path = write_monitor_outputs(Path(config.out_dir), document)
    refused = ", ".join(refusal.bank for refusal in outcome.refusals) or "none"
    on_event(
        f"later counts of {outcome.summed_banks} banks summed ({', '.join(outcome.banks)}); "
        f"refused by privacy budget: {refused}; stability: {path}"
    )
    return path
