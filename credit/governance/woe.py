"""Weight of evidence (WoE) and information value (IV) from per-bin outcome counts.

One module owns the statistic end to end. A bank turns one feature's bin indices and
its 0/1 outcomes into per-bin counts (:func:`count_bins`); the coordinator sums the
banks' counts (under secure aggregation, each bank's :meth:`BinCounts.to_vector`
travels inside the secure sum), settles them if they carry DP noise
(:func:`settle_counts`), may merge adjacent regular bins
(:func:`credit.governance.merging.merge_bins`) and computes the table
(:func:`woe_table`). A sum of counts is exactly the count of the pooled rows, so the
table equals a pooled computation on the same bins.

Bins follow the layout of issue 14 (:class:`~credit.governance.bins.BinLayout`): the
regular bins (numeric intervals ``(-inf, e0), [e0, e1), ..., [e_last, inf)`` or
categorical levels), then one bin per special code, then an optional ``missing``
bin. Events are defaults (label 1), non-events repayments (label 0).

Conventions are optbinning's (``BinningTable.build`` in
``optbinning/binning/binning_statistics.py``, optbinning 1.0.0): with ``E_i`` events
and ``N_i`` non-events in bin ``i`` and totals ``E`` and ``N``,

* ``WoE_i = ln((N_i / N) / (E_i / E))`` (optbinning writes it
  ``ln(1 / event_rate_i - 1) + ln(E / N)``): positive WoE means fewer defaults than
  average, i.e. lower risk;
* ``IV_i = (N_i / N - E_i / E) * WoE_i`` (Jeffrey's divergence term, never negative)
  and ``IV = sum_i IV_i``;
* a bin without events or without non-events (empty included) has ``WoE_i = 0`` and
  ``IV_i = 0``, as in optbinning (a logarithm of zero would make them infinite).

The table's event rate is ``E_i / (E_i + N_i)`` for every bin with rows and 0 for an
empty bin; optbinning reports 0 for every bin that lacks either class.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Self

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from credit.class_counts import ClassCounts, halves
from credit.governance.bins import BinLayout
from credit.summing import sum_of

__all__ = [
    "BinCounts",
    "WoeTable",
    "check_settled",
    "combine_counts",
    "count_bins",
    "counts_from_vector",
    "counts_to_vector",
    "settle_counts",
    "woe_table",
]


@dataclass(frozen=True, eq=False)  # holds arrays: compared by identity
class BinCounts(ClassCounts):
    """One feature's per-bin event (default) and non-event counts.

    Whole numbers when exact; real and possibly negative once banks added DP noise
    (settle the sum with :func:`settle_counts` before use).

    Attributes
    ----------
    events, non_events : numpy.ndarray of float64
        Counts per bin, shape ``(layout.n_bins,)``, read-only.
    layout : BinLayout
        What each position means.
    """

    layout: BinLayout

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("events", "non_events"):
            values = getattr(self, name)
            if values.shape != (self.layout.n_bins,):
                raise ValueError(
                    f"feature '{self.layout.feature}': {name} must have one count per bin "
                    f"({self.layout.n_bins}); got shape {values.shape}"
                )
            values.setflags(write=False)

    def _subject(self) -> str:
        return f"feature '{self.layout.feature}'"

    def _check_addable(self, other: Self) -> None:
        if other.layout != self.layout:
            raise ValueError(
                f"feature '{self.layout.feature}': cannot add counts of a different bin "
                f"layout (feature '{other.layout.feature}')"
            )

    @classmethod
    def from_vector(cls, vector: ArrayLike, layout: BinLayout) -> BinCounts:
        """Inverse of :meth:`to_vector` (values kept as they are, noise included)."""
        try:
            events, non_events = halves(vector, layout.n_bins, unit="bins")
        except ValueError as error:
            raise ValueError(f"feature '{layout.feature}': {error}") from None
        return cls(layout=layout, events=events, non_events=non_events)


def counts_to_vector(counts: Sequence[BinCounts]) -> NDArray[np.float64]:
    """Several features' count vectors, concatenated in the given order."""
    if not counts:
        return np.zeros(0)
    return np.concatenate([part.to_vector() for part in counts])


def counts_from_vector(vector: ArrayLike, layouts: Sequence[BinLayout]) -> list[BinCounts]:
    """Inverse of :func:`counts_to_vector` for ``layouts`` (in the same order)."""
    values = np.asarray(vector, dtype=np.float64)
    widths = [2 * layout.n_bins for layout in layouts]
    if values.shape != (sum(widths),):
        features = ", ".join(
            f"'{layout.feature}' ({width})" for layout, width in zip(layouts, widths, strict=True)
        )
        raise ValueError(
            f"a count vector of features {features} has {sum(widths)} entries; "
            f"got shape {values.shape}"
        )
    starts = np.cumsum([0, *widths])
    return [
        BinCounts.from_vector(values[start : start + width], layout)
        for layout, start, width in zip(layouts, starts[:-1], widths, strict=True)
    ]


def count_bins(bin_indices: ArrayLike, labels: ArrayLike, layout: BinLayout) -> BinCounts:
    """One bank's counts for one feature: what the bank adds to the secure sum.

    Parameters
    ----------
    bin_indices : array-like of int, shape (n_rows,)
        Each row's bin, ``0 <= index < layout.n_bins`` (layout order).
    labels : array-like of {0, 1}, shape (n_rows,)
        Each row's outcome: 1 default (event), 0 repaid (non-event).
    layout : BinLayout
        The feature's bins.

    Raises
    ------
    ValueError
        Shapes differ, an index is not an integer or outside the layout, or a label
        is not 0 or 1; the message names the feature and the first offending position.
    """
    indices = np.asarray(bin_indices)
    outcomes = np.asarray(labels)
    where = f"feature '{layout.feature}'"
    if indices.ndim != 1 or outcomes.shape != indices.shape:
        raise ValueError(
            f"{where}: bin indices and labels must be 1-D of one length; "
            f"got shapes {indices.shape} and {outcomes.shape}"
        )
    if indices.size and not np.issubdtype(indices.dtype, np.integer):
        raise ValueError(f"{where}: bin indices must be integers; got dtype {indices.dtype}")
    outside = np.flatnonzero((indices < 0) | (indices >= layout.n_bins))
    if outside.size:
        raise ValueError(
            f"{where}: bin index {indices[outside[0]]} at position {outside[0]} is outside "
            f"0..{layout.n_bins - 1}"
        )
    not_binary = np.flatnonzero((outcomes != 0) & (outcomes != 1))
    if not_binary.size:
        raise ValueError(
            f"{where}: labels must be 0 or 1; got {outcomes[not_binary[0]]} at position "
            f"{not_binary[0]}"
        )
    is_event = outcomes == 1
    return BinCounts(
        layout=layout,
        events=np.bincount(indices[is_event], minlength=layout.n_bins).astype(np.float64),
        non_events=np.bincount(indices[~is_event], minlength=layout.n_bins).astype(np.float64),
    )


def combine_counts(parts: Sequence[BinCounts]) -> BinCounts:
    """Sum banks' counts of one feature; the result equals the pooled rows' counts."""
    return sum_of(parts, what="bin counts")


def settle_counts(counts: BinCounts) -> BinCounts:
    """A summed noisy count made usable: rounded to whole rows and clipped at zero.

    Apply it once, to the consortium's sum, never to a single bank's counts: each
    bank's noise is zero-mean, so the sum stays unbiased where noise cancels, while
    clipping every bank first would add a positive bias per bank in every empty or
    small bin. Rounding is post-processing (it costs no privacy); it turns a
    fraction of a row, which is no evidence, into an empty bin rather than an
    extreme WoE. Exact integer counts come back unchanged.
    """
    for name, values in (("events", counts.events), ("non_events", counts.non_events)):
        if not np.all(np.isfinite(values)):
            raise ValueError(f"feature '{counts.layout.feature}': {name} hold NaN or infinity")
    return counts.with_counts(
        np.clip(np.rint(counts.events), 0.0, None), np.clip(np.rint(counts.non_events), 0.0, None)
    )


@dataclass(frozen=True, eq=False)  # holds arrays: compared by identity
class WoeTable:
    """One feature's WoE/IV table (conventions in the module docstring).

    Attributes
    ----------
    counts : BinCounts
        The settled counts the table was computed from (its layout names the bins).
    event_rate, woe, iv_contribution : numpy.ndarray of float64
        Per bin, in layout order.
    """

    counts: BinCounts
    event_rate: NDArray[np.float64]
    woe: NDArray[np.float64]
    iv_contribution: NDArray[np.float64]

    @property
    def feature(self) -> str:
        """The feature name."""
        return self.counts.layout.feature

    @property
    def labels(self) -> tuple[str, ...]:
        """Every bin's label, in layout order."""
        return self.counts.layout.labels

    @property
    def iv(self) -> float:
        """Total information value of the feature."""
        return float(self.iv_contribution.sum())

    def to_frame(self) -> pd.DataFrame:
        """One row per bin: bin, kind, events, non_events, count, event_rate, woe, iv."""
        return pd.DataFrame(
            {
                "bin": list(self.labels),
                "kind": [kind.value for kind in self.counts.layout.kinds],
                "events": self.counts.events,
                "non_events": self.counts.non_events,
                "count": self.counts.counts,
                "event_rate": self.event_rate,
                "woe": self.woe,
                "iv": self.iv_contribution,
            }
        )

    def to_dict(self) -> dict[str, object]:
        """``{"iv": float, "bins": [{bin, kind, events, ...}, ...]}`` for ``metrics.json``."""
        return {"iv": self.iv, "bins": self.to_frame().to_dict(orient="records")}


def check_settled(counts: BinCounts) -> None:
    """Refuse counts that are not finite and >= 0 (noisy sums must be settled first)."""
    for name, values in (("events", counts.events), ("non_events", counts.non_events)):
        if not np.all(np.isfinite(values) & (values >= 0)):
            raise ValueError(
                f"feature '{counts.layout.feature}': {name} must be finite and >= 0; got "
                f"{values.tolist()} (settle a noisy sum with settle_counts first)"
            )


def woe_table(counts: BinCounts) -> WoeTable:
    """The WoE/IV table of summed (and, if noisy, settled) counts.

    Raises
    ------
    ValueError
        A count is negative or not finite, or the feature has no event or no
        non-event at all (WoE is undefined); the message names the feature.
    """
    check_settled(counts)
    events, non_events = counts.events, counts.non_events
    total_events, total_non_events = float(events.sum()), float(non_events.sum())
    if total_events <= 0 or total_non_events <= 0:
        raise ValueError(
            f"feature '{counts.layout.feature}': WoE needs at least one event and one "
            f"non-event; got {total_events:g} events and {total_non_events:g} non-events"
        )
    rows = counts.counts
    filled = (events > 0) & (non_events > 0)
    event_share = events / total_events
    non_event_share = non_events / total_non_events
    woe = np.zeros(rows.size)
    woe[filled] = np.log(non_event_share[filled] / event_share[filled])
    iv = np.zeros(rows.size)
    iv[filled] = (non_event_share[filled] - event_share[filled]) * woe[filled]
    event_rate = np.divide(events, rows, out=np.zeros(rows.size), where=rows > 0)
    return WoeTable(counts=counts, event_rate=event_rate, woe=woe, iv_contribution=iv)
