"""Load a bank's CSV file (plain or gzip) and validate it against the dataset schema.

Validation runs entirely at the bank: nothing here talks to the network. The first
problem found raises a :class:`~credit.errors.SchemaError` naming the file, the
column, the first offending row (1-based data row; the header is row 0) and a hint.
"""

from __future__ import annotations

import gzip
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from credit.errors import SchemaError
from credit.schema import CategoricalFeature, DatasetSchema, NumericFeature, UnexpectedColumns

__all__ = ["BankData", "load_bank_csv"]

_GZIP_MAGIC = b"\x1f\x8b"
_NAN_SPELLINGS = frozenset({"", "nan", "na", "n/a", "null", "none", "-nan"})
_INF_SPELLINGS = frozenset({"inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"})


@dataclass(frozen=True)
class BankData:
    """A validated data file.

    Attributes
    ----------
    frame : pandas.DataFrame
        The schema's columns, in schema order, typed: numeric features as float64,
        integer-coded categoricals as int64, string categoricals as str, the target
        as int64 in {0, 1}.
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
        On the first violation: missing or unexpected column, non-numeric value,
        NaN or infinity, value out of bounds, non-integer where integers are
        required, unknown category level, non-binary target, duplicate id, too few
        rows, empty file, unreadable gzip.
    """
    source = Path(path)
    raw = _read_strings(source)
    warnings = _check_columns(raw, schema, source)
    typed: dict[str, pd.Series] = {}
    if schema.id_column:
        typed[schema.id_column] = _check_ids(raw[schema.id_column], schema.id_column, source)
    for feature in schema.numeric:
        typed[feature.name] = _check_numeric(raw[feature.name], feature, source)
    for categorical in schema.categorical:
        typed[categorical.name] = _check_categorical(raw[categorical.name], categorical, source)
    typed[schema.target] = _check_target(raw[schema.target], schema.target, source)
    if len(raw) < schema.min_rows:
        raise SchemaError(
            f"only {len(raw)} data rows; the schema requires at least {schema.min_rows}",
            file=source,
            hint="too few rows to train on; pool more history or join a later round",
        )
    frame = pd.DataFrame(typed, columns=list(schema.columns))
    return BankData(frame=frame, source=source, warnings=tuple(warnings))


def _read_strings(source: Path) -> pd.DataFrame:
    """Read every cell as a string so that each later check can point at its row."""
    if not source.is_file():
        raise SchemaError("file not found", file=source, hint="check the path to the data file")
    with source.open("rb") as handle:
        head = handle.read(2)
    if not head:
        raise SchemaError("file is empty", file=source, hint="export the data again")
    try:
        frame = pd.read_csv(
            source,
            dtype=str,
            keep_default_na=False,
            compression="gzip" if head == _GZIP_MAGIC else None,
            skipinitialspace=True,
        )
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
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def _check_columns(raw: pd.DataFrame, schema: DatasetSchema, source: Path) -> list[str]:
    present = list(raw.columns)
    for column in schema.columns:
        if column not in present:
            raise SchemaError(
                "missing column",
                file=source,
                column=column,
                row=0,
                hint=f"the schema '{schema.name}' requires it; add it or use the right schema",
            )
    warnings = []
    for column in present:
        if column in schema.columns:
            continue
        if schema.unexpected_columns is UnexpectedColumns.ERROR:
            raise SchemaError(
                "unexpected column not declared in the schema",
                file=source,
                column=column,
                row=0,
                hint='drop it from the file, or set unexpected_columns = "warn" in the schema',
            )
        warnings.append(f"{source}, column '{column}': not in the schema; ignored")
    return warnings


Check = tuple[np.ndarray, Callable[[int], str], str]
"""A boolean mask of offending rows, the problem for a row, and the hint."""


def _raise_first(checks: list[Check], column: str, source: Path) -> None:
    """Raise for the earliest row any check flags (ties: the first check listed)."""
    found = [
        (int(np.flatnonzero(mask)[0]), i) for i, (mask, _, _) in enumerate(checks) if mask.any()
    ]
    if found:
        row, index = min(found)
        _, problem, hint = checks[index]
        raise SchemaError(problem(row), file=source, column=column, row=row + 1, hint=hint)


def _parse_numbers(values: pd.Series) -> tuple[pd.Series, list[Check]]:
    """Parse strings to float64 (NaN where unusable) and list the parse problems by row."""
    text = values.str.strip()
    lowered = text.str.lower()
    missing = lowered.isin(_NAN_SPELLINGS).to_numpy()
    infinite = lowered.isin(_INF_SPELLINGS).to_numpy()
    numbers = pd.to_numeric(text.where(~(missing | infinite), ""), errors="coerce")
    finite = np.isfinite(numbers.to_numpy(dtype=float, na_value=np.nan))
    checks: list[Check] = [
        (
            missing,
            lambda row: f"missing value (NaN) '{values.iloc[row]}'",
            "fill or drop incomplete records before training",
        ),
        (
            infinite,
            lambda row: f"infinite value '{values.iloc[row]}'",
            "replace it with a finite value within the schema's bounds",
        ),
        (
            ~(missing | infinite | finite),
            lambda row: f"non-numeric value '{values.iloc[row]}'",
            "numeric columns take plain numbers such as 1250 or -3.5",
        ),
    ]
    return numbers.astype("float64").where(finite), checks


def _shown(values: pd.Series, row: int) -> str:
    return str(values.iloc[row]).strip()


def _check_numeric(values: pd.Series, feature: NumericFeature, source: Path) -> pd.Series:
    numbers, checks = _parse_numbers(values)
    array = numbers.to_numpy()
    usable = np.isfinite(array)
    if feature.integer:
        checks.append(
            (
                usable & (array != np.round(array)),
                lambda row: f"value '{_shown(values, row)}' is not a whole number",
                "the schema declares this column integer",
            )
        )
    checks.append(
        (
            usable & ((array < feature.min) | (array > feature.max)),
            lambda row: (
                f"value '{_shown(values, row)}' outside the declared bounds "
                f"[{feature.min:.15g}, {feature.max:.15g}]"
            ),
            "correct the record, or agree wider public bounds in the schema",
        )
    )
    _raise_first(checks, feature.name, source)
    return numbers


def _check_categorical(values: pd.Series, feature: CategoricalFeature, source: Path) -> pd.Series:
    levels = ", ".join(str(level) for level in feature.levels)
    if feature.is_integer:
        numbers, checks = _parse_numbers(values)
        array = numbers.to_numpy()
        unknown = np.isfinite(array) & ~np.isin(array, np.asarray(feature.levels, dtype=float))
    else:
        checks = []
        parsed = values.str.strip()
        unknown = ~parsed.isin(feature.levels).to_numpy()
    checks.append(
        (
            unknown,
            lambda row: f"unknown category level '{values.iloc[row]}'; declared levels: {levels}",
            "map it to a declared level, or add the level to the schema",
        )
    )
    _raise_first(checks, feature.name, source)
    return numbers.astype("int64") if feature.is_integer else parsed


def _check_target(values: pd.Series, column: str, source: Path) -> pd.Series:
    numbers, checks = _parse_numbers(values)
    array = numbers.to_numpy()
    checks.append(
        (
            np.isfinite(array) & ~np.isin(array, [0.0, 1.0]),
            lambda row: f"non-binary target value '{values.iloc[row]}'",
            "the target must be 0 (repaid) or 1 (defaulted)",
        )
    )
    _raise_first(checks, column, source)
    return numbers.astype("int64")


def _first(mask: np.ndarray) -> int:
    """Index of the first True of a boolean mask (the caller knows one exists)."""
    return int(np.flatnonzero(mask)[0])


def _check_ids(values: pd.Series, column: str, source: Path) -> pd.Series:
    ids = values.str.strip()
    empty = (ids == "").to_numpy()
    if empty.any():
        row = _first(empty)
        raise SchemaError(
            "empty id", file=source, column=column, row=row + 1, hint="every record needs an id"
        )
    duplicated = ids.duplicated().to_numpy()
    if duplicated.any():
        row = _first(duplicated)
        first_seen = _first((ids == ids.iloc[row]).to_numpy())
        raise SchemaError(
            f"duplicate id '{ids.iloc[row]}' (first seen at row {first_seen + 1})",
            file=source,
            column=column,
            row=row + 1,
            hint="each customer record must appear once; deduplicate the export",
        )
    return ids
