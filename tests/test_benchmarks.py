"""The benchmarks still run: a tiny measurement of each, with its output contract."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_secure_aggregation_benchmark_measures_both_systems(tmp_path: Path) -> None:
    out = tmp_path / "secagg.json"
    command = [sys.executable, "-m", "bench.secagg", "--sizes", "3x100", "--rounds", "2"]
    command += ["--repeats", "1", "--out", str(out)]
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    document = json.loads(out.read_text())
    assert document["complete"] is True
    (row,) = document["summary"]
    for system, secure in (("fedcredit", "secure"), ("flower", "secaggplus")):
        assert row[system]["ratio"] > 0
        for mode in (secure, "plain"):
            assert row[system][mode]["seconds_per_round"] > 0
    signing = row["fedcredit"]["secure"]
    assert signing["signature_ms_per_bank_per_round"] > 0
    assert signing["signatures_per_bank_per_round"]["verify"] >= 3 * 3  # 3N at 3 banks
    assert out.with_suffix(".md").read_text().startswith("| banks x params |")
