"""Submit a stability-monitoring run of a finished run, follow it, collect its report.

``fedcredit coordinator monitor`` names a finished training run of the consortium
(the development run). It submits the project's ServerApp as a new run, in its own
folder ``runs/<monitor-run-name>/``, whose run config is the development run's
recorded one with ``monitor-run`` set to the development run's folder: the ServerApp
(:mod:`coordinator.app.monitor_run`) reads that folder's model and released counts on
this host, asks the banks for their later files' counts on the model's bins, and
writes ``stability.json`` and ``stability.png``. Every bank answers from the later
file and the model it configured itself (``participant start --later-data
--development-model``) and refuses a query about another model.

As with ``launch`` (:mod:`coordinator.ops.launch`), ``launch.json`` records the
submission with Flower's run id, and the results are copied to ``--out`` when the
run wrote its report.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coordinator.app.monitor_names import PLOT_FILE, STABILITY_FILE
from coordinator.app.run_files import LEDGER_DIR, MODEL_DIR
from coordinator.ops.consortium import Consortium
from coordinator.ops.launch import run_config_for, server_error, submit_recorded
from coordinator.ops.runs import (
    LAUNCH_FILE,
    fresh_run_folder,
    read_launch,
    require_superlink,
    resolve_run,
    run_status,
)
from credit.errors import ConfigError

__all__ = [
    "MonitorLaunch",
    "MonitorSubmission",
    "collect_report",
    "development_run",
    "monitor_run",
    "plan_monitoring",
]

_COMMAND = "fedcredit coordinator monitor"


@dataclass(frozen=True)
class MonitorLaunch:
    """How a monitoring run ended.

    Attributes
    ----------
    run_name : str
        The monitoring run's name (its folder ``runs/<run_name>/``).
    development : str
        The name of the run it monitored.
    flower_run_id : int or None
        Flower's id of the submitted run.
    completed : bool
        Whether the ServerApp wrote ``stability.json``.
    run_dir : pathlib.Path
        The monitoring run's folder.
    out : pathlib.Path or None
        Where the report was copied (``--out``), if it completed.
    error : str or None
        The ServerApp's last error line when it did not complete.
    """

    run_name: str
    development: str
    flower_run_id: int | None
    completed: bool
    run_dir: Path
    out: Path | None
    error: str | None = None


def development_run(consortium: Consortium, reference: str) -> Path:
    """The folder of the finished training run ``reference`` names (name or Flower run id).

    Raises
    ------
    ConfigError
        No such run, a monitoring run, or a run that did not complete (no
        ``metrics.json`` with status completed, or no ``model/``), named with
        ``--run``.
    """
    run_dir = resolve_run(consortium, reference, flag="--run")
    monitored = (read_launch(run_dir).get("config") or {}).get("monitor-run")
    if monitored:
        raise ConfigError(
            f"run '{run_dir.name}' is a monitoring run (of {monitored}): name the "
            "training run it monitored",
            source="--run",
        )
    status = run_status(run_dir)
    if status != "completed" or not (run_dir / MODEL_DIR).is_dir():
        raise ConfigError(
            f"run '{run_dir.name}' is {status}, not finished: monitor a run whose every "
            f"round completed (see `fedcredit coordinator list {consortium.paths.root}`)",
            source="--run",
        )
    return run_dir


@dataclass(frozen=True)
class MonitorSubmission:
    """A checked monitoring run, ready to submit.

    Attributes
    ----------
    development : pathlib.Path
        The folder of the finished run it monitors.
    run_dir : pathlib.Path
        Its own (not yet created) folder.
    config : dict
        Its Flower run config.
    """

    development: Path
    run_dir: Path
    config: dict[str, Any]


def plan_monitoring(
    consortium: Consortium,
    *,
    development: str,
    run_name: str | None = None,
    secure_aggregation: bool | None = None,
    min_banks: int | None = None,
    quantile: float | None = None,
) -> MonitorSubmission:
    """Check everything a monitoring run of ``development`` needs; build its run config.

    The run config is the development run's recorded one with the monitoring run's
    folder, name and ``monitor-run``; ``secure_aggregation`` and ``min_banks`` default
    to the development run's, ``quantile`` to the drift flag's 0.99.

    Raises
    ------
    ConfigError
        An unknown or unfinished development run, a taken or bad run name, a bad
        setting.
    credit.errors.OperationFailed
        The SuperLink is not running.
    """
    development_dir = development_run(consortium, development)
    run_dir = fresh_run_folder(
        consortium, run_name, prefix="monitor", taken="choose another --run-name"
    )
    config = run_config_for(
        consortium,
        run_name=run_dir.name,
        resume=False,
        overrides={
            "secure_aggregation": secure_aggregation,
            "min_banks": min_banks,
            "monitor_run": str(development_dir),
            "monitor_quantile": quantile,
        },
        recorded=read_launch(development_dir).get("config") or None,
        command=_COMMAND,
    )
    require_superlink(consortium)
    return MonitorSubmission(development=development_dir, run_dir=run_dir, config=config)


def monitor_run(
    consortium: Consortium,
    submission: MonitorSubmission,
    *,
    out: Path | None = None,
    on_line: Callable[[str], None] = print,
) -> MonitorLaunch:
    """Submit a planned monitoring run, follow it, collect its report into ``out``.

    Raises
    ------
    credit.errors.OperationFailed
        Flower refused the run.
    """
    run_dir = submission.run_dir
    handle = submit_recorded(consortium, run_dir, submission.config, resume=False, on_line=on_line)
    completed = (run_dir / STABILITY_FILE).is_file()
    return MonitorLaunch(
        run_name=run_dir.name,
        development=submission.development.name,
        flower_run_id=handle.run_id,
        completed=completed,
        run_dir=run_dir,
        out=collect_report(run_dir, out) if completed and out is not None else None,
        error=None if completed else server_error(handle.output),
    )


def collect_report(run_dir: Path, out: Path) -> Path:
    """Copy a monitoring run's ``stability.json``, plot, ledger summaries and
    ``launch.json`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    for name in (STABILITY_FILE, PLOT_FILE, LAUNCH_FILE):
        if (run_dir / name).is_file():
            shutil.copy2(run_dir / name, out / name)
    if (run_dir / LEDGER_DIR).is_dir():
        shutil.copytree(run_dir / LEDGER_DIR, out / LEDGER_DIR, dirs_exist_ok=True)
    return out
