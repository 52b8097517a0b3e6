"""Split one data set into simulated banks.

Three schemes, each deterministic given its seed:

* ``iid``: a random permutation cut into equal parts;
* ``dirichlet``: label skew; for each class, bank shares are drawn from
  Dirichlet(alpha), so small ``alpha`` gives banks very different default rates and
  sizes (Hsu, Qi and Brown 2019, "Measuring the effects of non-identical data
  distribution for federated visual classification");
* ``column``: one bank per value of a column (e.g. ``EDUCATION``; missing values are
  the value ``missing``), values holding under 2 % of rows merged into one ``other``
  bank.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from credit.datasets import embedded_data_path
from credit.errors import ConfigError
from credit.loading import load_bank_csv
from credit.schema import load_schema
from simulations.settings import PartitionScheme, PartitionSettings

__all__ = [
    "Partition",
    "PartitionScheme",
    "PartitionedData",
    "partition_data",
    "partition_rows",
]

MINOR_VALUE_SHARE = 0.02
_DIRICHLET_ATTEMPTS = 100


@dataclass(frozen=True)
class Partition:
    """One simulated bank: its name and its row positions in the source frame."""

    name: str
    rows: NDArray[np.int64]


@dataclass(frozen=True, eq=False)
class PartitionedData:
    """A validated data set and its split into simulated banks."""

    frame: pd.DataFrame
    data_path: Path
    schema_path: Path | None
    partitions: list[Partition]


def partition_data(
    settings: PartitionSettings, *, n_banks: int, schema_file: str, seed: int
) -> PartitionedData:
    """Validate the data file against its schema and split it as ``settings`` say.

    Parameters
    ----------
    settings : PartitionSettings
        The data file and the split.
    n_banks : int
        Banks for ``iid`` and ``dirichlet``.
    schema_file : str
        The dataset schema ('' = the embedded one).
    seed : int
        Seeds the split.

    Raises
    ------
    credit.errors.SchemaError
        The data file breaks the schema (names file, column and row).
    ConfigError
        The partition settings cannot be met.
    """
    schema_path = Path(schema_file) if schema_file else None
    schema = load_schema(schema_path)
    data_path = Path(settings.data) if settings.data else embedded_data_path()
    frame = load_bank_csv(data_path, schema).frame
    partitions = partition_rows(
        frame,
        target=schema.target,
        scheme=settings.partition,
        n_banks=n_banks,
        seed=seed,
        alpha=settings.alpha,
        column=settings.partition_column,
        min_rows=schema.min_rows,
    )
    return PartitionedData(
        frame=frame, data_path=data_path, schema_path=schema_path, partitions=partitions
    )


def partition_rows(
    frame: pd.DataFrame,
    *,
    target: str,
    scheme: PartitionScheme,
    n_banks: int = 5,
    seed: int = 0,
    alpha: float = 0.5,
    column: str | None = None,
    min_rows: int = 50,
) -> list[Partition]:
    """Assign every row of ``frame`` to exactly one simulated bank.

    Parameters
    ----------
    frame : pandas.DataFrame
        Validated rows.
    target : str
        Target column (used by the Dirichlet label skew).
    scheme : PartitionScheme
        ``iid``, ``dirichlet`` or ``column``.
    n_banks : int, default 5
        Number of banks for ``iid`` and ``dirichlet``; ``column`` derives it.
    seed : int, default 0
        Seed of the permutation / Dirichlet draws.
    alpha : float, default 0.5
        Dirichlet concentration, > 0; smaller is more skewed.
    column : str, optional
        Column to split by, required for ``column``.
    min_rows : int, default 50
        Every bank must receive at least this many rows.

    Raises
    ------
    ConfigError
        A parameter is out of range or no split meets ``min_rows``.
    """
    if n_banks < 1:
        raise ConfigError(f"must be >= 1; got {n_banks}", source="--banks")
    rng = np.random.default_rng(seed)
    if scheme is PartitionScheme.IID:
        parts = np.array_split(rng.permutation(len(frame)), n_banks)
        partitions = [Partition(f"bank-{i + 1}", np.sort(p)) for i, p in enumerate(parts)]
    elif scheme is PartitionScheme.DIRICHLET:
        partitions = _dirichlet(frame[target].to_numpy(), n_banks, alpha, rng, min_rows)
    else:
        partitions = _by_column(frame, column)
    small = [p for p in partitions if p.rows.size < min_rows]
    if small:
        raise ConfigError(
            f"bank '{small[0].name}' would get {small[0].rows.size} rows, fewer than the "
            f"schema's minimum of {min_rows}; use fewer banks",
            source="--banks",
        )
    return partitions


def _dirichlet(
    labels: NDArray[np.generic], n_banks: int, alpha: float, rng: np.random.Generator, min_rows: int
) -> list[Partition]:
    if not alpha > 0:
        raise ConfigError(f"must be > 0; got {alpha}", source="--alpha")
    for _ in range(_DIRICHLET_ATTEMPTS):
        assigned: list[list[NDArray[np.int64]]] = [[] for _ in range(n_banks)]
        for value in np.unique(labels):
            rows = rng.permutation(np.flatnonzero(labels == value))
            shares = rng.dirichlet(np.full(n_banks, alpha))
            cuts = (np.cumsum(shares)[:-1] * rows.size).astype(np.int64)
            for bank, part in enumerate(np.split(rows, cuts)):
                assigned[bank].append(part)
        sizes = [sum(p.size for p in parts) for parts in assigned]
        if min(sizes) >= min_rows:
            return [
                Partition(f"bank-{i + 1}", np.sort(np.concatenate(parts)))
                for i, parts in enumerate(assigned)
            ]
    raise ConfigError(
        f"no Dirichlet(alpha={alpha}) split in {_DIRICHLET_ATTEMPTS} draws gave every bank "
        f"{min_rows} rows; raise --alpha or use fewer banks",
        source="--alpha",
    )


def _by_column(frame: pd.DataFrame, column: str | None) -> list[Partition]:
    """One bank per value of ``column``; missing values (NaN) are one more value,
    ``missing``; values under :data:`MINOR_VALUE_SHARE` of the rows merge into ``other``."""
    if column is None:
        raise ConfigError("--partition column needs --partition-column NAME", source="--partition")
    if column not in frame.columns:
        raise ConfigError(f"no column '{column}' in the data", source="--partition-column")
    values = frame[column].to_numpy()
    missing = np.asarray(pd.isna(values), dtype=bool)
    levels = np.unique(values[~missing])
    groups = [(_level_text(level), ~missing & (values == level)) for level in levels]
    groups.append(("missing", missing))
    partitions, minor = [], np.zeros(values.size, dtype=bool)
    for name, rows in groups:
        if rows.sum() / values.size >= MINOR_VALUE_SHARE:
            partitions.append(Partition(f"{column}={name}", np.flatnonzero(rows).astype(np.int64)))
        else:
            minor |= rows
    if minor.any():
        partitions.append(Partition(f"{column}=other", np.flatnonzero(minor).astype(np.int64)))
    return partitions


def _level_text(level: object) -> str:
    """A value as a bank name shows it: ``2`` for an integer level held as the float 2.0."""
    if isinstance(level, float | np.floating) and float(level).is_integer():
        return str(int(level))
    return str(level)
