"""The results table: one row per run of a grid, rebuilt from the run folders every time.

``DIR/results.csv`` and ``DIR/results.parquet`` hold the same rows and columns:
``run`` (the hash), every varied option (in the grid's order), then:

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

A cell is empty when its run has no such value (not run, failed, no DP). In the CSV,
an option whose value is none reads ``none`` and an empty metric is an empty field; in
the Parquet file both are nulls, and each column has one type (numbers ``double`` or
``int64``, text ``string``, booleans ``bool``; a list-valued option, such as
``bank_data``, its JSON text).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]

from simulations.experiments.grid import Grid, GridRun
from simulations.experiments.runner import (
    METRICS_FILE,
    is_finished,
    read_record,
    read_status,
    run_folder,
)

__all__ = [
    "METRIC_COLUMNS",
    "PARQUET_FILE",
    "RESULTS_FILE",
    "result_columns",
    "result_rows",
    "write_results",
]

RESULTS_FILE = "results.csv"
PARQUET_FILE = "results.parquet"
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
_NUMBER_COLUMNS = frozenset(METRIC_COLUMNS) - {"status"}


def write_results(grid: Grid, out: Path) -> Path:
    """Write ``out/results.csv`` and ``out/results.parquet`` for every run of ``grid``.

    Returns the CSV's path.
    """
    columns = result_columns(grid)
    rows = result_rows(grid, out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / RESULTS_FILE
    with path.open("w", encoding="utf-8", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=columns)
        writer.writeheader()
        writer.writerows(_csv_row(row, grid.varied) for row in rows)
    pq.write_table(_arrow_table(rows, columns), out / PARQUET_FILE)
    return path


def result_columns(grid: Grid) -> list[str]:
    """The table's columns: ``run``, the varied options, :data:`METRIC_COLUMNS`."""
    return ["run", *grid.varied, *METRIC_COLUMNS]


def result_rows(grid: Grid, out: Path) -> list[dict[str, Any]]:
    """One row per run of ``grid``, in the grid's order, read from ``out/runs/<hash>/``.

    Values are typed (an option's JSON value, a metric's number); ``None`` where the
    run has no value.
    """
    return [_row(run, run_folder(out, run)) for run in grid.runs]


def _row(run: GridRun, folder: Path) -> dict[str, Any]:
    row: dict[str, Any] = {"run": run.hash, **run.varied, **dict.fromkeys(METRIC_COLUMNS)}
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
        "auc": exact.get("auc"),
        "ks": exact.get("ks"),
        "released_auc": released.get("auc"),
        "released_ks": released.get("ks"),
        "max_epsilon_spent": max(spent) if spent else None,
        "status": metrics["status"],
    }


def _csv_row(row: dict[str, Any], varied: Sequence[str]) -> dict[str, Any]:
    """``row`` as CSV text: a none option reads ``none``, a missing metric is empty."""
    return {
        name: ("none" if name in varied else "") if value is None else value
        for name, value in row.items()
    }


def _arrow_table(rows: list[dict[str, Any]], columns: list[str]) -> pa.Table:
    """``rows`` as an Arrow table, one type per column (see the module docstring)."""
    arrays = {}
    for name in columns:
        values = [row[name] for row in rows]
        arrays[name] = (
            pa.array(values, type=pa.float64())
            if name in _NUMBER_COLUMNS
            else _arrow_column(values)
        )
    return pa.table(arrays)


def _arrow_column(values: list[Any]) -> pa.Array:
    present = [value for value in values if value is not None]
    if any(isinstance(value, list | dict) for value in present):
        text = [None if value is None else json.dumps(value) for value in values]
        return pa.array(text, type=pa.string())
    if present and all(isinstance(value, bool) for value in present):
        return pa.array(values, type=pa.bool_())
    if present and all(isinstance(value, int) and not isinstance(value, bool) for value in present):
        return pa.array(values, type=pa.int64())
    if present and all(isinstance(value, int | float) for value in present):
        return pa.array([None if value is None else float(value) for value in values], pa.float64())
    return pa.array([None if value is None else str(value) for value in values], pa.string())


def _json(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``, or ``{}`` when the file is missing."""
    if not path.exists():
        return {}
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return document
