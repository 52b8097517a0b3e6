"""Protected groups: how a protected column's values map to the groups of a fairness report.

A categorical column groups by its declared levels; a numeric column (age) by public
bands, given as interior edges in raw units, each band closed on the left like the
bin layout (``(-inf, 25)``, ``[25, 35)``, ..., ``[55, inf)``; a value equal to an
edge belongs to the band above it). A missing value is its own group,
:data:`MISSING_GROUP`, always the last, so every bank's per-group vector has the same
length whether or not it has missing values.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from credit.encoding import MISSING_LABEL
from credit.schema import CategoricalFeature, DatasetSchema

__all__ = ["MISSING_GROUP", "Grouping", "protected_groupings"]

MISSING_GROUP = MISSING_LABEL
"""The group of a missing value: the label of the bin layout's missing bin."""


@dataclass(frozen=True)
class Grouping:
    """How one protected column's values map to groups.

    Exactly one of ``levels`` (a categorical column's declared levels) and ``edges``
    (a numeric column's public band edges: interior, strictly increasing, raw units)
    is given; a missing value falls in the last group, :data:`MISSING_GROUP`.
    """

    column: str
    levels: tuple[int, ...] | tuple[str, ...] = ()
    edges: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if bool(self.levels) == bool(self.edges):
            raise ValueError(
                f"protected column '{self.column}': give either its levels or its band "
                "edges (not both, not neither)"
            )
        if not np.all(np.isfinite(self.edges)) or list(self.edges) != sorted(set(self.edges)):
            raise ValueError(
                f"protected column '{self.column}': band edges must be finite and strictly "
                f"increasing; got {list(self.edges)}"
            )
        if len(set(self.levels)) != len(self.levels) or MISSING_GROUP in self.levels:
            raise ValueError(
                f"protected column '{self.column}': levels must be distinct and not "
                f"'{MISSING_GROUP}'; got {list(self.levels)}"
            )

    @property
    def labels(self) -> tuple[str, ...]:
        """Group labels: levels as text or bands like ``[25, 35)``, then ``missing``."""
        if self.levels:
            return (*(str(level) for level in self.levels), MISSING_GROUP)
        bounds = ["-inf", *(_edge_text(edge) for edge in self.edges), "inf"]
        bands = [f"({bounds[0]}, {bounds[1]})"]
        bands += [f"[{low}, {high})" for low, high in itertools.pairwise(bounds[1:])]
        return (*bands, MISSING_GROUP)

    @property
    def n_groups(self) -> int:
        """Number of groups, ``missing`` included."""
        return len(self.levels) + 1 if self.levels else len(self.edges) + 2

    def indices(self, values: pd.Series | NDArray[Any]) -> NDArray[np.int64]:
        """The group index of each value (``n_groups - 1`` for a missing value).

        Raises
        ------
        ValueError
            A value is not a declared level of a categorical column.
        """
        series = pd.Series(values)
        missing = series.isna().to_numpy()
        index = np.full(len(series), self.n_groups - 1, dtype=np.int64)
        present = series[~missing]
        if self.edges:
            numbers = present.to_numpy(dtype=np.float64)
            index[~missing] = np.searchsorted(self.edges, numbers, side="right")
            return index
        found = pd.Index(self.levels).get_indexer(pd.Index(present))
        if (found < 0).any():
            unknown = present[found < 0].iloc[0]
            if isinstance(unknown, np.generic):
                unknown = unknown.item()
            raise ValueError(
                f"protected column '{self.column}': {unknown!r} is not one of its levels "
                f"{list(self.levels)}"
            )
        index[~missing] = found
        return index


def protected_groupings(
    schema: DatasetSchema, bands: Mapping[str, Sequence[float]]
) -> tuple[Grouping, ...]:
    """The grouping of each protected column of ``schema``, in schema order.

    Categorical columns group by their declared levels; numeric ones by their public
    band edges in ``bands`` (raw units), which every numeric protected column needs.
    """
    categorical: dict[str, CategoricalFeature] = {f.name: f for f in schema.categorical}
    groupings = []
    for column in schema.protected:
        if column in categorical:
            groupings.append(Grouping(column=column, levels=categorical[column].levels))
        elif column in bands:
            groupings.append(Grouping(column=column, edges=tuple(map(float, bands[column]))))
        else:
            raise ValueError(
                f"numeric protected column '{column}' needs public band edges for the "
                "fairness report (e.g. [25, 35, 45, 55] for ages)"
            )
    return tuple(groupings)


def _edge_text(edge: float) -> str:
    """``25`` for a whole number, ``25.5`` otherwise (never ``1e+06``)."""
    return str(int(edge)) if float(edge).is_integer() else repr(float(edge))
