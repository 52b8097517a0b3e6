"""``fedcredit participant check``: validate and profile a bank's data file, locally.

The file is validated by :func:`credit.loading.load_bank_csv` against the
consortium's schema (the same check the bank's SuperNode makes before every run),
then summarised column by column. Nothing is sent anywhere: this is for the bank's
own eyes, to fix its export before joining.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from credit.loading import BankData, load_bank_csv
from credit.schema import DatasetSchema, load_schema

__all__ = ["ColumnProfile", "DataProfile", "profile_bank_data", "resolve_schema"]


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
        Empty cells (validation refuses NaN, so 0 for every checked column).
    summary : str
        ``min … max`` for numbers, ``k of K levels`` for categoricals, the distinct
        count for the id.
    """

    name: str
    kind: str
    missing: int
    summary: str


@dataclass(frozen=True)
class DataProfile:
    """What ``participant check`` prints: rows, default rate, one line per column."""

    source: Path
    rows: int
    default_rate: float
    columns: tuple[ColumnProfile, ...]
    warnings: tuple[str, ...]


def resolve_schema(path: Path | None) -> DatasetSchema:
    """The schema from a TOML file or a bundle folder; the embedded schema when None."""
    if path is not None and path.is_dir():
        path = path / "schema.toml"
    return load_schema(path)


def profile_bank_data(data: Path, schema: DatasetSchema) -> DataProfile:
    """Validate ``data`` against ``schema`` and profile it.

    Raises
    ------
    SchemaError
        The file breaks the schema (the loader's one-line message).
    """
    bank = load_bank_csv(data, schema)
    return DataProfile(
        source=bank.source,
        rows=bank.n_rows,
        default_rate=float(bank.frame[schema.target].mean()) if bank.n_rows else 0.0,
        columns=tuple(_columns(bank, schema)),
        warnings=bank.warnings,
    )


def _columns(bank: BankData, schema: DatasetSchema) -> list[ColumnProfile]:
    frame = bank.frame
    profiles = []
    if schema.id_column:
        ids = frame[schema.id_column]
        profiles.append(
            ColumnProfile(
                schema.id_column, "id", int(ids.isna().sum()), f"{ids.nunique()} distinct"
            )
        )
    for numeric in schema.numeric:
        values = frame[numeric.name].to_numpy(dtype=float)
        summary = f"{np.min(values):.6g} … {np.max(values):.6g}" if values.size else "-"
        profiles.append(
            ColumnProfile(
                numeric.name,
                "integer" if numeric.integer else "numeric",
                int(np.isnan(values).sum()),
                summary,
            )
        )
    for categorical in schema.categorical:
        column = frame[categorical.name]
        seen = sorted(column.dropna().unique().tolist(), key=str)
        shown = ", ".join(str(level) for level in seen[:8]) + (" …" if len(seen) > 8 else "")
        profiles.append(
            ColumnProfile(
                categorical.name,
                "categorical",
                int(column.isna().sum()),
                f"{len(seen)} of {len(categorical.levels)} levels: {shown}",
            )
        )
    target = frame[schema.target]
    profiles.append(
        ColumnProfile(
            schema.target, "target", int(target.isna().sum()), f"{int(target.sum())} defaults"
        )
    )
    return profiles
