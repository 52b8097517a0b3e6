"""The bin layout of one feature, shared by every per-bin statistic of issue 14.

For each model input its bins are, in this order: the regular bins (a numeric
feature's intervals ``(-inf, e0), [e0, e1), ..., [e_last, inf)`` from its interior
edges, as ``np.searchsorted(edges, value, side="right")`` bins values; a categorical
feature's declared levels), one bin per special code (schema order), then one
``missing`` bin if the schema allows missing values. Statistics take counts laid out
this way together with a :class:`BinLayout`, so they work with any encoder that can
say how many regular bins it has and what the bins are called.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from itertools import pairwise

import numpy as np

from credit.encoding import MISSING_LABEL

__all__ = ["MISSING_LABEL", "BinKind", "BinLayout", "interval_labels"]


class BinKind(StrEnum):
    """The three kinds of bins, in layout order."""

    REGULAR = "regular"
    SPECIAL = "special"
    MISSING = "missing"


def interval_labels(edge_labels: Sequence[str]) -> tuple[str, ...]:
    """Labels of the intervals that interior edges cut the line into.

    ``("a", "b")`` gives ``("(-inf, a)", "[a, b)", "[b, inf)")``: left-closed, as
    ``np.searchsorted(edges, value, side="right")`` bins values.
    """
    bounds = ["-inf", *edge_labels, "inf"]
    return tuple(
        f"{'(' if index == 0 else '['}{low}, {high})"
        for index, (low, high) in enumerate(pairwise(bounds))
    )


@dataclass(frozen=True)
class BinLayout:
    """One feature's bins: regular, then special codes, then an optional missing bin.

    Build it with :meth:`numeric` or :meth:`categorical` (or directly, for labels an
    encoder already has).

    Attributes
    ----------
    feature : str
        The feature (column) name; errors name it.
    regular_labels : tuple of str
        One label per regular bin (at least one).
    special_labels : tuple of str, default ()
        One label per special code, in schema order.
    has_missing : bool, default False
        Whether the last bin holds missing values (label :data:`MISSING_LABEL`).
    edges : tuple of float, optional
        A numeric feature's interior edges, strictly increasing, in the space the
        values are binned in (one fewer than the regular bins). ``None`` for a
        categorical feature, whose levels have no order and are never merged.
    edge_labels : tuple of str, optional
        How each edge reads in a label (e.g. in raw units when ``edges`` are in
        transformed space); required with ``edges``. Merged bins are relabelled
        from them with :func:`interval_labels`.
    """

    feature: str
    regular_labels: tuple[str, ...]
    special_labels: tuple[str, ...] = ()
    has_missing: bool = False
    edges: tuple[float, ...] | None = None
    edge_labels: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        for name in ("regular_labels", "special_labels", "edges", "edge_labels"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, tuple(value))
        where = f"feature '{self.feature}'"
        if not self.regular_labels:
            raise ValueError(f"{where}: a layout needs at least one regular bin")
        if (self.edges is None) != (self.edge_labels is None):
            raise ValueError(f"{where}: give edges and edge_labels together, or neither")
        if self.edges is not None and self.edge_labels is not None:
            edges = np.asarray(self.edges, dtype=np.float64)
            if not (np.all(np.isfinite(edges)) and np.all(np.diff(edges) > 0)):
                raise ValueError(
                    f"{where}: edges must be finite and strictly increasing; got {self.edges}"
                )
            if len(self.edge_labels) != edges.size or len(self.regular_labels) != edges.size + 1:
                raise ValueError(
                    f"{where}: {edges.size} edges need {edges.size} edge labels and "
                    f"{edges.size + 1} regular bins; got {len(self.edge_labels)} and "
                    f"{len(self.regular_labels)}"
                )
        labels = self.labels
        duplicated = sorted({label for label in labels if labels.count(label) > 1})
        if duplicated:
            raise ValueError(f"{where}: bin labels must be unique; repeated: {duplicated}")

    @classmethod
    def numeric(
        cls,
        feature: str,
        edges: Sequence[float],
        *,
        edge_labels: Sequence[str] | None = None,
        special_labels: Sequence[str] = (),
        has_missing: bool = False,
    ) -> BinLayout:
        """A numeric feature's layout from its interior edges.

        Parameters
        ----------
        feature : str
            The feature name.
        edges : sequence of float
            Interior edges, strictly increasing; ``len(edges) + 1`` regular bins.
        edge_labels : sequence of str, optional
            How each edge reads in a label; by default the edge with 6 significant
            digits (``f"{edge:.6g}"``).
        special_labels : sequence of str, default ()
            One label per special code.
        has_missing : bool, default False
            Whether the layout ends with a missing bin.
        """
        values = tuple(float(edge) for edge in edges)
        texts = tuple(edge_labels) if edge_labels is not None else tuple(f"{e:.6g}" for e in values)
        return cls(
            feature=feature,
            regular_labels=interval_labels(texts),
            special_labels=tuple(special_labels),
            has_missing=has_missing,
            edges=values,
            edge_labels=texts,
        )

    @classmethod
    def categorical(
        cls, feature: str, levels: Sequence[object], *, has_missing: bool = False
    ) -> BinLayout:
        """A categorical feature's layout: one regular bin per declared level."""
        return cls(
            feature=feature,
            regular_labels=tuple(str(level) for level in levels),
            has_missing=has_missing,
        )

    @property
    def n_regular(self) -> int:
        """Number of regular bins."""
        return len(self.regular_labels)

    @property
    def n_bins(self) -> int:
        """Number of bins of every kind."""
        return self.n_regular + len(self.special_labels) + int(self.has_missing)

    @property
    def labels(self) -> tuple[str, ...]:
        """Every bin's label, in layout order."""
        missing = (MISSING_LABEL,) if self.has_missing else ()
        return (*self.regular_labels, *self.special_labels, *missing)

    @property
    def kinds(self) -> tuple[BinKind, ...]:
        """Every bin's kind, in layout order."""
        return (
            (BinKind.REGULAR,) * self.n_regular
            + (BinKind.SPECIAL,) * len(self.special_labels)
            + (BinKind.MISSING,) * int(self.has_missing)
        )
