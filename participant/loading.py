"""Load a bank's CSV file (plain or gzip) and validate it against the dataset schema.

Validation runs entirely at the bank: nothing here talks to the network. The first
problem found raises a :class:`~credit.errors.SchemaError` naming the file, the
column, the first offending row (1-based data row; the header is row 0) and a hint.
"""

from __future__ import annotations

import gzip
import zlib
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
        raise SchemaError(
            f"not a readable CSV file ({exc})",
            file=source,
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


def _first(mask: np.ndarray) -> int:
    """Index of the first True of a boolean mask (the caller knows one exists)."""
    return int(np.flatnonzero(mask)[0])


def _parse_numbers(values: pd.Series, column: str, source: Path) -> pd.Series:
    """Parse strings to float64, rejecting NaN, infinities and non-numbers by row."""
    text = values.str.strip()
    lowered = text.str.lower()
    missing = lowered.isin(_NAN_SPELLINGS).to_numpy()
    if missing.any():
        row = _first(missing)
        raise SchemaError(
            f"missing value (NaN) '{values.iloc[row]}'",
            file=source,
            column=column,
            row=row + 1,
            hint="fill or drop incomplete records before training",
        )
    infinite = lowered.isin(_INF_SPELLINGS).to_numpy()
    if infinite.any():
        row = _first(infinite)
        raise SchemaError(
            f"infinite value '{values.iloc[row]}'",
            file=source,
            column=column,
            row=row + 1,
            hint="replace it with a finite value within the schema's bounds",
        )
    numbers = pd.to_numeric(text, errors="coerce")
    bad = numbers.isna().to_numpy() | ~np.isfinite(numbers.to_numpy(dtype=float, na_value=np.nan))
    if bad.any():
        row = _first(bad)
        raise SchemaError(
            f"non-numeric value '{values.iloc[row]}'",
            file=source,
            column=column,
            row=row + 1,
            hint="numeric columns take plain numbers such as 1250 or -3.5",
        )
    return numbers.astype("float64")


def _check_numeric(values: pd.Series, feature: NumericFeature, source: Path) -> pd.Series:
    numbers = _parse_numbers(values, feature.name, source)
    array = numbers.to_numpy()
    if feature.integer:
        fractional = array != np.round(array)
        if fractional.any():
            row = _first(fractional)
            raise SchemaError(
                f"value {array[row]:g} is not a whole number",
                file=source,
                column=feature.name,
                row=row + 1,
                hint="the schema declares this column integer",
            )
    outside = (array < feature.min) | (array > feature.max)
    if outside.any():
        row = _first(outside)
        raise SchemaError(
            f"value {array[row]:g} outside the declared bounds [{feature.min:g}, {feature.max:g}]",
            file=source,
            column=feature.name,
            row=row + 1,
            hint="correct the record, or agree wider public bounds in the schema",
        )
    return numbers


def _check_categorical(values: pd.Series, feature: CategoricalFeature, source: Path) -> pd.Series:
    if feature.is_integer:
        numbers = _parse_numbers(values, feature.name, source)
        allowed = np.asarray(feature.levels, dtype=float)
        unknown = ~np.isin(numbers.to_numpy(), allowed)
        parsed: pd.Series = numbers.astype("int64") if not unknown.any() else numbers
    else:
        parsed = values.str.strip()
        unknown = ~parsed.isin(feature.levels).to_numpy()
    if unknown.any():
        row = _first(unknown)
        levels = ", ".join(str(level) for level in feature.levels)
        raise SchemaError(
            f"unknown category level '{values.iloc[row]}'; declared levels: {levels}",
            file=source,
            column=feature.name,
            row=row + 1,
            hint="map it to a declared level, or add the level to the schema",
        )
    return parsed


def _check_target(values: pd.Series, column: str, source: Path) -> pd.Series:
    numbers = _parse_numbers(values, column, source)
    not_binary = ~numbers.isin([0.0, 1.0]).to_numpy()
    if not_binary.any():
        row = _first(not_binary)
        raise SchemaError(
            f"non-binary target value '{values.iloc[row]}'",
            file=source,
            column=column,
            row=row + 1,
            hint="the target must be 0 (repaid) or 1 (defaulted)",
        )
    return numbers.astype("int64")


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
