"""``fedcredit participant check``: validate and profile a bank's data file, locally.

The file is validated by :func:`credit.loading.check_bank_csv` against the
consortium's schema (the same check the bank's SuperNode makes before every run),
which lists every violation, column by column; a valid file is then summarised
column by column, with its missing values and special codes counted. Nothing is
sent anywhere: this is for the bank's own eyes, to fix its export before joining.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from credit.errors import SchemaError
from credit.loading import BankData, check_bank_csv
from credit.schema import DatasetSchema, load_schema
from credit.validation import ValidationReport

__all__ = [
    "ColumnProfile",
    "DataProfile",
    "FileCheck",
    "check_bank_data",
    "profile_bank_data",
    "resolve_schema",
    "violations_error",
]


@dataclass(frozen=True)
class ColumnProfile:
    """One column of the profile.

    Attributes
    ----------
    name : str
        The column.
    kind : str
        ``numeric``, ``integer``, ``categorical``, ``id`` or ``target``.
    missing : int
        Missing values (only where the schema allows them; 0 elsewhere).
    special : int
        Cells holding one of the column's special codes (numeric columns).
    summary : str
        ``min … max`` of the regular values for numbers, ``k of K levels`` for
        categoricals, the distinct count for the id.
    """

    name: str
    kind: str
    missing: int
    special: int
    summary: str


@dataclass(frozen=True)
class DataProfile:
    """What ``participant check`` prints for a valid file: rows, default rate, columns."""

    source: Path
    rows: int
    default_rate: float
    columns: tuple[ColumnProfile, ...]
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class FileCheck:
    """The validation report of a file and, when it meets the schema, its profile."""

    report: ValidationReport
    profile: DataProfile | None


def resolve_schema(path: Path | None) -> DatasetSchema:
    """The schema from a TOML file or a bundle folder; the embedded schema when None."""
    if path is not None and path.is_dir():
        path = path / "schema.toml"
    return load_schema(path)


def check_bank_data(data: Path, schema: DatasetSchema) -> FileCheck:
    """Validate ``data`` against ``schema``, listing every violation; profile it if valid.

    Raises
    ------
    SchemaError
        The file cannot be read as CSV with the schema's columns at all (not found,
        empty, unreadable gzip, wrong delimiter).
    """
    checked = check_bank_csv(data, schema)
    if checked.data is None:
        return FileCheck(checked.report, None)
    return FileCheck(checked.report, _profile(checked.data, schema))


def profile_bank_data(data: Path, schema: DatasetSchema) -> DataProfile:
    """Validate ``data`` against ``schema`` and profile it.

    Raises
    ------
    SchemaError
        The file breaks the schema (the loader's one-line message for its first
        violation).
    """
    checked = check_bank_data(data, schema)
    if checked.profile is None:
        raise checked.report.error()
    return checked.profile


def _profile(bank: BankData, schema: DatasetSchema) -> DataProfile:
    return DataProfile(
        source=bank.source,
        rows=bank.n_rows,
        default_rate=float(bank.frame[schema.target].mean()) if bank.n_rows else 0.0,
        columns=tuple(_columns(bank, schema)),
        warnings=bank.warnings,
    )


def _missing(column: pd.Series) -> int:
    return int(column.isna().sum())


def _columns(bank: BankData, schema: DatasetSchema) -> list[ColumnProfile]:
    frame = bank.frame
    profiles = []
    if schema.id_column:
        ids = frame[schema.id_column]
        profiles.append(
            ColumnProfile(schema.id_column, "id", _missing(ids), 0, f"{ids.nunique()} distinct")
        )
    for numeric in schema.numeric:
        values = frame[numeric.name].to_numpy(dtype=float)
        special = np.isin(values, numeric.special)
        regular = values[~np.isnan(values) & ~special]
        summary = f"{np.min(regular):.6g} … {np.max(regular):.6g}" if regular.size else "-"
        kind = "integer" if numeric.integer else "numeric"
        profiles.append(
            ColumnProfile(
                numeric.name, kind, _missing(frame[numeric.name]), int(special.sum()), summary
            )
        )
    for categorical in schema.categorical:
        column = frame[categorical.name]
        seen = sorted(_level(level) for level in column.dropna().unique().tolist())
        shown = ", ".join(seen[:8]) + (" …" if len(seen) > 8 else "")
        summary = f"{len(seen)} of {len(categorical.levels)} levels: {shown}"
        profiles.append(
            ColumnProfile(categorical.name, "categorical", _missing(column), 0, summary)
        )
    target = frame[schema.target]
    profiles.append(
        ColumnProfile(schema.target, "target", _missing(target), 0, f"{int(target.sum())} defaults")
    )
    return profiles


def _level(level: object) -> str:
    """A level as declared: ``2``, not the ``2.0`` a column with missing values holds."""
    if isinstance(level, float) and level.is_integer():
        return str(int(level))
    return str(level)


def violations_error(report: ValidationReport) -> SchemaError:
    """The one summary line of a file with violations (``participant check``'s exit)."""
    return SchemaError(report.summary(), file=report.source)
