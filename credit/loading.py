"""Load a bank's CSV file (plain or gzip) and validate it against the dataset schema.

Validation runs entirely at the bank: nothing here talks to the network.
:func:`check_bank_csv` counts every violation (see :mod:`credit.validation`);
:func:`load_bank_csv` raises one :class:`~credit.errors.SchemaError` line for the
first of them (file, column, first row, how many rows and a hint) and names the
command that lists them all. A file that cannot be read as CSV at all (missing,
empty, corrupt gzip, the wrong delimiter) raises at once.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import re
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from credit.errors import SchemaError
from credit.schema import DatasetSchema, UnexpectedColumns
from credit.validation import (
    CheckedColumn,
    ColumnViolation,
    ValidationReport,
    check_categorical,
    check_ids,
    check_numeric,
    check_target,
)

__all__ = [
    "BankData",
    "CheckedFile",
    "check_bank_csv",
    "check_cells",
    "check_columns",
    "load_bank_csv",
    "read_csv_chunks",
]

_GZIP_MAGIC = b"\x1f\x8b"
_OTHER_DELIMITERS = {";": "';'", "\t": "tab", "|": "'|'"}


@dataclass(frozen=True)
class BankData:
    """A validated data file.

    Attributes
    ----------
    frame : pandas.DataFrame
        The schema's columns, in schema order, typed: numeric features as float64,
        integer-coded categoricals as int64, string categoricals as str, the target
        as int64 in {0, 1}. In a column whose schema entry allows missing values a
        missing value is NaN (``pandas.isna``): numeric columns stay float64,
        integer-coded categoricals become float64 (whole numbers that compare equal
        to their integer levels), string categoricals hold NaN among their strings.
        A numeric column's special codes are kept as the numbers they are.
    source : pathlib.Path
        The file it came from.
    warnings : tuple of str
        Non-fatal findings (unexpected columns under ``unexpected_columns = "warn"``).
    """

    frame: pd.DataFrame
    source: Path
    warnings: tuple[str, ...] = ()

    @property
    def n_rows(self) -> int:
        """Number of data rows."""
        return len(self.frame)


@dataclass(frozen=True)
class CheckedFile:
    """A bank file's validation report and, when it has no violation, its data."""

    report: ValidationReport
    data: BankData | None


def load_bank_csv(path: Path | str, schema: DatasetSchema) -> BankData:
    """Read and validate one bank's CSV file.

    Parameters
    ----------
    path : pathlib.Path or str
        A ``.csv`` file, gzip-compressed or not (detected from its first bytes).
    schema : DatasetSchema
        The consortium's dataset contract.

    Returns
    -------
    BankData
        The typed, validated frame.

    Raises
    ------
    SchemaError
        One line for the first violation (missing or unexpected column, non-numeric
        value, missing value where the schema refuses them, infinity, value out of
        bounds, non-integer where integers are required, unknown category level,
        non-binary target, empty or duplicate id, too few rows), with its count and
        first rows, naming ``fedcredit participant check FILE`` for the full list;
        or at once for an empty file, unreadable gzip or the wrong delimiter.
    """
    checked = check_bank_csv(path, schema)
    if checked.data is None:
        raise checked.report.error()
    return checked.data


def check_bank_csv(path: Path | str, schema: DatasetSchema) -> CheckedFile:
    """Read one bank's CSV file and count every violation of the schema.

    Parameters
    ----------
    path : pathlib.Path or str
        A ``.csv`` file, gzip-compressed or not.
    schema : DatasetSchema
        The consortium's dataset contract.

    Returns
    -------
    CheckedFile
        The report of every violation; the typed data when there is none.

    Raises
    ------
    SchemaError
        The file cannot be read as a CSV file with the schema's columns at all: not
        found, empty, unreadable gzip, not CSV, or a header of one column where the
        schema expects more (the likely delimiter named).
    """
    source = Path(path)
    raw = _read_strings(source, schema)
    header, warnings = check_columns(list(raw.columns), schema, source, required=schema.columns)
    checked = check_cells(raw, schema)
    violations = [*header, *(v for column in checked.values() for v in column.violations)]
    if len(raw) < schema.min_rows:
        violations.append(
            ColumnViolation(
                None,
                f"only {len(raw)} data rows; the schema requires at least {schema.min_rows}",
                len(raw),
                (),
                "too few rows to train on; pool more history or join a later round",
            )
        )
    report = ValidationReport(source, tuple(violations), tuple(warnings))
    if not report.ok:
        return CheckedFile(report, None)
    frame = pd.DataFrame(
        {name: column.values for name, column in checked.items()}, columns=list(schema.columns)
    )
    return CheckedFile(report, BankData(frame=frame, source=source, warnings=tuple(warnings)))


def check_cells(
    raw: pd.DataFrame, schema: DatasetSchema, *, ids: bool = True, target: bool = True
) -> dict[str, CheckedColumn]:
    """Check every schema column the frame of strings has, in schema order.

    ``ids`` and ``target``: whether the id and target columns are checked (when
    present); a column left unchecked is left out of the result.
    """
    checked: dict[str, CheckedColumn] = {}
    if ids and schema.id_column and schema.id_column in raw:
        checked[schema.id_column] = check_ids(raw[schema.id_column], schema.id_column)
    for feature in schema.numeric:
        if feature.name in raw:
            checked[feature.name] = check_numeric(raw[feature.name], feature)
    for categorical in schema.categorical:
        if categorical.name in raw:
            checked[categorical.name] = check_categorical(raw[categorical.name], categorical)
    if target and schema.target in raw:
        checked[schema.target] = check_target(raw[schema.target], schema.target)
    return checked


def _read_strings(source: Path, schema: DatasetSchema) -> pd.DataFrame:
    """Read every cell as a string so that each later check can point at its row."""
    compressed = _readable_source(source, schema)
    with _csv_errors(source):
        frame: pd.DataFrame = pd.read_csv(
            source, compression="gzip" if compressed else None, **_AS_STRINGS
        )
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def read_csv_chunks(
    path: Path | str, schema: DatasetSchema, *, chunk_rows: int
) -> Iterator[pd.DataFrame]:
    """Read a CSV file (plain or gzip) as strings, ``chunk_rows`` data rows at a time.

    Each chunk keeps the file's row numbers in its index (0 for the first data row);
    a file with a header and no rows gives one empty chunk with the header's columns.

    Raises
    ------
    SchemaError
        As :func:`check_bank_csv`: not found, empty, unreadable gzip, not CSV (with
        the file's row), or one header column where the schema expects more.
    """
    source = Path(path)
    compressed = _readable_source(source, schema)
    with _csv_errors(source):
        reader = pd.read_csv(
            source, compression="gzip" if compressed else None, chunksize=chunk_rows, **_AS_STRINGS
        )
        with reader:
            seen = False
            for chunk in reader:
                seen = True
                chunk.columns = [str(c).strip() for c in chunk.columns]
                yield chunk
        if not seen:
            header = _header_line(source, compressed=compressed)
            yield pd.DataFrame(columns=[c.strip() for c in next(csv.reader([header]), [])])


_AS_STRINGS: dict[str, Any] = {"dtype": str, "keep_default_na": False, "skipinitialspace": True}


def _readable_source(source: Path, schema: DatasetSchema) -> bool:
    """Whether the file is gzip; refuse a missing or empty file, or a wrong delimiter."""
    if not source.is_file():
        raise SchemaError("file not found", file=source, hint="check the path to the data file")
    with source.open("rb") as handle:
        head = handle.read(2)
    if not head:
        raise SchemaError("file is empty", file=source, hint="export the data again")
    compressed = head == _GZIP_MAGIC
    with _csv_errors(source):
        _check_delimiter(_header_line(source, compressed=compressed), schema, source)
    return compressed


@contextlib.contextmanager
def _csv_errors(source: Path) -> Iterator[None]:
    """Turn pandas' and gzip's reading errors into one :class:`SchemaError` line."""
    try:
        yield
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise SchemaError(
            f"unreadable gzip ({exc})",
            file=source,
            hint="the file is truncated or corrupt; copy it again",
        ) from exc
    except pd.errors.EmptyDataError as exc:
        raise SchemaError("file is empty", file=source, hint="export the data again") from exc
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        detail = " ".join(str(exc).split())  # pandas ends some messages with a newline
        line = re.search(r"in line (\d+)", detail)
        raise SchemaError(
            f"not a readable CSV file ({detail})",
            file=source,
            row=int(line.group(1)) - 1 if line else None,  # file line 1 is the header
            hint="export it as comma-separated UTF-8",
        ) from exc


def _header_line(source: Path, *, compressed: bool) -> str:
    """The file's first line, decoded leniently (only its delimiters matter)."""
    opener = gzip.open if compressed else open
    with opener(source, "rb") as handle:
        first: bytes = handle.readline()
    return first.decode("utf-8", errors="replace").strip()


def _check_delimiter(header: str, schema: DatasetSchema, source: Path) -> None:
    """Refuse a header of one column where the schema expects more, naming the delimiter."""
    fields = next(csv.reader([header]), [])
    if len(fields) != 1 or len(schema.columns) == 1:
        return
    seen = [name for delimiter, name in _OTHER_DELIMITERS.items() if delimiter in header]
    guess = f" (it looks {seen[0]}-separated)" if seen else ""
    raise SchemaError(
        f"the header has one column: is the file comma-separated?{guess}",
        file=source,
        row=0,
        hint=f"the schema '{schema.name}' expects {len(schema.columns)} columns; "
        "export the file again with ',' as the delimiter",
    )


def check_columns(
    present: Sequence[str], schema: DatasetSchema, source: Path, *, required: Sequence[str]
) -> tuple[list[ColumnViolation], list[str]]:
    """Missing and (under ``unexpected_columns = "error"``) unexpected columns; warnings.

    ``required``: the columns that must be there (every schema column for a bank's
    training file; an applicant file needs only the model's inputs).
    """
    violations = [
        ColumnViolation(
            column,
            "missing column",
            1,
            (0,),
            f"the schema '{schema.name}' requires it; add it or use the right schema",
        )
        for column in required
        if column not in present
    ]
    warnings = []
    for column in present:
        if column in schema.columns:
            continue
        if schema.unexpected_columns is UnexpectedColumns.ERROR:
            violations.append(
                ColumnViolation(
                    column,
                    "unexpected column not declared in the schema",
                    1,
                    (0,),
                    'drop it from the file, or set unexpected_columns = "warn" in the schema',
                )
            )
        else:
            warnings.append(f"{source}, column '{column}': not in the schema; ignored")
    return violations, warnings
