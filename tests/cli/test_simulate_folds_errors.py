"""``fedcredit simulate --folds K`` with a bad K: one error line naming ``--folds``, exit 2.

Each case is refused before any fold is planned or run: nothing is written.
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
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.stdout + result.stderr
    assert "Simulation Engine" not in result.stdout
    assert not out.exists()  # nothing written
    lines: list[str] = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize("count", ["1", "0", "-3"])
def test_fewer_than_two_folds_is_one_error_line(tmp_path: Path, count: str) -> None:
    line = _refused(["--folds", count, "--rounds", "1"], tmp_path / "out")

    assert line == (
        "error: --folds: must be at least 2 (each fold is held out once while the others "
        f"train); got {count}"
    )


def test_more_folds_than_the_smallest_banks_rows_is_one_error_line(
    tmp_path: Path, write_bank_csv: Callable[..., Path]
) -> None:
    files = [
        write_bank_csv(300, name="bank-a"),
        write_bank_csv(80, start=300, name="bank-b"),
        write_bank_csv(200, start=400, name="bank-c"),
    ]
    arguments = [argument for path in files for argument in ("--bank-data", str(path))]

    line = _refused([*arguments, "--folds", "81"], tmp_path / "out")

    assert line == (
        "error: --folds: 81 folds need at least 81 rows at every bank; bank 'bank-b' has "
        "80: use --folds 80 or fewer"
    )


def test_more_folds_than_a_split_banks_rows_is_one_error_line(
    tmp_path: Path, write_bank_csv: Callable[..., Path]
) -> None:
    """``--data`` split IID into 3 banks of 100 rows: 101 folds cannot be held out."""
    data = write_bank_csv(300, name="data")

    line = _refused(["--data", str(data), "--banks", "3", "--folds", "101"], tmp_path / "out")

    assert line == (
        "error: --folds: 101 folds need at least 101 rows at every bank; bank 'bank-1' has "
        "100: use --folds 100 or fewer"
    )


def test_a_fold_leaving_a_bank_one_class_is_one_error_line(
    tmp_path: Path, write_bank_csv: Callable[..., Path]
) -> None:
    """3 IID banks of 100 rows, 50 folds: some fold holds out a bank's rows of one class."""
    data = write_bank_csv(300, name="data")

    line = _refused(["--data", str(data), "--banks", "3", "--folds", "50"], tmp_path / "out")

    assert line.startswith("error: --folds: bank 'bank-")
    assert line.endswith("held-out rows in one of the 50 folds; use fewer --folds")
    assert "would have no rows with default_payment_next_month=" in line
