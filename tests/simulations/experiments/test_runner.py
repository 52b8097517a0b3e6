"""Resumable grids and the results table, with an injected fake run function (no Flower)."""

from __future__ import annotations

import csv
import json
import math
import signal
import threading
from pathlib import Path

import pandas as pd
import pytest

from cli.experiment import simulate_options
from simulations.experiments import (
    Grid,
    RunRecord,
    RunTask,
    load_grid,
    run_grid,
    runner,
    write_results,
)
from simulations.experiments.results import PARQUET_FILE
from simulations.experiments.runner import RECORD_FILE, RUN_MEMORY_BYTES, default_jobs, run_folder

from .fakes import FakeRuns, write_run_files

GRID = '[fixed]\nrounds = 1\n[vary]\nseed = [0, 1, 2]\nepsilon = [1, "none"]\n'


@pytest.fixture
def grid(tmp_path: Path) -> Grid:
    path = tmp_path / "grid.toml"
    path.write_text(GRID, encoding="utf-8")
    return load_grid(path, simulate_options())


def _table(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as stream:
        return list(csv.DictReader(stream))


def test_interrupted_grid_resumes_without_repeating_finished_runs(
    tmp_path: Path, grid: Grid
) -> None:
    out = tmp_path / "experiment"
    interrupted = FakeRuns(interrupt_at=3)
    with pytest.raises(KeyboardInterrupt):
        run_grid(grid.runs, out, interrupted)
    assert interrupted.calls == [run.hash for run in grid.runs[:4]]
    half = _table(write_results(grid, out))
    assert [row["status"] for row in half] == ["completed"] * 3 + ["not run"] * 3

    resumed = FakeRuns()
    pending: list[int] = []
    failed = run_grid(grid.runs, out, resumed, on_start=pending.append)
    assert failed == []
    assert pending == [3]
    assert resumed.calls == [run.hash for run in grid.runs[3:]]  # the interrupted one again
    rows = _table(write_results(grid, out))
    assert [row["run"] for row in rows] == [run.hash for run in grid.runs]
    assert [row["status"] for row in rows] == ["completed"] * 6
    assert not (run_folder(out, grid.runs[3]) / "simulate.log").exists()  # started afresh

    again = FakeRuns()
    assert run_grid(grid.runs, out, again, jobs=2) == []
    assert again.calls == []


class InterruptedInParallel:
    """Two runs at a time, then Ctrl-C. The first run ends at once; the second is still
    under way when the third, started in the first's place, sends SIGINT to the
    runner's main thread (as a terminal does) and its simulation dies of it (exit code
    130); the second finishes after the interruption."""

    def __init__(self, grid: Grid) -> None:
        self.order = [run.hash for run in grid.runs]
        self.finished = FakeRuns()
        self.calls: list[str] = []
        self.interrupted = threading.Event()
        self.lock = threading.Lock()

    def __call__(self, task: RunTask) -> RunRecord:
        with self.lock:
            self.calls.append(task.run.hash)
        run = self.order.index(task.run.hash)
        if run == 1:
            assert self.interrupted.wait(10)
        if run != 2:
            return self.finished(task)
        (task.folder / "simulate.log").write_text("round 1 ...\n", encoding="utf-8")
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)
        self.interrupted.set()
        return RunRecord(exit_code=130, wall_seconds=0.5, peak_rss_mb=50.0, error="Aborted!")


def test_parallel_grid_interrupted_resumes_without_repeating_finished_runs(
    tmp_path: Path, grid: Grid
) -> None:
    interrupted = InterruptedInParallel(grid)
    with pytest.raises(KeyboardInterrupt):
        run_grid(grid.runs, tmp_path, interrupted, jobs=2)
    started = sorted(interrupted.calls)
    assert started == sorted(run.hash for run in grid.runs[:3])  # nothing more started
    statuses = [row["status"] for row in _table(write_results(grid, tmp_path))]
    assert statuses == ["completed", "completed", "failed: Aborted!"] + ["not run"] * 3

    resumed = FakeRuns()
    pending: list[int] = []
    assert run_grid(grid.runs, tmp_path, resumed, jobs=2, on_start=pending.append) == []
    assert pending == [4]
    assert sorted(resumed.calls) == sorted(run.hash for run in grid.runs[2:])
    rows = _table(write_results(grid, tmp_path))
    assert [row["run"] for row in rows] == [run.hash for run in grid.runs]
    assert [row["status"] for row in rows] == ["completed"] * 6


@pytest.mark.parametrize(
    ("cpus", "available", "jobs"),
    [
        (2, 24 * 2**30, 2),  # this machine: one per CPU
        (16, 7 * 2**30, 2),  # memory-bound: 3 GiB a run
        (1, 64 * 2**30, 1),  # one CPU: one after another
        (8, 2**30, 1),  # too little memory for even one: still one
    ],
)
def test_default_jobs_from_cpus_and_memory(cpus: int, available: int, jobs: int) -> None:
    assert RUN_MEMORY_BYTES == 3 * 2**30
    assert default_jobs(cpus=cpus, available_bytes=available) == jobs


def test_default_jobs_reads_meminfo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal: 25000000 kB\nMemAvailable:  6500000 kB\n", encoding="ascii")
    monkeypatch.setattr(runner, "_MEMINFO", meminfo)
    assert default_jobs(cpus=8) == 2  # 6.2 GiB available: two runs of 3 GiB
    monkeypatch.setattr(runner, "_MEMINFO", tmp_path / "absent")
    assert default_jobs(cpus=8) == 8  # no /proc/meminfo: the CPUs decide


def test_parallel_jobs_run_every_run_once(tmp_path: Path, grid: Grid) -> None:
    runs = FakeRuns()
    assert run_grid(grid.runs, tmp_path, runs, jobs=3) == []
    assert sorted(runs.calls) == sorted(run.hash for run in grid.runs)


def test_failed_runs_are_returned_and_retried(tmp_path: Path, grid: Grid) -> None:
    failed = run_grid(grid.runs, tmp_path, FakeRuns(fail=(1,)))
    assert [run.varied["seed"] for run in failed] == [1, 1]
    retry = FakeRuns()
    assert run_grid(grid.runs, tmp_path, retry) == []
    assert retry.calls == [run.hash for run in failed]


@pytest.mark.parametrize(
    ("record", "status"),
    [
        (None, "completed"),  # killed after metrics.json, before the process ended
        ({"exit_code": 0, "wall_seconds": 1.0, "peak_rss_mb": 1.0}, None),  # no metrics
        ({"exit_code": 0, "wall_seconds": 1.0, "peak_rss_mb": 1.0}, "running"),
        ({"exit_code": 1, "wall_seconds": 1.0, "peak_rss_mb": 1.0}, "completed"),
    ],
)
def test_unfinished_folders_are_run_again(
    tmp_path: Path, grid: Grid, record: dict[str, float] | None, status: str | None
) -> None:
    folder = run_folder(tmp_path, grid.runs[0])
    folder.mkdir(parents=True)
    if status is not None:
        write_run_files(folder, status=status)
    if record is not None:
        (folder / RECORD_FILE).write_text(json.dumps({"record": record}), encoding="utf-8")
    runs = FakeRuns()
    run_grid(grid.runs[:1], tmp_path, runs)
    assert runs.calls == [grid.runs[0].hash]


def test_results_table_from_run_folders(tmp_path: Path, grid: Grid) -> None:
    def fabricate(index: int, record: RunRecord, **files: object) -> None:
        folder = run_folder(tmp_path, grid.runs[index])
        folder.mkdir(parents=True)
        document = {"record": record.__dict__}
        (folder / RECORD_FILE).write_text(json.dumps(document), encoding="utf-8")
        if files:
            write_run_files(folder, **files)  # type: ignore[arg-type]

    fabricate(0, RunRecord(0, 12.5, 812.3), auc=0.75, epsilons=[0.8, 0.97])
    fabricate(1, RunRecord(0, 10.0, 700.0), auc=0.78)
    fabricate(2, RunRecord(2, 0.4, 60.0, error="error: --data: no such file"))
    fabricate(3, RunRecord(0, 9.0, 650.0), status="stopped: budget exhausted", auc=0.7)
    rows = _table(write_results(grid, tmp_path))
    assert list(rows[0]) == [
        "run", "seed", "epsilon", "auc", "ks", "released_auc", "released_ks", "wall_seconds",
        "peak_rss_mb", "max_epsilon_spent", "status",
    ]  # fmt: skip
    assert rows[0] == {
        "run": grid.runs[0].hash, "seed": "0", "epsilon": "1.0", "auc": "0.75", "ks": "0.31",
        "released_auc": "0.74", "released_ks": "0.3", "wall_seconds": "12.5",
        "peak_rss_mb": "812.3", "max_epsilon_spent": "0.97", "status": "completed",
    }  # fmt: skip
    assert (rows[1]["epsilon"], rows[1]["max_epsilon_spent"]) == ("none", "")
    assert rows[1]["auc"] == "0.78"
    assert rows[2]["status"] == "failed: error: --data: no such file"
    assert (rows[2]["auc"], rows[2]["wall_seconds"]) == ("", "0.4")
    assert rows[3]["status"] == "stopped: budget exhausted"
    assert rows[4]["status"] == rows[5]["status"] == "not run"
    assert rows[4]["auc"] == rows[4]["wall_seconds"] == ""


def test_parquet_holds_the_csvs_rows_and_columns_typed(tmp_path: Path, grid: Grid) -> None:
    run_grid(grid.runs[:4], tmp_path, FakeRuns(fail=(1,)))
    csv_path = write_results(grid, tmp_path)
    text = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    typed = pd.read_parquet(tmp_path / PARQUET_FILE)
    assert list(typed.columns) == list(text.columns)
    assert len(typed) == len(text) == 6
    assert str(typed["seed"].dtype) == "int64"
    assert [str(typed[c].dtype) for c in ("epsilon", "auc", "max_epsilon_spent")] == ["float64"] * 3
    for column in text.columns:
        for typed_value, text_value in zip(typed[column], text[column], strict=True):
            if text_value in ("", "none"):
                assert typed_value is None or math.isnan(typed_value), (column, typed_value)
            elif column in ("run", "status"):
                assert typed_value == text_value
            else:
                assert float(typed_value) == float(text_value), (column, text_value)
    assert list(typed["status"]) == ["completed"] * 2 + ["failed: bad seed"] * 2 + ["not run"] * 2
