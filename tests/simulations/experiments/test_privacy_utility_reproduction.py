"""``experiment run`` on a cell of examples/grids/privacy_utility.toml reproduces the benchmark.

The README's privacy-utility table comes from ``bench/results/privacy_utility.json``
(per-run figures). Two runs of the example grid (seed 0, 5 IID banks, logistic
regression; no DP, and DP at epsilon = 1) go through ``fedcredit experiment run`` as
one-run grids, in the folders the whole grid would give them, and must give the
stored figures to the last digit. The grid sets ``reproducible-noise``, so the DP
cell's noise and sampling are keyed from the seed and repeat exactly.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import tomli_w

from cli.experiment import simulate_options
from deploy.flower_env import flower_env
from simulations.experiments import load_grid

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]
FEDCREDIT = Path(sys.executable).parent / "fedcredit"
GRID = ROOT / "examples" / "grids" / "privacy_utility.toml"
MEASURED = ROOT / "bench" / "results" / "privacy_utility.json"


@pytest.mark.parametrize(("grid_epsilon", "stored_epsilon"), [("none", "inf"), (1, 1)])
def test_a_cell_reproduces_the_benchmarks_figures(
    tmp_path: Path, grid_epsilon: str | int, stored_epsilon: str | int
) -> None:
    document = tomllib.loads(GRID.read_text(encoding="utf-8"))
    split, setup = document["vary"]["split"][0], document["vary"]["setup"][0]
    assert (split["partition"], setup["model"]) == ("iid", "logreg")
    assert grid_epsilon in document["vary"]["epsilon"]
    cell = {**document["fixed"], **split, **setup, "seed": 0, "epsilon": grid_epsilon}
    path = tmp_path / "cell.toml"
    path.write_text(tomli_w.dumps({"fixed": cell}), encoding="utf-8")
    (run,) = load_grid(path, simulate_options()).runs
    whole = load_grid(GRID, simulate_options()).runs
    assert run.hash in {grid_run.hash for grid_run in whole}  # the same run, the same folder

    out = tmp_path / "experiment"
    completed = subprocess.run(
        [str(FEDCREDIT), "experiment", "run", str(path), "--out", str(out), "--jobs", "1"],
        capture_output=True,
        text=True,
        env=flower_env(simulation=True),
        timeout=900,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    with (out / "results.csv").open(encoding="utf-8", newline="") as stream:
        (row,) = csv.DictReader(stream)
    assert row["run"] == run.hash and row["status"] == "completed"

    measured = json.loads(MEASURED.read_text(encoding="utf-8"))
    (figures,) = [
        r
        for r in measured["runs"]
        if (r["split"], r["model"], r["epsilon"], r["seed"]) == ("iid", "logreg", stored_epsilon, 0)
    ]
    for metric in ("auc", "ks", "released_auc", "released_ks"):
        assert float(row[metric]) == figures[metric], metric
    if figures["max_epsilon_spent"] is None:
        assert row["max_epsilon_spent"] == ""
    else:
        assert float(row["max_epsilon_spent"]) == figures["max_epsilon_spent"]
        assert 0 < figures["max_epsilon_spent"] <= float(grid_epsilon)
