"""``participant check``: the loader's verdict and a profile, computed locally."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from cli.app import app
from credit.errors import SchemaError
from credit.schema import DatasetSchema, embedded_schema_path, load_schema
from participant.node.check import check_bank_data, profile_bank_data, resolve_schema
from tests.support.missing_data import write_blanked

WriteCsv = Callable[..., Path]
TARGET = "default_payment_next_month"


def test_profile(write_bank_csv: WriteCsv, schema: DatasetSchema) -> None:
    path = write_bank_csv(300)
    frame = pd.read_csv(path)
    profile = profile_bank_data(path, schema)
    assert profile.rows == 300
    assert profile.default_rate == pytest.approx(frame[TARGET].mean())
    by_name = {column.name: column for column in profile.columns}
    assert list(by_name) == list(schema.columns)
    limit = by_name["LIMIT_BAL"]
    assert limit.kind == "numeric" and limit.missing == 0 and limit.special == 0
    assert limit.summary == f"{frame.LIMIT_BAL.min():.6g} … {frame.LIMIT_BAL.max():.6g}"
    assert by_name["AGE"].kind == "integer"
    sexes = sorted(frame.SEX.unique())
    assert by_name["SEX"].summary == f"{len(sexes)} of 2 levels: {', '.join(map(str, sexes))}"
    assert by_name["ID"].summary == "300 distinct"
    assert by_name[TARGET].summary == f"{int(frame[TARGET].sum())} defaults"


def test_profile_refuses_bad_data(write_bank_csv: WriteCsv, schema: DatasetSchema) -> None:
    path = write_bank_csv(100)
    frame = pd.read_csv(path, dtype=str)
    frame.loc[4, "AGE"] = "old"
    frame.to_csv(path, index=False)
    with pytest.raises(SchemaError, match=r"column 'AGE', row 5: non-numeric value 'old'"):
        profile_bank_data(path, schema)


def test_schema_from_bundle_folder(tmp_path: Path) -> None:
    (tmp_path / "schema.toml").write_text(embedded_schema_path().read_text())
    assert resolve_schema(tmp_path) == resolve_schema(None)


def test_check_command(write_bank_csv: WriteCsv) -> None:
    path = write_bank_csv(120)
    result = CliRunner().invoke(
        app, ["participant", "check", str(path), "--schema", str(embedded_schema_path())]
    )
    assert result.exit_code == 0, result.output
    assert "120 rows" in result.stdout
    assert "nothing was sent" in result.stdout
    assert "LIMIT_BAL" in result.stdout and "PAY_0" in result.stdout
    assert result.stdout.rstrip().endswith("ok: the file meets the schema")


def _broken_file(write_bank_csv: WriteCsv) -> tuple[Path, pd.DataFrame]:
    """100 rows with six problems of five kinds in four columns; the file and its cells."""
    path = write_bank_csv(100)
    frame = pd.read_csv(path, dtype=str)
    frame.loc[9, "SEX"] = "3"
    frame.loc[[3, 20, 21], "LIMIT_BAL"] = ["abc", "", "-5"]
    frame.loc[[4, 5, 6, 7, 8, 11], "AGE"] = "17"
    frame.loc[12, "ID"] = frame.loc[2, "ID"]
    frame.to_csv(path, index=False)
    return path, frame


def test_check_command_lists_every_problem_and_exits_2_with_one_summary_line(
    write_bank_csv: WriteCsv,
) -> None:
    path, _ = _broken_file(write_bank_csv)

    result = CliRunner().invoke(app, ["participant", "check", str(path)])

    assert result.exit_code == 2
    assert result.stderr == (
        f"error: {path}: 6 problems in 4 columns; fix the file and check it again\n"
    )
    table = result.stdout
    assert "every problem found" in table and "nothing was sent" in table
    for cell in ("column", "problem", "count", "first rows", "hint"):
        assert cell in table
    for column in ("ID", "LIMIT_BAL", "AGE", "SEX"):
        assert column in table
    assert "5, 6, 7, 8, 9, …" in table  # AGE: six rows, the first five shown
    assert "ok:" not in table


def test_check_lists_every_violation_of_each_kind(
    write_bank_csv: WriteCsv, schema: DatasetSchema
) -> None:
    path, frame = _broken_file(write_bank_csv)

    checked = check_bank_data(path, schema)

    assert checked.profile is None
    found = [(v.column, v.problem, v.count, v.rows_text) for v in checked.report.violations]
    first_id = frame.loc[2, "ID"]
    assert found == [
        ("ID", f"duplicate id '{first_id}' (first seen at row 3)", 1, "13"),
        ("LIMIT_BAL", "non-numeric value 'abc'", 1, "4"),
        ("LIMIT_BAL", "missing value (NaN) ''", 1, "21"),
        ("LIMIT_BAL", "value '-5' outside the declared bounds [0, 2000000]", 1, "22"),
        ("AGE", "value '17' outside the declared bounds [18, 100]", 6, "5, 6, 7, 8, 9, …"),
        ("SEX", "unknown category level '3'; declared levels: 1, 2", 1, "10"),
    ]
    with pytest.raises(SchemaError, match=r"column 'ID', row 13: duplicate id .* \(5 more\)"):
        profile_bank_data(path, schema)


def test_check_command_names_the_delimiter(write_bank_csv: WriteCsv, tmp_path: Path) -> None:
    semicolons = tmp_path / "semicolons.csv"
    pd.read_csv(write_bank_csv(60)).to_csv(semicolons, index=False, sep=";")

    result = CliRunner().invoke(app, ["participant", "check", str(semicolons)])

    assert result.exit_code == 2
    assert result.stderr.startswith(
        f"error: {semicolons}, header row: the header has one column: is the file "
        "comma-separated? (it looks ';'-separated)"
    )
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stdout == ""


def test_profile_counts_missing_values_and_special_codes(
    tmp_path: Path, embedded_frame: pd.DataFrame
) -> None:
    blanked = write_blanked(tmp_path, embedded_frame, n_rows=400)
    schema = load_schema(blanked.schema)

    profile = profile_bank_data(blanked.data, schema)

    by_name = {column.name: column for column in profile.columns}
    assert by_name["LIMIT_BAL"].missing == blanked.missing_limit.sum() > 0
    assert by_name["PAY_2"].missing == blanked.missing_pay_2.sum() > 0
    special = blanked.special[96] | blanked.special[98]
    assert by_name["PAY_AMT1"].special == special.sum() > 0
    assert by_name["PAY_AMT1"].missing == 0 and by_name["LIMIT_BAL"].special == 0
    regular = blanked.frame["PAY_AMT1"][~special]
    assert by_name["PAY_AMT1"].summary == f"{regular.min():.6g} … {regular.max():.6g}"
    levels = sorted(str(int(v)) for v in blanked.frame["PAY_2"].dropna().unique())
    shown = ", ".join(levels[:8]) + (" …" if len(levels) > 8 else "")
    assert by_name["PAY_2"].summary == f"{len(levels)} of 11 levels: {shown}"  # 2, not 2.0

    result = CliRunner().invoke(
        app, ["participant", "check", str(blanked.data), "--schema", str(blanked.schema)]
    )
    assert result.exit_code == 0, result.output
    assert "special" in result.stdout and "missing" in result.stdout
    assert result.stdout.rstrip().endswith("ok: the file meets the schema")


def test_check_help_says_nothing_leaves() -> None:
    result = CliRunner().invoke(app, ["participant", "check", "--help"])
    assert result.exit_code == 0
    assert "Nothing leaves this machine" in result.stdout
