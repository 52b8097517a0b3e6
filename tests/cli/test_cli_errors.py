"""Bad input on the command line: exit code 2, one line on stderr, never a traceback.

The cases run in this process through typer's ``CliRunner`` (click 8.2+ keeps
stdout and stderr apart, so the error line is checked on stderr alone); one test
runs the installed ``fedcredit`` console script, so the entry point is covered too.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from click.testing import Result
from typer.testing import CliRunner

from cli.app import app

FEDCREDIT = Path(sys.executable).parent / "fedcredit"
TIMEOUT = 120


def _write_cases(folder: Path, frame: pd.DataFrame) -> dict[str, tuple[list[str], str]]:
    """Bad inputs on disk; returns case -> (extra CLI arguments, expected location)."""
    rows = frame.iloc[:200].astype(str)

    non_numeric = folder / "non_numeric.csv"
    edited = rows.copy()
    edited.iloc[6, edited.columns.get_loc("LIMIT_BAL")] = "abc"  # data row 7
    edited.to_csv(non_numeric, index=False)

    missing_column = folder / "missing_column.csv"
    rows.drop(columns="AGE").to_csv(missing_column, index=False)

    bad_gzip = folder / "bad.csv.gz"
    rows.to_csv(bad_gzip, index=False, compression="gzip")
    bad_gzip.write_bytes(bad_gzip.read_bytes()[:200])

    nonexistent = folder / "no_such_file.csv"

    bad_toml = folder / "bad_schema.toml"
    bad_toml.write_text('name = "x"\n[[numeric]\nname = "AGE"\n', encoding="utf-8")

    unknown_bank = folder / "unknown_bank.toml"
    unknown_bank.write_text('[banks."bank-9"]\nmax_epsilon = 1.0\n', encoding="utf-8")
    corrupt_budgets = folder / "corrupt_budgets.toml"
    corrupt_budgets.write_text("[default\nmax_epsilon = 1\n", encoding="utf-8")
    negative_budget = folder / "negative_budget.toml"
    negative_budget.write_text("[default]\nmax_epsilon = -1\n", encoding="utf-8")

    return {
        "unknown-participant": (
            ["--budgets", str(unknown_bank)],
            f"{unknown_bank}: unknown participant 'bank-9'",
        ),
        "corrupt-budgets": (
            ["--budgets", str(corrupt_budgets)],
            f"{corrupt_budgets}: not valid TOML",
        ),
        "negative-budget": (
            ["--budgets", str(negative_budget)],
            f"{negative_budget}: 'default.max_epsilon'",
        ),
        "epsilon-and-budgets": (
            ["--epsilon", "1", "--budgets", str(unknown_bank)],
            "--budgets: give either --epsilon or --budgets",
        ),
        "delta-without-epsilon": (["--delta", "1e-6"], "--delta: --delta needs --epsilon"),
        "non-numeric": (
            ["--data", str(non_numeric)],
            f"{non_numeric}, column 'LIMIT_BAL', row 7: ",
        ),
        "missing-column": (
            ["--data", str(missing_column)],
            f"{missing_column}, column 'AGE', header row: ",
        ),
        "unreadable-gzip": (["--data", str(bad_gzip)], f"{bad_gzip}: unreadable gzip"),
        "nonexistent-file": (["--data", str(nonexistent)], f"{nonexistent}: file not found"),
        "corrupt-schema": (["--schema", str(bad_toml)], f"{bad_toml}: not valid TOML"),
        "woe-with-public-statistics": (
            ["--encoding", "woe", "--feature-stats", "public"],
            "--encoding: woe needs --feature-stats federated: the WoE values come from",
        ),
        "zero-pdo": (["--pdo", "0"], "fedcredit simulate: '--pdo': Input should be greater than 0"),
        "negative-base-odds": (
            ["--base-odds", "-50"],
            "fedcredit simulate: '--base-odds': Input should be greater than 0",
        ),
        "infinite-base-score": (
            ["--base-score", "inf"],
            "fedcredit simulate: '--base-score': Input should be a finite number",
        ),
    }


@pytest.fixture(scope="module")
def cases(
    tmp_path_factory: pytest.TempPathFactory, embedded_frame: pd.DataFrame
) -> tuple[Path, dict[str, tuple[list[str], str]]]:
    """The folder of bad inputs and every case written into it."""
    folder = tmp_path_factory.mktemp("cli")
    return folder, _write_cases(folder, embedded_frame)


def _simulate(folder: Path, name: str, args: list[str]) -> Result:
    """``fedcredit simulate ARGS --out FOLDER/out-NAME`` in this process."""
    return CliRunner().invoke(app, ["simulate", *args, "--out", str(folder / f"out-{name}")])


def _assert_no_traceback(result: Result) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert "Traceback" not in result.stdout
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "case",
    [
        "non-numeric",
        "missing-column",
        "unreadable-gzip",
        "nonexistent-file",
        "corrupt-schema",
        "unknown-participant",
        "corrupt-budgets",
        "negative-budget",
        "epsilon-and-budgets",
        "delta-without-epsilon",
        "woe-with-public-statistics",
        "zero-pdo",
        "negative-base-odds",
        "infinite-base-score",
    ],
)
def test_bad_input_is_one_error_line(
    cases: tuple[Path, dict[str, tuple[list[str], str]]], case: str
) -> None:
    folder, written = cases
    args, where = written[case]

    result = _simulate(folder, case, args)

    _assert_no_traceback(result)
    assert result.exit_code == 2, result.stderr
    assert result.stderr.splitlines() == [result.stderr.strip()], result.stderr
    assert result.stderr.startswith(f"error: {where}"), result.stderr
    assert "Simulation Engine" not in result.stdout
    assert not (folder / f"out-{case}").exists()  # nothing written


def test_zero_banks_is_a_usage_error(cases: tuple[Path, dict[str, tuple[list[str], str]]]) -> None:
    folder, _ = cases

    result = _simulate(folder, "banks-0", ["--banks", "0"])

    _assert_no_traceback(result)
    assert result.exit_code == 2
    assert "--banks" in result.stderr
    assert "Simulation Engine" not in result.stdout
    assert not (folder / "out-banks-0").exists()


def test_a_threshold_policy_below_a_majority_is_one_error_line_naming_the_flag(
    cases: tuple[Path, dict[str, tuple[list[str], str]]],
) -> None:
    folder, _ = cases

    result = _simulate(folder, "fraction", ["--secagg-threshold-fraction", "0.4"])

    _assert_no_traceback(result)
    assert result.exit_code == 2
    assert result.stderr.startswith(
        "error: fedcredit simulate: '--secagg-threshold-fraction': Input should be greater"
    ), result.stderr
    assert not (folder / "out-fraction").exists()


def test_a_decision_cutoff_between_score_bins_is_one_error_line_naming_the_flag(
    cases: tuple[Path, dict[str, tuple[list[str], str]]],
) -> None:
    folder, _ = cases

    result = _simulate(folder, "cutoff", ["--decision-cutoff", "0.333"])

    _assert_no_traceback(result)
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [result.stderr.strip()], result.stderr
    assert result.stderr.startswith(
        "error: fedcredit simulate: '--decision-cutoff': must be a multiple of 1/score-bins"
    ), result.stderr
    assert not (folder / "out-cutoff").exists()


def test_privacy_verify_without_a_run_is_one_error_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["privacy", "verify", str(tmp_path)])

    _assert_no_traceback(result)
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"error: {tmp_path}: no metrics.json; pass a run's output folder"
    ]
    assert list(tmp_path.iterdir()) == []


def test_console_script_reports_bad_input_in_one_line(tmp_path: Path) -> None:
    """The installed entry point: exit code 2 and one line on stderr, from a real process."""
    absent = tmp_path / "no-consortium"
    assert FEDCREDIT.is_file()

    result = subprocess.run(
        [str(FEDCREDIT), "coordinator", "list", str(absent)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )

    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stderr.splitlines() == [
        f"error: {absent}/consortium.toml: file not found; {absent} is not a consortium folder: "
        f"run `fedcredit coordinator init {absent} --name NAME --host HOST` first"
    ]
    assert result.stdout == ""
    assert not absent.exists()
