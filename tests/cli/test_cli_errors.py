"""`fedcredit simulate` on bad input: exit code 2, one line on stderr, never a traceback.

Each case runs the real console script in a subprocess. Most of a run is start-up
(importing torch and Flower), so all runs start together to overlap it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

FEDCREDIT = Path(sys.executable).parent / "fedcredit"
ENV = {**os.environ, "FLWR_TELEMETRY_ENABLED": "0", "FLWR_DISABLE_UPDATE_CHECK": "1"}
TIMEOUT = 300  # eleven processes start at once; a loaded 2-core machine is slow


@dataclass(frozen=True)
class Run:
    """One finished CLI run and the location its error line must name."""

    returncode: int
    stdout: str
    stderr: str
    where: str  # expected start of the error line after "error: "


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
            f"{corrupt_budgets}: not a readable TOML file",
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
    }


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, embedded_frame: pd.DataFrame) -> dict[str, Run]:
    """Run every case at once; ``banks-0`` is a flag error caught by typer itself."""
    folder = tmp_path_factory.mktemp("cli")
    cases = _write_cases(folder, embedded_frame)
    cases["banks-0"] = (["--banks", "0"], "")
    started = {
        name: subprocess.Popen(
            [str(FEDCREDIT), "simulate", *args, "--out", str(folder / f"out-{name}")],
            env=ENV,
            cwd=folder,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, (args, _) in cases.items()
    }
    finished = {}
    try:
        for name, process in started.items():
            stdout, stderr = process.communicate(timeout=TIMEOUT)
            finished[name] = Run(process.returncode, stdout, stderr, cases[name][1])
    finally:
        for process in started.values():
            if process.poll() is None:
                process.kill()
                process.communicate()
    return finished


def test_console_script_is_installed() -> None:
    assert FEDCREDIT.is_file()


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
    ],
)
def test_bad_input_is_one_error_line(runs: dict[str, Run], case: str) -> None:
    run = runs[case]

    assert "Traceback" not in run.stdout
    assert "Traceback" not in run.stderr
    assert run.returncode == 2, run.stderr
    assert run.stderr.splitlines() == [run.stderr.strip()], run.stderr
    assert run.stderr.startswith(f"error: {run.where}"), run.stderr
    assert "Simulation Engine" not in run.stdout


def test_zero_banks_is_a_usage_error(runs: dict[str, Run]) -> None:
    run = runs["banks-0"]

    assert run.returncode == 2
    assert "Traceback" not in run.stdout
    assert "Traceback" not in run.stderr
    assert "--banks" in run.stderr
    assert "Simulation Engine" not in run.stdout


def test_privacy_verify_without_a_run_is_one_error_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(FEDCREDIT), "privacy", "verify", str(tmp_path)],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        f"error: {tmp_path}: no metrics.json; pass a run's output folder"
    ]
