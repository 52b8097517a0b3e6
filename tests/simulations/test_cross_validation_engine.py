"""``fedcredit simulate --folds 3`` end to end through Flower's Simulation Engine (Ray).

Three simulated consortia one after another in this process, each starting and
stopping Ray; the fast tier runs the same command with the in-process runner
(``test_cross_validation.py``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app
from tests.support.checks import check_cross_validation_output

pytestmark = pytest.mark.slow

CUSTOMERS = 30_000
"""The embedded data set's customers, split into 3 banks."""


def test_three_folds_through_the_simulation_engine_write_the_output_contract(
    tmp_path: Path,
) -> None:
    out = tmp_path / "cv"
    arguments = ["--folds", "3", "--rounds", "1", "--banks", "3", "--write-bank-files",
                 "--out", str(out)]  # fmt: skip

    result = CliRunner().invoke(app, ["simulate", *arguments])

    assert result.exit_code == 0, result.output
    check_cross_validation_output(out, folds=3, customers=CUSTOMERS)
    assert result.stdout.count("starting Flower's Simulation Engine with 3 virtual") == 3
    assert "Cross-validation: 3 folds" in result.stdout
