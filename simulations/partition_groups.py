"""A simulated bank's rows, and the rows of each value of a column.

Shared by the schemes fedcredit implements itself (:mod:`simulations.partition`) and
those it takes from ``flwr-datasets`` (:mod:`simulations.flower_partitions`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from credit.errors import ConfigError

__all__ = ["MINOR_VALUE_SHARE", "Partition", "value_codes", "value_groups"]

MINOR_VALUE_SHARE = 0.02
"""Values of a column holding under this share of the rows merge into one ``other`` group."""


@dataclass(frozen=True)
class Partition:
    """One simulated bank: its name and its row positions in the source frame."""

    name: str
    rows: NDArray[np.int64]


def value_groups(frame: pd.DataFrame, column: str | None, *, merge_rare: bool) -> list[Partition]:
    """The rows of each value of ``column``, named ``COLUMN=value``.

    Values in ascending order, then missing values (NaN) as one more value ``missing``
    (:func:`value_codes`). With ``merge_rare``, values holding under
    :data:`MINOR_VALUE_SHARE` of the rows merge into one last group ``other``. Every row
    is in exactly one group; a group's rows are in frame order.

    Raises
    ------
    ConfigError
        ``column`` is None or not in ``frame`` (names ``--partition-column``).
    """
    codes, names = value_codes(frame, column)
    partitions, minor = [], np.zeros(codes.size, dtype=bool)
    for code, name in enumerate(names):
        rows = codes == code
        if not rows.any() or (merge_rare and rows.sum() / codes.size < MINOR_VALUE_SHARE):
            minor |= rows
        else:
            partitions.append(Partition(f"{column}={name}", np.flatnonzero(rows).astype(np.int64)))
    if minor.any():
        partitions.append(Partition(f"{column}=other", np.flatnonzero(minor).astype(np.int64)))
    return partitions


def value_codes(frame: pd.DataFrame, column: str | None) -> tuple[NDArray[np.int64], list[str]]:
    """Each row's value of ``column`` as a code, and each code's name.

    Code ``k`` is the k-th smallest value; missing values (NaN) take the last code,
    named ``missing`` (present even when no value is missing). A value's name is its
    text, ``2`` for the float 2.0.

    Raises
    ------
    ConfigError
        ``column`` is None or not in ``frame`` (names ``--partition-column``).
    """
    if column is None:
        raise ConfigError("this partition needs --partition-column NAME", source="--partition")
    if column not in frame.columns:
        raise ConfigError(f"no column '{column}' in the data", source="--partition-column")
    values = frame[column].to_numpy()
    missing = np.asarray(pd.isna(values), dtype=bool)
    levels = np.unique(values[~missing])
    codes = np.full(values.size, levels.size, dtype=np.int64)
    codes[~missing] = np.searchsorted(levels, values[~missing])
    return codes, [*(_level_text(level) for level in levels), "missing"]


def _level_text(level: object) -> str:
    """A value as a bank name shows it: ``2`` for an integer level held as the float 2.0."""
    if isinstance(level, float | np.floating) and float(level).is_integer():
        return str(int(level))
    return str(level)
