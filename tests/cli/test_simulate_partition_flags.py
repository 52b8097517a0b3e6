"""``fedcredit simulate``'s partition flags: a bad value is one error line naming the flag.

Every case is refused before the data is read, with exit code 2 and nothing written
(the schemes' own refusals, e.g. too many values per bank, are one line too: see
``tests/simulations/test_flower_partitions.py`` for their messages).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app


def _refused(arguments: list[str], out: Path) -> str:
    """Run ``fedcredit simulate ARGUMENTS --out OUT``; return its one error line."""
    result = CliRunner().invoke(app, ["simulate", *arguments, "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.stdout + result.stderr
    assert "Simulation Engine" not in result.stdout
    assert not out.exists()
    lines: list[str] = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("arguments", "line"),
    [
        (
            ["--classes-per-bank", "0"],
            "error: fedcredit simulate: '--classes-per-bank': Input should be greater than "
            "or equal to 1; got 0",
        ),
        (
            ["--size-skew", "-1"],
            "error: fedcredit simulate: '--size-skew': Input should be greater than or "
            "equal to 0; got -1.0",
        ),
        (
            ["--size-skew", "11"],
            "error: fedcredit simulate: '--size-skew': Input should be less than or equal "
            "to 10; got 11.0",
        ),
        (
            ["--size-skew", "nan"],
            "error: fedcredit simulate: '--size-skew': Input should be a finite number; got nan",
        ),
    ],
)
def test_a_bad_partition_flag_is_one_error_line(
    tmp_path: Path, arguments: list[str], line: str
) -> None:
    assert _refused([*arguments, "--rounds", "1"], tmp_path / "out") == line


@pytest.mark.parametrize("flag", [["--classes-per-bank", "3"], ["--size-skew", "2"]])
def test_the_new_split_flags_are_refused_with_bank_files(
    tmp_path: Path, write_bank_csv: Callable[..., Path], flag: list[str]
) -> None:
    bank = write_bank_csv(300, name="bank-a")

    line = _refused(["--bank-data", str(bank), *flag], tmp_path / "out")

    assert line == (
        f"error: --bank-data: cannot be combined with {flag[0]}: each file is one bank, "
        "nothing is split"
    )
