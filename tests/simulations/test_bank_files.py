"""Banks from their own files (``fedcredit simulate --bank-data FILE``, repeated).

The plan (:func:`simulations.engine.plan_bank_files`) and whole consortia run in this
process (:func:`tests.support.consortium.run_in_process`, no Ray), and the command
line's refusals through typer's ``CliRunner``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from click.testing import Result
from typer.testing import CliRunner

from cli.app import app
from credit.errors import ConfigError, SchemaError
from credit.run_config import RunConfig
from privacy.budget import PrivacyBudget
from simulations.budgets import BudgetPolicy
from simulations.engine import plan_bank_files, plan_simulation
from simulations.settings import SIMULATION_FILE, PartitionSettings
from tests.support.consortium import held_out_rows, run_in_process, validation_rows

BANK_ROWS = {"north": 1_500, "south": 1_200, "east-bank": 900}
"""Three banks of different sizes, cut from the embedded data set."""


def _bank_files(folder: Path, frame: pd.DataFrame) -> list[Path]:
    """One CSV per bank of ``BANK_ROWS`` (south's gzip-compressed), consecutive rows."""
    folder.mkdir(parents=True, exist_ok=True)
    files, start = [], 0
    for name, rows in BANK_ROWS.items():
        path = folder / (f"{name}.csv.gz" if name == "south" else f"{name}.csv")
        frame.iloc[start : start + rows].to_csv(path, index=False)
        files.append(path)
        start += rows
    return files


def _metrics(out: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((out / "metrics.json").read_text())
    return document


# -- the plan and a consortium run from it ------------------------------------------


def test_a_consortium_of_three_bank_files_trains_banks_named_after_them(
    tmp_path: Path, embedded_frame: pd.DataFrame
) -> None:
    files = _bank_files(tmp_path / "data", embedded_frame)
    out = tmp_path / "out"
    config = RunConfig(rounds=2, out_dir=str(out), seed=1, secure_aggregation=False)

    plan = plan_bank_files(config, files)
    run_in_process(plan)

    assert [bank.bank_name for bank in plan.banks] == list(BANK_ROWS)
    assert [bank.data_path for bank in plan.banks] == [path.absolute() for path in files]
    assert not (out / "banks").exists()  # used in place, not copied
    document = _metrics(out)
    assert set(document["participants"]) == set(BANK_ROWS)
    for name, counts in document["participants"].items():
        kept_apart = held_out_rows(plan, [name]) + validation_rows(plan, [name])
        assert counts["n_train"] + kept_apart == BANK_ROWS[name]
    assert [r["round"] for r in document["rounds"]] == [1, 2]
    assert 0.5 < document["final"]["auc"] < 1.0
    record = json.loads((out / SIMULATION_FILE).read_text())
    assert record["partition"] == {"partition": "files", "files": [str(path) for path in files]}
    assert record["banks"] == [
        {"name": name, "rows": rows, "file": str(path.absolute()), "budget": None}
        for (name, rows), path in zip(BANK_ROWS.items(), files, strict=True)
    ]


def test_the_partitioned_banks_files_give_the_same_model_when_simulated_from_files(
    tmp_path: Path, embedded_frame: pd.DataFrame
) -> None:
    source = tmp_path / "source.csv"
    embedded_frame.iloc[:3_600].to_csv(source, index=False)
    split = RunConfig(rounds=2, out_dir=str(tmp_path / "split"), seed=2, secure_aggregation=False)
    from_split = plan_simulation(split, n_banks=3, partition=PartitionSettings(data=str(source)))
    written = sorted((tmp_path / "split" / "banks").glob("*.csv"))
    assert written == [bank.data_path for bank in from_split.banks]
    from_files = plan_bank_files(
        split.model_copy(update={"out_dir": str(tmp_path / "files")}), written
    )
    assert [bank.bank_name for bank in from_files.banks] == ["bank-1", "bank-2", "bank-3"]
    assert [bank.bank_name for bank in from_split.banks] == ["bank-1", "bank-2", "bank-3"]

    run_in_process(from_split)
    run_in_process(from_files)

    split_run, files_run = _metrics(tmp_path / "split"), _metrics(tmp_path / "files")
    assert files_run["participants"] == split_run["participants"]
    assert files_run["final"]["auc"] == pytest.approx(split_run["final"]["auc"], abs=1e-9)


def test_budgets_are_keyed_by_the_files_bank_names(
    tmp_path: Path, embedded_frame: pd.DataFrame
) -> None:
    files = _bank_files(tmp_path / "data", embedded_frame)
    out = tmp_path / "out"
    stale = out / "ledgers" / "north.jsonl"
    stale.parent.mkdir(parents=True)
    stale.write_text("{}\n")
    policy = BudgetPolicy(banks={"south": PrivacyBudget(max_epsilon=0.5)})

    plan = plan_bank_files(RunConfig(out_dir=str(out)), files, budgets=policy)

    assert [bank.ledger_path for bank in plan.banks] == [None, out / "ledgers/south.jsonl", None]
    assert not stale.exists()  # the simulated banks are new: so are their ledgers
    record = json.loads((out / SIMULATION_FILE).read_text())
    assert [bank["budget"] for bank in record["banks"]] == [
        None,
        {"max_epsilon": 0.5, "delta": None},
        None,
    ]
    unknown = BudgetPolicy(banks={"bank-1": PrivacyBudget(max_epsilon=0.5)})
    with pytest.raises(ConfigError, match=r"^budgets\.toml: unknown participant 'bank-1'; "):
        plan_bank_files(
            RunConfig(out_dir=str(out)), files, budgets=unknown, budget_source="budgets.toml"
        )


def test_a_bad_file_is_refused_before_anything_is_written(
    tmp_path: Path, embedded_frame: pd.DataFrame
) -> None:
    files = _bank_files(tmp_path / "data", embedded_frame)
    rows = embedded_frame.iloc[:200].astype(str)
    rows.loc[rows.index[6], "LIMIT_BAL"] = "abc"  # data row 7
    bad = tmp_path / "data" / "west.csv"
    rows.to_csv(bad, index=False)
    out = tmp_path / "out"

    with pytest.raises(SchemaError, match="^" + re.escape(f"{bad}, column 'LIMIT_BAL', row 7: ")):
        plan_bank_files(RunConfig(out_dir=str(out)), [*files, bad])
    assert not out.exists()


def test_two_files_naming_one_bank_are_refused(tmp_path: Path) -> None:
    first, second = tmp_path / "a" / "bank-a.csv", tmp_path / "b" / "bank-a.csv.gz"
    with pytest.raises(
        ConfigError,
        match="^" + re.escape(f"--bank-data: '{first}' and '{second}' both name bank 'bank-a';"),
    ):
        plan_bank_files(RunConfig(out_dir=str(tmp_path / "out")), [first, second])
    with pytest.raises(ConfigError, match=r"^--bank-data: give at least one bank's file$"):
        plan_bank_files(RunConfig(out_dir=str(tmp_path / "out")), [])
    assert not (tmp_path / "out").exists()


# -- the command line ----------------------------------------------------------------


def _simulate(args: list[str], out: Path) -> Result:
    return CliRunner().invoke(app, ["simulate", *args, "--out", str(out)])


def _assert_one_error_line(result: Result, out: Path, starts: str) -> None:
    """Exit code 2, one line on stderr starting ``error: <starts>``, no traceback, no files."""
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert "Traceback" not in result.stdout + result.stderr
    assert result.exit_code == 2, result.stderr
    assert result.stderr.splitlines() == [result.stderr.strip()], result.stderr
    assert result.stderr.startswith(f"error: {starts}"), result.stderr
    assert "Simulation Engine" not in result.stdout
    assert not out.exists()


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--banks", "3"], "--banks"),
        (["--data", "all.csv", "--partition", "dirichlet"], "--data, --partition"),
        (["--alpha", "0.5", "--partition-column", "AGE"], "--alpha, --partition-column"),
    ],
)
def test_bank_data_with_a_split_flag_is_one_error_line(
    tmp_path: Path, flags: list[str], named: str
) -> None:
    out = tmp_path / "out"

    result = _simulate(["--bank-data", "a.csv", *flags], out)

    _assert_one_error_line(result, out, f"--bank-data: cannot be combined with {named}: ")


def test_a_missing_bank_file_is_named(tmp_path: Path, embedded_frame: pd.DataFrame) -> None:
    present, absent = tmp_path / "north.csv", tmp_path / "south.csv"
    also = tmp_path / "east.csv"  # three banks: enough for secure aggregation
    embedded_frame.iloc[:200].to_csv(present, index=False)
    embedded_frame.iloc[200:400].to_csv(also, index=False)
    out = tmp_path / "out"

    result = _simulate(
        ["--bank-data", str(present), "--bank-data", str(also), "--bank-data", str(absent)], out
    )

    _assert_one_error_line(result, out, f"{absent}: file not found")


def test_two_banks_under_secure_aggregation_are_one_error_line(
    tmp_path: Path, embedded_frame: pd.DataFrame
) -> None:
    """A bank refuses a roster of fewer than 3: the simulation says so before it starts."""
    north, south = tmp_path / "north.csv", tmp_path / "south.csv"
    embedded_frame.iloc[:200].to_csv(north, index=False)
    embedded_frame.iloc[200:400].to_csv(south, index=False)
    out = tmp_path / "out"

    result = _simulate(["--bank-data", str(north), "--bank-data", str(south)], out)

    _assert_one_error_line(result, out, "--banks: secure aggregation needs at least 3 banks")
    assert "--no-secure-aggregation" in result.stderr


def test_two_bank_files_with_one_name_are_one_error_line(
    tmp_path: Path, embedded_frame: pd.DataFrame
) -> None:
    first, second = tmp_path / "x" / "bank-a.csv", tmp_path / "y" / "bank-a.csv.gz"
    for path in (first, second):
        path.parent.mkdir()
        embedded_frame.iloc[:200].to_csv(path, index=False)
    out = tmp_path / "out"

    result = _simulate(["--bank-data", str(first), "--bank-data", str(second)], out)

    _assert_one_error_line(
        result, out, f"--bank-data: '{first}' and '{second}' both name bank 'bank-a'; "
    )


def test_simulate_with_bank_data_runs_the_files_banks(
    tmp_path: Path, embedded_frame: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole command, with the in-process consortium in place of Ray."""
    import simulations.engine

    def in_process(plan: Any, *, on_round: Any, on_event: Any, cpus: Any, ray_address: Any) -> Any:
        return run_in_process(plan, on_round=on_round, on_event=on_event)

    monkeypatch.setattr(simulations.engine, "run_simulated_consortium", in_process)
    files = _bank_files(tmp_path / "data", embedded_frame)[:2]
    out = tmp_path / "out"
    args = [arg for path in files for arg in ("--bank-data", str(path))]

    result = _simulate([*args, "--rounds", "1", "--no-secure-aggregation"], out)

    assert result.exit_code == 0, result.stderr + result.stdout
    assert "north" in result.stdout and "south" in result.stdout
    assert set(_metrics(out)["participants"]) == {"north", "south"}
    record = json.loads((out / SIMULATION_FILE).read_text())
    assert record["partition"]["partition"] == "files"
    assert [bank["name"] for bank in record["banks"]] == ["north", "south"]
