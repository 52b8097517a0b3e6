"""``fedcredit experiment run``: exit codes 0 (all finished), 1 (a run failed), 2 (bad grid).

The runs are a fake run function (``cli.experiment.run_function`` replaced), so these
tests start no Flower; ``tests/simulations/experiments/test_smoke_grid.py`` runs a real grid.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from typer.testing import CliRunner

import cli.experiment
from cli.app import app
from simulations.experiments import OptionSpace, default_jobs
from tests.simulations.experiments.fakes import FakeRuns

GRID = '[fixed]\nrounds = 1\n[vary]\nseed = [0, 1]\nepsilon = [1, "none"]\n'


def _use(monkeypatch: pytest.MonkeyPatch, runs: FakeRuns) -> None:
    def run_function(space: OptionSpace) -> FakeRuns:
        return runs

    monkeypatch.setattr(cli.experiment, "run_function", run_function)


def _grid(folder: Path, text: str = GRID) -> Path:
    path = folder / "grid.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_all_runs_finished_exits_0_and_writes_the_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = FakeRuns()
    _use(monkeypatch, runs)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["experiment", "run", str(_grid(tmp_path)), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert len(runs.calls) == 4
    with (out / "results.csv").open(encoding="utf-8", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert [row["status"] for row in rows] == ["completed"] * 4
    assert (out / "results.parquet").is_file()
    assert "4 of 4 runs finished" in result.stdout
    assert f"({default_jobs()} at a time)" in result.stdout  # no --jobs: the default

    again = CliRunner().invoke(
        app, ["experiment", "run", str(_grid(tmp_path)), "--out", str(out), "--jobs", "2"]
    )
    assert again.exit_code == 0, again.output
    assert len(runs.calls) == 4
    assert "4 runs already finished: skipped" in again.stdout


def test_a_failed_run_exits_1_and_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _use(monkeypatch, FakeRuns(fail=(1,)))
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["experiment", "run", str(_grid(tmp_path)), "--out", str(out)])
    assert result.exit_code == 1
    errors = result.stderr.splitlines()
    assert len(errors) == 2
    assert errors[0].startswith("error: run ")
    assert "(seed=1, epsilon=1.0) failed; see " in errors[0]
    assert "2 of 4 runs finished" in result.stdout


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[vary]\nsede = [1, 2]\n", "[vary] 'sede': not an option a grid can set"),
        ("[fixed]\nmodel = 'forest'\n", "[fixed] 'model': Input should be"),
    ],
)
def test_bad_grid_exits_2_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, message: str
) -> None:
    runs = FakeRuns()
    _use(monkeypatch, runs)
    path = _grid(tmp_path, text)
    result = CliRunner().invoke(app, ["experiment", "run", str(path), "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {path}: {message}")
    assert len(result.stderr.strip().splitlines()) == 1
    assert runs.calls == []
    assert not (tmp_path / "results.csv").exists()
