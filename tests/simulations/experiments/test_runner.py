"""Resumable grids and the results table, with an injected fake run function (no Flower)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from cli.experiment import simulate_options
from simulations.experiments import Grid, RunRecord, load_grid, run_grid, write_results
from simulations.experiments.runner import RECORD_FILE, run_folder

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
