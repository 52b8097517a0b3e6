"""``participant check``: the loader's verdict and a profile, computed locally."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from cli.app import app
from credit.errors import SchemaError
from credit.schema import DatasetSchema, embedded_schema_path
from participant.node.check import profile_bank_data, resolve_schema

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
    assert limit.kind == "numeric" and limit.missing == 0
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


def test_check_command_bad_data_exits_2_with_the_loader_message(
    write_bank_csv: WriteCsv,
) -> None:
    path = write_bank_csv(100)
    frame = pd.read_csv(path, dtype=str)
    frame.loc[9, "SEX"] = "3"
    frame.to_csv(path, index=False)
    result = CliRunner().invoke(app, ["participant", "check", str(path)])
    assert result.exit_code == 2
    assert result.stderr.startswith(
        f"error: {path}, column 'SEX', row 10: unknown category level '3'"
    )
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stdout == ""


def test_check_help_says_nothing_leaves() -> None:
    result = CliRunner().invoke(app, ["participant", "check", "--help"])
    assert result.exit_code == 0
    assert "Nothing leaves this machine" in result.stdout
