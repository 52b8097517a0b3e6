"""The smoke grid for real: two one-round, two-bank ``fedcredit simulate`` subprocesses."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from deploy.flower_env import flower_env

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]
FEDCREDIT = Path(sys.executable).parent / "fedcredit"
SMOKE = ROOT / "examples" / "grids" / "smoke.toml"


def _experiment(out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(FEDCREDIT), "experiment", "run", str(SMOKE), "--out", str(out)],
        capture_output=True,
        text=True,
        env=flower_env(simulation=True),
        timeout=900,
        check=False,
    )


def test_smoke_grid_runs_and_resumes(tmp_path: Path) -> None:
    out = tmp_path / "grid"
    first = _experiment(out)
    assert first.returncode == 0, first.stderr
    with (out / "results.csv").open(encoding="utf-8", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert [row["seed"] for row in rows] == ["0", "1"]
    for row in rows:
        assert row["status"] == "completed"
        assert 0.5 < float(row["auc"]) <= 1.0
        assert 0.0 < float(row["ks"]) <= 1.0
        assert float(row["wall_seconds"]) > 0
        assert float(row["peak_rss_mb"]) > 100  # Python, torch and Ray's processes
        assert row["max_epsilon_spent"] == ""
        assert (out / "runs" / row["run"] / "model").is_dir()
    second = _experiment(out)
    assert second.returncode == 0, second.stderr
    assert "2 runs already finished: skipped" in second.stdout
