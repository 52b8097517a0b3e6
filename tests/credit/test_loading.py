"""Bank file validation: every bad input is a SchemaError naming file, column and row."""

from __future__ import annotations

import gzip
import re
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from credit.errors import SchemaError
from credit.loading import check_bank_csv, load_bank_csv
from credit.schema import DatasetSchema, UnexpectedColumns, load_schema
from tests.support.missing_data import write_blanked

WriteCsv = Callable[..., Path]
TARGET = "default_payment_next_month"


def _edit(path: Path, edit: Callable[[pd.DataFrame], None]) -> Path:
    """Rewrite ``path`` (as plain CSV) after applying ``edit`` to its string cells."""
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    edit(raw)
    raw.to_csv(path, index=False)
    return path


def _set_cells(path: Path, column: str, values: dict[int, str]) -> Path:
    """Set cells of ``column`` by 1-based data row (row 1 is the first line after the header)."""

    def edit(raw: pd.DataFrame) -> None:
        for row, value in values.items():
            raw.loc[row - 1, column] = value

    return _edit(path, edit)


def _load_error(path: Path, schema: DatasetSchema, match: str) -> SchemaError:
    with pytest.raises(SchemaError, match=match) as info:
        load_bank_csv(path, schema)
    message = str(info.value)
    assert "\n" not in message, f"message must be one line: {message!r}"
    assert info.value.file == str(path)
    return info.value


def _assert_located(
    path: Path, schema: DatasetSchema, *, column: str, row: int, match: str
) -> SchemaError:
    """Loading fails with a SchemaError whose message and attributes locate the problem."""
    error = _load_error(path, schema, match)
    assert error.column == column
    assert error.row == row
    where = "header row" if row == 0 else f"row {row}"
    assert str(error).startswith(f"{path}, column '{column}', {where}: ")
    return error


def _assert_file_level(path: Path, schema: DatasetSchema, *, match: str) -> SchemaError:
    """Loading fails with a SchemaError about the whole file (no column, no row)."""
    error = _load_error(path, schema, match)
    assert error.column is None
    assert error.row is None
    assert str(error).startswith(f"{path}: ")
    return error


# --- valid files -----------------------------------------------------------------------


@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gzip"])
def test_valid_file_loads_typed(
    write_bank_csv: WriteCsv,
    schema: DatasetSchema,
    embedded_frame: pd.DataFrame,
    compressed: bool,
) -> None:
    path = write_bank_csv(120, start=10, gzip=compressed)

    data = load_bank_csv(path, schema)

    assert data.n_rows == 120
    assert data.source == path
    assert data.warnings == ()
    frame = data.frame
    assert list(frame.columns) == list(schema.columns)
    for feature in schema.numeric:
        assert frame[feature.name].dtype == np.float64, feature.name
    for categorical in schema.categorical:
        assert frame[categorical.name].dtype == np.int64, categorical.name
    assert frame[TARGET].dtype == np.int64
    assert set(frame[TARGET].unique()) <= {0, 1}
    expected = embedded_frame.iloc[10:130].reset_index(drop=True)
    np.testing.assert_array_equal(frame["LIMIT_BAL"], expected["LIMIT_BAL"].astype(float))
    np.testing.assert_array_equal(frame["PAY_0"], expected["PAY_0"])
    np.testing.assert_array_equal(frame[TARGET], expected[TARGET])


def test_gzip_is_detected_from_content_not_name(
    write_bank_csv: WriteCsv, schema: DatasetSchema, tmp_path: Path
) -> None:
    gzipped = write_bank_csv(60, gzip=True)
    disguised = tmp_path / "disguised.csv"
    disguised.write_bytes(gzipped.read_bytes())
    plain_named_gz = tmp_path / "plain.csv.gz"
    plain_named_gz.write_bytes(write_bank_csv(60).read_bytes())

    assert load_bank_csv(disguised, schema).n_rows == 60
    assert load_bank_csv(str(plain_named_gz), schema).n_rows == 60


def test_exactly_min_rows_loads(write_bank_csv: WriteCsv, schema: DatasetSchema) -> None:
    assert load_bank_csv(write_bank_csv(schema.min_rows), schema).n_rows == schema.min_rows


# --- columns ---------------------------------------------------------------------------


@pytest.mark.parametrize("column", ["AGE", "ID", TARGET])
def test_missing_column(write_bank_csv: WriteCsv, schema: DatasetSchema, column: str) -> None:
    def drop(raw: pd.DataFrame) -> None:
        del raw[column]

    path = _edit(write_bank_csv(), drop)

    _assert_located(path, schema, column=column, row=0, match="missing column")


def test_unexpected_column_is_an_error_by_default(
    write_bank_csv: WriteCsv, schema: DatasetSchema
) -> None:
    assert schema.unexpected_columns is UnexpectedColumns.ERROR
    path = _edit(write_bank_csv(), lambda raw: raw.insert(3, "INCOME", "1000"))

    _assert_located(path, schema, column="INCOME", row=0, match="unexpected column")


def test_unexpected_column_under_warn_loads_with_warning(
    write_bank_csv: WriteCsv, schema: DatasetSchema
) -> None:
    warn = schema.model_copy(update={"unexpected_columns": UnexpectedColumns.WARN})
    path = _edit(write_bank_csv(120), lambda raw: raw.insert(3, "INCOME", "1000"))

    data = load_bank_csv(path, warn)

    assert data.n_rows == 120
    assert list(data.frame.columns) == list(schema.columns)
    assert len(data.warnings) == 1
    assert str(path) in data.warnings[0]
    assert "column 'INCOME'" in data.warnings[0]


# --- cell values -----------------------------------------------------------------------


def test_non_numeric_value(write_bank_csv: WriteCsv, schema: DatasetSchema) -> None:
    path = _set_cells(write_bank_csv(), "LIMIT_BAL", {7: "abc"})

    _assert_located(path, schema, column="LIMIT_BAL", row=7, match="non-numeric value 'abc'")


@pytest.mark.parametrize("cell", ["", "   ", "NaN", "nan", "NA", "null", "N/A"])
def test_missing_value(write_bank_csv: WriteCsv, schema: DatasetSchema, cell: str) -> None:
    path = _set_cells(write_bank_csv(), "BILL_AMT3", {7: cell})

    _assert_located(path, schema, column="BILL_AMT3", row=7, match=r"missing value \(NaN\)")


@pytest.mark.parametrize("column", ["EDUCATION", TARGET])
def test_missing_value_in_categorical_and_target(
    write_bank_csv: WriteCsv, schema: DatasetSchema, column: str
) -> None:
    path = _set_cells(write_bank_csv(), column, {7: ""})

    _assert_located(path, schema, column=column, row=7, match=r"missing value \(NaN\)")


def test_empty_id(write_bank_csv: WriteCsv, schema: DatasetSchema) -> None:
    path = _set_cells(write_bank_csv(), "ID", {7: ""})

    _assert_located(path, schema, column="ID", row=7, match="empty id")


def test_short_row_is_a_missing_value(write_bank_csv: WriteCsv, schema: DatasetSchema) -> None:
    path = write_bank_csv()
    lines = path.read_text().splitlines()
    lines[7] = lines[7].rsplit(",", 1)[0]  # data row 7 loses its last cell (the target)
    path.write_text("\n".join(lines) + "\n")

    _assert_located(path, schema, column=TARGET, row=7, match=r"missing value \(NaN\)")


def test_row_with_too_many_fields(write_bank_csv: WriteCsv, schema: DatasetSchema) -> None:
    path = write_bank_csv()
    lines = path.read_text().splitlines()
    lines[7] += ",5"  # data row 7 has one field more than the header
    path.write_text("\n".join(lines) + "\n")

    error = _load_error(path, schema, match="not a readable CSV file")
    assert error.row == 7
    assert str(error).startswith(f"{path}, row 7: ")


@pytest.mark.parametrize("cell", ["inf", "-inf", "Infinity"])
def test_infinite_value(write_bank_csv: WriteCsv, schema: DatasetSchema, cell: str) -> None:
    path = _set_cells(write_bank_csv(), "LIMIT_BAL", {7: cell})

    _assert_located(
        path, schema, column="LIMIT_BAL", row=7, match=f"infinite value '{re.escape(cell)}'"
    )


@pytest.mark.parametrize(
    ("column", "cell"),
    [("AGE", "150"), ("AGE", "17"), ("LIMIT_BAL", "-1"), ("PAY_AMT1", "2000001")],
)
def test_value_outside_bounds(
    write_bank_csv: WriteCsv, schema: DatasetSchema, column: str, cell: str
) -> None:
    path = _set_cells(write_bank_csv(), column, {7: cell})

    # The value is shown as written: 2000001, not a rounded 2e+06 that looks in bounds.
    _assert_located(
        path, schema, column=column, row=7, match=rf"value '?{cell}'? outside the declared bounds"
    )


def test_non_integer_age(write_bank_csv: WriteCsv, schema: DatasetSchema) -> None:
    path = _set_cells(write_bank_csv(), "AGE", {7: "30.5"})

    _assert_located(
        path, schema, column="AGE", row=7, match=r"value '?30\.5'? is not a whole number"
    )


@pytest.mark.parametrize(
    ("column", "cell"),
    [("EDUCATION", "9"), ("SEX", "0"), ("PAY_0", "-3"), ("MARRIAGE", "1.5")],
)
def test_unknown_category_level(
    write_bank_csv: WriteCsv, schema: DatasetSchema, column: str, cell: str
) -> None:
    path = _set_cells(write_bank_csv(), column, {7: cell})

    _assert_located(
        path, schema, column=column, row=7, match=f"unknown category level '{re.escape(cell)}'"
    )


@pytest.mark.parametrize("cell", ["2", "-1", "0.5"])
def test_non_binary_target(write_bank_csv: WriteCsv, schema: DatasetSchema, cell: str) -> None:
    path = _set_cells(write_bank_csv(), TARGET, {7: cell})

    _assert_located(
        path, schema, column=TARGET, row=7, match=f"non-binary target value '{re.escape(cell)}'"
    )


def test_duplicate_id_names_where_first_seen(
    write_bank_csv: WriteCsv, schema: DatasetSchema
) -> None:
    path = write_bank_csv()
    first_id = pd.read_csv(path, dtype=str)["ID"].iloc[2]  # data row 3
    _set_cells(path, "ID", {9: first_id})

    _assert_located(
        path,
        schema,
        column="ID",
        row=9,
        match=rf"duplicate id '{first_id}' \(first seen at row 3\)",
    )


@pytest.mark.parametrize(
    ("column", "cells", "match"),
    [
        ("LIMIT_BAL", {30: "abc", 5: "xyz", 12: "?"}, "non-numeric value 'xyz'"),
        ("AGE", {30: "150", 5: "12", 12: "200"}, "value '?12'? outside"),
    ],
    ids=["non-numeric", "out-of-bounds"],
)
def test_first_offending_row_is_reported(
    write_bank_csv: WriteCsv, schema: DatasetSchema, column: str, cells: dict[int, str], match: str
) -> None:
    path = _set_cells(write_bank_csv(), column, cells)

    _assert_located(path, schema, column=column, row=5, match=match)


@pytest.mark.parametrize(
    ("column", "cells"),
    [
        ("LIMIT_BAL", {4: "abc", 9: ""}),  # non-numeric before a missing value
        ("LIMIT_BAL", {4: "abc", 9: "inf"}),  # non-numeric before an infinity
        ("AGE", {4: "150", 9: "30.5"}),  # out of bounds before a fraction
        ("LIMIT_BAL", {4: "-5", 9: "abc"}),  # out of bounds before a non-number
        ("EDUCATION", {4: "9", 9: ""}),  # unknown level before a missing value
        (TARGET, {4: "2", 9: "yes"}),  # non-binary before a non-number
    ],
    ids=[
        "non-numeric-then-nan",
        "non-numeric-then-inf",
        "bounds-then-fraction",
        "bounds-then-non-numeric",
        "level-then-nan",
        "target-then-non-numeric",
    ],
)
def test_first_offending_row_is_reported_across_problem_kinds(
    write_bank_csv: WriteCsv, schema: DatasetSchema, column: str, cells: dict[int, str]
) -> None:
    path = _set_cells(write_bank_csv(), column, cells)

    _assert_located(path, schema, column=column, row=4, match=re.escape(cells[4]))


# --- whole-file problems ---------------------------------------------------------------


def test_too_few_rows(write_bank_csv: WriteCsv, schema: DatasetSchema) -> None:
    path = write_bank_csv(schema.min_rows - 1)

    _assert_file_level(
        path, schema, match=rf"only {schema.min_rows - 1} data rows.*at least {schema.min_rows}"
    )


@pytest.mark.parametrize("content", [b"", gzip.compress(b"")], ids=["zero-bytes", "empty-gzip"])
def test_empty_file(tmp_path: Path, schema: DatasetSchema, content: bytes) -> None:
    path = tmp_path / "bank.csv"
    path.write_bytes(content)

    _assert_file_level(path, schema, match="file is empty")


def test_header_only_file(
    tmp_path: Path, schema: DatasetSchema, embedded_frame: pd.DataFrame
) -> None:
    path = tmp_path / "bank.csv"
    path.write_text(",".join(embedded_frame.columns) + "\n")

    _assert_file_level(path, schema, match="only 0 data rows")


def _truncate(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _bad_crc(data: bytes) -> bytes:
    crc, size = struct.unpack("<II", data[-8:])
    return data[:-8] + struct.pack("<II", crc ^ 0xFFFFFFFF, size)


@pytest.mark.parametrize(
    "corrupt",
    [
        _truncate,
        _bad_crc,
        lambda data: data[:2],  # magic bytes only
        lambda data: data[:2] + b"not deflate at all, just text" * 4,
    ],
    ids=["truncated", "bad-crc", "magic-only", "bad-header"],
)
def test_unreadable_gzip(
    write_bank_csv: WriteCsv, schema: DatasetSchema, corrupt: Callable[[bytes], bytes]
) -> None:
    path = write_bank_csv(gzip=True)
    path.write_bytes(corrupt(path.read_bytes()))
    assert path.read_bytes()[:2] == b"\x1f\x8b"

    _assert_file_level(path, schema, match="unreadable gzip")


def test_file_not_found(tmp_path: Path, schema: DatasetSchema) -> None:
    path = tmp_path / "nowhere" / "bank.csv"

    _assert_file_level(path, schema, match="file not found")


# --- every violation, counted ------------------------------------------------------------


def test_every_violation_is_counted_column_by_column(
    write_bank_csv: WriteCsv, schema: DatasetSchema
) -> None:
    path = write_bank_csv(120)
    _set_cells(path, "LIMIT_BAL", {12: "abc", 5: "xyz", 7: "", 30: "?"})
    _set_cells(path, "AGE", {9: "30.5", 3: "150", 40: "12"})
    _set_cells(path, "SEX", {10: "3"})
    _set_cells(path, TARGET, {2: "2"})
    _edit(path, lambda raw: raw.insert(3, "INCOME", "1000"))

    checked = check_bank_csv(path, schema)

    assert checked.data is None
    report = checked.report
    assert not report.ok
    found = [(v.column, v.problem, v.count, v.rows) for v in report.violations]
    assert found == [
        ("INCOME", "unexpected column not declared in the schema", 1, (0,)),
        ("LIMIT_BAL", "non-numeric value 'xyz'", 3, (5, 12, 30)),
        ("LIMIT_BAL", "missing value (NaN) ''", 1, (7,)),
        ("AGE", "value '150' outside the declared bounds [18, 100]", 2, (3, 40)),
        ("AGE", "value '30.5' is not a whole number", 1, (9,)),
        ("SEX", "unknown category level '3'; declared levels: 1, 2", 1, (10,)),
        (TARGET, "non-binary target value '2'", 1, (2,)),
    ]
    assert report.columns == ("INCOME", "LIMIT_BAL", "AGE", "SEX", TARGET)
    assert report.summary() == "7 problems in 5 columns; fix the file and check it again"
    assert all(v.hint for v in report.violations)


def test_the_load_error_names_count_first_rows_and_the_check_command(
    write_bank_csv: WriteCsv, schema: DatasetSchema
) -> None:
    path = _set_cells(write_bank_csv(), "LIMIT_BAL", {12: "abc", 5: "xyz", 30: "?"})
    _set_cells(path, "AGE", {3: "150"})

    error = _assert_located(path, schema, column="LIMIT_BAL", row=5, match="non-numeric")

    # The first column in schema order, its first kind of problem, then what lists them all.
    assert str(error) == (
        f"{path}, column 'LIMIT_BAL', row 5: non-numeric value 'xyz' in 3 rows (5, 12, 30) "
        "(numeric columns take plain numbers such as 1250 or -3.5; "
        f"`fedcredit participant check {path}` lists every problem (1 more))"
    )


def test_many_offending_rows_show_the_first_five(
    write_bank_csv: WriteCsv, schema: DatasetSchema
) -> None:
    path = _set_cells(write_bank_csv(), "BILL_AMT2", {row: "n/a" for row in range(20, 9, -1)})

    error = _assert_located(path, schema, column="BILL_AMT2", row=10, match="missing value")

    assert "in 11 rows (10, 11, 12, 13, 14, …)" in str(error)
    (violation,) = check_bank_csv(path, schema).report.violations
    assert violation.rows_text == "10, 11, 12, 13, 14, …"


def test_missing_columns_and_too_few_rows_are_all_listed(
    write_bank_csv: WriteCsv, schema: DatasetSchema
) -> None:
    def drop(raw: pd.DataFrame) -> None:
        del raw["AGE"], raw["PAY_3"]

    path = _edit(write_bank_csv(schema.min_rows - 1), drop)

    report = check_bank_csv(path, schema).report

    assert [(v.column, v.problem, v.rows_text) for v in report.violations] == [
        ("AGE", "missing column", "header"),
        ("PAY_3", "missing column", "header"),
        (None, f"only {schema.min_rows - 1} data rows; the schema requires at least 50", "-"),
    ]
    assert report.summary() == (
        "3 problems in 2 columns and the file as a whole; fix the file and check it again"
    )


# --- missing values and special codes where the schema allows them ----------------------


def test_blanked_file_loads_with_missing_values_as_nan(
    tmp_path: Path, embedded_frame: pd.DataFrame
) -> None:
    blanked = write_blanked(tmp_path, embedded_frame, n_rows=2_000)
    schema = load_schema(blanked.schema)

    frame = load_bank_csv(blanked.data, schema).frame

    limit = frame["LIMIT_BAL"].to_numpy()
    np.testing.assert_array_equal(np.isnan(limit), blanked.missing_limit)
    assert 0.17 < blanked.missing_limit.mean() < 0.23
    np.testing.assert_array_equal(
        limit[~blanked.missing_limit],
        embedded_frame["LIMIT_BAL"].iloc[:2_000].to_numpy(dtype=float)[~blanked.missing_limit],
    )
    pay_2 = frame["PAY_2"]
    assert pay_2.dtype == np.float64  # integer levels with missing values: whole floats
    np.testing.assert_array_equal(pay_2.isna().to_numpy(), blanked.missing_pay_2)
    original = embedded_frame["PAY_2"].iloc[:2_000].to_numpy()
    assert (pay_2.to_numpy()[~blanked.missing_pay_2] == original[~blanked.missing_pay_2]).all()
    assert frame["PAY_3"].dtype == np.int64  # refuses missing values: int64 as before
    payment = frame["PAY_AMT1"].to_numpy()
    for code, rows in blanked.special.items():
        np.testing.assert_array_equal(payment == code, rows)
        assert rows.sum() > 30


@pytest.mark.parametrize("cell", ["", "NaN", "NA", "null", "N/A", "none"])
def test_every_nan_spelling_is_a_missing_value_where_allowed(
    tmp_path: Path, embedded_frame: pd.DataFrame, cell: str
) -> None:
    blanked = write_blanked(tmp_path, embedded_frame, n_rows=200)
    schema = load_schema(blanked.schema)
    _set_cells(blanked.data, "LIMIT_BAL", {4: cell})
    _set_cells(blanked.data, "PAY_2", {4: cell})

    frame = load_bank_csv(blanked.data, schema).frame

    assert np.isnan(frame["LIMIT_BAL"].iloc[3]) and np.isnan(frame["PAY_2"].iloc[3])


def test_missing_values_stay_refused_where_the_schema_refuses_them(
    tmp_path: Path, embedded_frame: pd.DataFrame
) -> None:
    blanked = write_blanked(tmp_path, embedded_frame, n_rows=200)
    first = int(np.flatnonzero(blanked.missing_limit)[0]) + 1

    _assert_located(
        blanked.data,
        load_schema(),  # the embedded schema refuses them
        column="LIMIT_BAL",
        row=first,
        match=rf"missing value \(NaN\) '' in {blanked.missing_limit.sum()} rows",
    )


def _string_levels_schema(*, missing: str) -> DatasetSchema:
    return DatasetSchema.model_validate(
        {
            "name": "regions",
            "target": "bad",
            "min_rows": 1,
            "numeric": [{"name": "x", "min": 0, "max": 10}],
            "categorical": [
                {"name": "region", "levels": ["north", "south", "NA"], "missing": missing}
            ],
        }
    )


def test_string_levels_keep_a_declared_na_level_and_nan_for_missing(tmp_path: Path) -> None:
    path = tmp_path / "regions.csv"
    path.write_text("x,region,bad\n1,north,0\n2,NA,1\n3,,0\n4, south,1\n5,null,0\n")

    frame = load_bank_csv(path, _string_levels_schema(missing="allow")).frame

    assert frame["region"].tolist()[:2] == ["north", "NA"]
    assert frame["region"].isna().tolist() == [False, False, True, False, True]
    assert frame["region"].iloc[3] == "south"
    report = check_bank_csv(path, _string_levels_schema(missing="refuse")).report
    assert [(v.problem, v.rows) for v in report.violations] == [("missing value (NaN) ''", (3, 5))]


# --- the wrong delimiter ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("delimiter", "named"),
    [
        (";", " (it looks ';'-separated)"),
        ("\t", " (it looks tab-separated)"),
        ("|", " (it looks '|'-separated)"),
        (" ", ""),
    ],
    ids=["semicolon", "tab", "pipe", "unknown"],
)
def test_a_header_of_one_column_asks_whether_the_file_is_comma_separated(
    write_bank_csv: WriteCsv, schema: DatasetSchema, delimiter: str, named: str
) -> None:
    path = write_bank_csv(60)
    raw = pd.read_csv(path, dtype=str)
    raw["LIMIT_BAL"] = raw["LIMIT_BAL"] + ",5"  # decimal commas: pandas alone would stop here
    raw.to_csv(path, index=False, sep=delimiter, quoting=3, escapechar="\\")

    error = _load_error(path, schema, match="the header has one column")

    assert str(error).startswith(
        f"{path}, header row: the header has one column: is the file comma-separated?{named} ("
    )
    assert error.row == 0


def test_a_gzip_file_with_the_wrong_delimiter_is_named_too(
    write_bank_csv: WriteCsv, schema: DatasetSchema, tmp_path: Path
) -> None:
    path = tmp_path / "bank.csv.gz"
    pd.read_csv(write_bank_csv(60)).to_csv(path, index=False, sep=";", compression="gzip")

    _load_error(path, schema, match=r"is the file comma-separated\? \(it looks ';'-separated\)")
