"""``fedcredit monitor`` and the bank's stability flags: bad input gets one line, exit code 2.

The errors that need a finished run (an unknown bank, a later file of the wrong schema)
are in ``tests/simulations/test_monitor_run.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app
from cli.participant import _stability_policy
from credit.errors import ConfigError


def _one_line_error(args: list[str], expected: str) -> None:
    result = CliRunner().invoke(app, args)

    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: ") and result.output.count("\n") == 1, result.output
    assert expected in result.output, result.output


def test_a_folder_without_a_run_is_named(tmp_path: Path) -> None:
    later = tmp_path / "later.csv"
    later.write_text("ID\n1\n")

    _one_line_error(
        ["monitor", "--run", str(tmp_path / "nowhere"), "--later-data", str(later)],
        f"{tmp_path / 'nowhere'}: no metrics.json: pass a finished run's folder",
    )


def test_a_quantile_outside_the_unit_interval_is_refused(tmp_path: Path) -> None:
    _one_line_error(
        ["monitor", "--run", str(tmp_path), "--later-data", str(tmp_path), "--quantile", "1"],
        "--quantile: must lie in (0, 1); got 1.0",
    )


def test_the_bank_needs_both_stability_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--development-model: stability monitoring needs both"):
        _stability_policy(tmp_path, None, 50, None)
    with pytest.raises(ConfigError, match=r"--later-data: '.*missing\.csv' does not exist"):
        _stability_policy(tmp_path / "missing.csv", tmp_path, 50, None)
    assert _stability_policy(None, None, 50, None) is None
    key = tmp_path / "bundle" / "coordinator.pub"
    policy = _stability_policy(tmp_path, tmp_path, 80, key)
    assert policy is not None and policy.min_rows == 80 and policy.signer == key


def test_a_bank_without_a_node_folder_is_told_to_start_it(tmp_path: Path) -> None:
    _one_line_error(
        ["participant", "monitor", "--home", str(tmp_path / "node")],
        "cannot read the node plan",
    )
    _one_line_error(
        ["participant", "monitor", "--home", str(tmp_path), "--quantile", "0"],
        "--quantile: must lie in (0, 1); got 0.0",
    )
