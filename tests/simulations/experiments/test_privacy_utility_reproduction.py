"""``experiment run`` on a cell of examples/grids/privacy_utility.toml reproduces the benchmark.

The README's privacy-utility table comes from ``bench/results/privacy_utility.json``
(per-run figures). One run of the example grid (seed 0, 5 IID banks, logistic
regression, no DP) goes through ``fedcredit experiment run`` as a one-run grid, in
the folder the whole grid would give it, and must give the stored figures to the
last digit. The grid sets ``reproducible-noise``, so its DP cells repeat exactly too
once the benchmark is measured with it (``tests/simulations/test_reproducible_noise.py``
checks that a flagged DP run repeats).
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


def test_a_cell_reproduces_the_benchmarks_figures(tmp_path: Path) -> None:
    document = tomllib.loads(GRID.read_text(encoding="utf-8"))
    split, setup = document["vary"]["split"][0], document["vary"]["setup"][0]
    assert (split["partition"], setup["model"]) == ("iid", "logreg")
    cell = {**document["fixed"], **split, **setup, "seed": 0, "epsilon": "none"}
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
        if (r["split"], r["model"], r["epsilon"], r["seed"]) == ("iid", "logreg", "inf", 0)
    ]
    for metric in ("auc", "ks", "released_auc", "released_ks"):
        assert float(row[metric]) == figures[metric], metric
    assert row["max_epsilon_spent"] == "" and figures["max_epsilon_spent"] is None
