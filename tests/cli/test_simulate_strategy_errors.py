"""``fedcredit simulate --strategy``: a bad strategy setting is one line, exit 2, nothing run."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app


@pytest.mark.parametrize(
    ("args", "where"),
    [
        (["--strategy", "fedprox"], "fedcredit simulate: strategy fedprox with proximal-mu 0"),
        (["--proximal-mu", "0.1"], "fedcredit simulate: '--proximal-mu': is an option of"),
        (
            ["--strategy", "fedprox", "--proximal-mu", "-1"],
            "fedcredit simulate: '--proximal-mu': Input should be greater than or equal to 0",
        ),
        (
            ["--strategy", "fedadam", "--server-momentum", "0.5"],
            "fedcredit simulate: '--server-momentum': is an option of strategy fedavgm only",
        ),
        (
            ["--strategy", "fedyogi", "--server-beta1", "1"],
            "fedcredit simulate: '--server-beta1': Input should be less than 1",
        ),
        (
            ["--strategy", "fedadam", "--server-tau", "0"],
            "fedcredit simulate: '--server-tau': Input should be greater than 0",
        ),
        (
            ["--strategy", "fedavgm", "--server-learning-rate", "nan", "--server-momentum", "0.9"],
            "fedcredit simulate: '--server-learning-rate': Input should be a finite number",
        ),
        (["--strategy", "fedavgm"], "fedcredit simulate: strategy fedavgm with server-momentum 0"),
    ],
)
def test_a_bad_strategy_setting_is_one_error_line(
    tmp_path: Path, args: list[str], where: str
) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["simulate", *args, "--out", str(out)])

    assert result.exit_code == 2, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stderr.splitlines() == [result.stderr.strip()], result.stderr
    assert result.stderr.startswith(f"error: {where}"), result.stderr
    assert not out.exists()


def test_an_unknown_strategy_is_a_usage_error_naming_the_flag(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["simulate", "--strategy", "fedsgd", "--out", str(tmp_path / "out")]
    )
    assert result.exit_code == 2
    assert "--strategy" in result.stderr and "fedsgd" in result.stderr
