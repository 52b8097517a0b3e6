"""The results table: one row per run of a grid, rebuilt from the run folders every time.

``DIR/results.csv`` (CSV only: Parquet would need pyarrow, not a dependency of
fedcredit) has the columns ``run`` (the hash), every varied option (in the grid's
order; an option whose value is none reads ``none``), then:

``auc``, ``ks``
    The kept model's exact AUC and KS on the banks' pooled held-out rows
    (``simulation.json``, ``exact_final``: what only a simulation can compute).
``released_auc``, ``released_ks``
    The same metrics as the coordinator computed them from the banks' bounded,
    summed (under DP, noisy) releases (``metrics.json``, ``final``).
``wall_seconds``, ``peak_rss_mb``
    The run's wall time and its process tree's peak memory (``run.json``).
``max_epsilon_spent``
    The largest epsilon any bank spent (``metrics.json``, ``privacy``); empty without DP.
``status``
    ``completed``, ``stopped: ...``, ``failed: <error>`` or ``not run``.

A cell is empty when its run has no such value (not run, failed, no DP).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from simulations.experiments.grid import Grid, GridRun
from simulations.experiments.runner import (
    METRICS_FILE,
    is_finished,
    read_record,
    read_status,
    run_folder,
)

__all__ = ["METRIC_COLUMNS", "RESULTS_FILE", "result_rows", "write_results"]

RESULTS_FILE = "results.csv"
METRIC_COLUMNS = (
    "auc",
    "ks",
    "released_auc",
    "released_ks",
    "wall_seconds",
    "peak_rss_mb",
    "max_epsilon_spent",
    "status",
)
_SIMULATION_FILE = "simulation.json"


def write_results(grid: Grid, out: Path) -> Path:
    """Write ``out/results.csv`` for every run of ``grid``; its path."""
    path = out / RESULTS_FILE
    columns = ["run", *grid.varied, *METRIC_COLUMNS]
    out.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=columns)
        writer.writeheader()
        writer.writerows(result_rows(grid, out))
    return path


def result_rows(grid: Grid, out: Path) -> list[dict[str, Any]]:
    """One row per run of ``grid``, in the grid's order, read from ``out/runs/<hash>/``."""
    return [_row(run, run_folder(out, run)) for run in grid.runs]


def _row(run: GridRun, folder: Path) -> dict[str, Any]:
    varied = {name: "none" if value is None else value for name, value in run.varied.items()}
    row: dict[str, Any] = {"run": run.hash, **varied, **dict.fromkeys(METRIC_COLUMNS, "")}
    record = read_record(folder)
    if record is None:
        return row | {"status": "not run"}
    row |= {"wall_seconds": record.wall_seconds, "peak_rss_mb": record.peak_rss_mb}
    if not is_finished(folder):
        reason = record.error or read_status(folder) or f"exit code {record.exit_code}"
        return row | {"status": f"failed: {reason}"}
    metrics = _json(folder / METRICS_FILE)
    exact = _json(folder / _SIMULATION_FILE).get("exact_final") or {}
    released = metrics.get("final") or {}
    ledgers = (metrics.get("privacy") or {}).values()
    spent = [ledger["epsilon"] for ledger in ledgers if ledger.get("epsilon") is not None]
    return row | {
        "auc": exact.get("auc", ""),
        "ks": exact.get("ks", ""),
        "released_auc": released.get("auc", ""),
        "released_ks": released.get("ks", ""),
        "max_epsilon_spent": max(spent) if spent else "",
        "status": metrics["status"],
    }


def _json(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``, or ``{}`` when the file is missing."""
    if not path.exists():
        return {}
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return document
