"""The stability release: a bank's population counts of a later file, in one vector.

Stability monitoring compares a later file of applications with the development
sample on the development model's own public bins (:mod:`credit.governance.stability`
computes PSI and CSI from the counts). :class:`StabilityLayout` fixes what a bank's
vector holds, derived from the run's model alone: each model input's bins as the
model's encoder lays them out (:meth:`~credit.encoding.FeatureEncoder.bin_indices`:
regular, special and missing bins) and the run's equal-width score bins on [0, 1]
(:func:`~credit.metrics.score_bin_index`). Bank and coordinator, holding the same
model, derive the same layout, so a bank can refuse a request whose layout differs
from its own (:meth:`StabilityLayout.digest`).

A bank turns its later file into :class:`StabilityCounts` (:func:`stability_counts`,
from each row's bins) and adds :func:`stability_vector` to a sum over banks; the
coordinator reads the sum back (:func:`stability_from_sum`) and compares it with the
development counts (:func:`compare_populations`).

Development counts, consortium-wide, are the ones a run released already (no new
release about the development rows, :func:`development_counts`): each
characteristic's per-bin (events + non-events) of the summed set-up release over the
banks' training rows (``metrics.json`` ``woe_iv``), and the final model's summed
score histograms over the banks' held-out rows (``score_histograms``).

Sensitivity. One later-file row adds 1 to one bin of each of the F characteristics
and to one score bin: the L2 sensitivity of the counts is ``sqrt(F + 1)``
(:attr:`StabilityLayout.sensitivity`). Noisy sums are settled (clipped at zero) after
summing over banks, by :func:`~credit.governance.stability.stability_report`.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from credit.encoding import EncodingKind, FeatureEncoder
from credit.governance.stability import (
    DEFAULT_QUANTILE,
    PopulationCounts,
    StabilityResult,
    population_counts,
    stability_report,
)
from credit.summing import counted, uncounted

__all__ = [
    "SCORE",
    "NoiseVariances",
    "PopulationComparison",
    "StabilityCounts",
    "StabilityLayout",
    "compare_populations",
    "development_counts",
    "stability_counts",
    "stability_from_sum",
    "stability_vector",
]

SCORE = "score"
"""The score's name in reports (no model input may be called so)."""


@dataclass(frozen=True)
class StabilityLayout:
    """What a stability vector holds.

    Attributes
    ----------
    characteristics : tuple of (str, tuple of str)
        Each model input feature and its bins' labels, in the encoder's order.
    score_bins : int
        Equal-width score bins on [0, 1] (the run's ``score-bins``), >= 2.
    """

    characteristics: tuple[tuple[str, tuple[str, ...]], ...]
    score_bins: int

    def __post_init__(self) -> None:
        if self.score_bins < 2:
            raise ValueError(f"score_bins must be >= 2; got {self.score_bins}")
        names = [name for name, _ in self.characteristics]
        if SCORE in names or len(set(names)) != len(names):
            raise ValueError(f"characteristic names must be unique and not '{SCORE}'; got {names}")
        empty = [name for name, labels in self.characteristics if not labels]
        if empty:
            raise ValueError(f"characteristics without bins: {empty}")

    @classmethod
    def of(cls, encoder: FeatureEncoder, score_bins: int) -> StabilityLayout:
        """The layout of a model's encoder and its run's score bins.

        Raises
        ------
        ValueError
            A standardised encoder: its numeric inputs have no bins to compare.
        """
        if encoder.kind is EncodingKind.STANDARDIZED and encoder.numeric:
            raise ValueError(
                "the model's encoder is standardised: its numeric characteristics have no "
                "development bins (train with --encoding binned or woe to monitor stability)"
            )
        return cls(
            characteristics=tuple((name, encoder.bin_labels(name)) for name in encoder.features),
            score_bins=score_bins,
        )

    @property
    def n_bins(self) -> dict[str, int]:
        """Bins per characteristic, then the score's (key :data:`SCORE`)."""
        return {
            **{name: len(labels) for name, labels in self.characteristics},
            SCORE: self.score_bins,
        }

    @property
    def length(self) -> int:
        """Entries of a bank's counts: every characteristic's bins and the score's."""
        return sum(self.n_bins.values())

    @property
    def sensitivity(self) -> float:
        """L2 sensitivity of a bank's counts: ``sqrt(F + 1)`` (module docstring)."""
        return math.sqrt(len(self.characteristics) + 1)

    def labels(self, name: str) -> tuple[str, ...]:
        """The bins' labels of a characteristic, or the score's intervals."""
        if name == SCORE:
            width = 1.0 / self.score_bins
            return tuple(
                f"[{k * width:.4g}, {(k + 1) * width:.4g})" for k in range(self.score_bins)
            )
        return dict(self.characteristics)[name]

    def digest(self) -> str:
        """SHA-256 of the layout (names, labels, score bins): what both sides compare."""
        canonical = json.dumps(
            {"characteristics": self.characteristics, "score_bins": self.score_bins},
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class StabilityCounts:
    """Rows per bin of one sample: every characteristic's and the score's.

    Attributes
    ----------
    populations : dict of str to PopulationCounts
        Keyed by characteristic in layout order, then :data:`SCORE`.
    """

    populations: Mapping[str, PopulationCounts]

    def to_vector(self) -> NDArray[np.float64]:
        """The counts in layout order, one entry per bin."""
        return np.concatenate([counts.to_vector() for counts in self.populations.values()])

    @classmethod
    def from_vector(cls, vector: NDArray[np.floating], layout: StabilityLayout) -> StabilityCounts:
        """Inverse of :meth:`to_vector` for ``layout``."""
        values = np.asarray(vector, dtype=np.float64)
        if values.shape != (layout.length,):
            raise ValueError(
                f"a stability vector of this layout has {layout.length} entries; "
                f"got shape {values.shape}"
            )
        starts = np.cumsum([0, *layout.n_bins.values()])
        return cls(
            {
                name: PopulationCounts(values[start : start + size].copy())
                for (name, size), start in zip(layout.n_bins.items(), starts, strict=False)
            }
        )

    def __add__(self, other: StabilityCounts) -> StabilityCounts:
        if self.populations.keys() != other.populations.keys():
            raise ValueError("stability counts of different layouts cannot be added")
        return StabilityCounts(
            {name: counts + other.populations[name] for name, counts in self.populations.items()}
        )


def stability_counts(
    bins: Mapping[str, NDArray[np.integer]],
    score_bins: NDArray[np.integer],
    layout: StabilityLayout,
) -> StabilityCounts:
    """One sample's counts (bank side) from each row's bin per characteristic and its score bin.

    Parameters
    ----------
    bins : mapping of str to numpy.ndarray of int
        Each characteristic's bin per row (:meth:`FeatureEncoder.bin_indices`).
    score_bins : numpy.ndarray of int
        Each row's score bin (:func:`~credit.metrics.score_bin_index`).
    layout : StabilityLayout
        The layout the counts follow.

    Raises
    ------
    ValueError
        A characteristic of the layout is missing, or an index lies outside its bins.
    """
    missing = [name for name, _ in layout.characteristics if name not in bins]
    if missing:
        raise ValueError(f"no bins given for characteristics {missing}")
    sizes = layout.n_bins
    populations = {
        name: population_counts(np.asarray(bins[name]), sizes[name])
        for name, _ in layout.characteristics
    }
    populations[SCORE] = population_counts(np.asarray(score_bins), layout.score_bins)
    return StabilityCounts(populations)


def stability_vector(
    counts: StabilityCounts | None, layout: StabilityLayout
) -> NDArray[np.float64]:
    """What a bank adds to the sum: ``[counts, 1]``, or zeros when it releases nothing."""
    values = None if counts is None else counts.to_vector()
    if values is not None and values.size != layout.length:
        raise ValueError(f"the counts have {values.size} entries, not the layout's {layout.length}")
    return counted(values, layout.length)


def stability_from_sum(
    total: NDArray[np.floating], layout: StabilityLayout
) -> tuple[StabilityCounts | None, int]:
    """The summed counts and how many banks they hold (None: no bank's)."""
    values = np.asarray(total, dtype=np.float64)
    if values.shape != (layout.length + 1,):
        raise ValueError(
            f"a summed stability vector has {layout.length + 1} entries; got shape {values.shape}"
        )
    summed, banks = uncounted(values)
    return (None if summed is None else StabilityCounts.from_vector(summed, layout)), banks


def development_counts(
    woe_iv: Mapping[str, Any], score_histograms: Mapping[str, Any], layout: StabilityLayout
) -> StabilityCounts:
    """The consortium's development counts from a run's ``metrics.json`` (module docstring).

    Parameters
    ----------
    woe_iv : mapping
        ``metrics.json``'s ``woe_iv``: per characteristic, ``bins`` with ``bin``,
        ``events`` and ``non_events``.
    score_histograms : mapping
        ``metrics.json``'s ``score_histograms``: ``defaulters`` and ``non_defaulters``
        per score bin.
    layout : StabilityLayout
        The model's layout; every characteristic's bins must be the tables'.

    Raises
    ------
    ValueError
        A characteristic without a table, a table with other bins than the model's, or
        histograms with another number of bins (what differs is named).
    """
    populations = {}
    for name, labels in layout.characteristics:
        table = woe_iv.get(name)
        if not isinstance(table, Mapping) or not isinstance(table.get("bins"), list):
            raise ValueError(f"woe_iv has no table of characteristic '{name}'")
        rows = table["bins"]
        found = tuple(str(row["bin"]) for row in rows)
        if found != labels:
            raise ValueError(
                f"woe_iv's bins of '{name}' {list(found)} are not the model's {list(labels)}"
            )
        populations[name] = PopulationCounts(
            np.array([float(row["events"]) + float(row["non_events"]) for row in rows])
        )
    defaulters = np.asarray(score_histograms.get("defaulters", []), dtype=np.float64)
    non_defaulters = np.asarray(score_histograms.get("non_defaulters", []), dtype=np.float64)
    if defaulters.shape != (layout.score_bins,) or non_defaulters.shape != defaulters.shape:
        raise ValueError(
            f"score_histograms have {defaulters.size} bins, not the run's {layout.score_bins}"
        )
    populations[SCORE] = PopulationCounts(defaulters + non_defaulters)
    return StabilityCounts(populations)


@dataclass(frozen=True)
class PopulationComparison:
    """A later sample against the development sample: score PSI and every CSI.

    Attributes
    ----------
    results : dict of str to StabilityResult
        Per characteristic (CSI) in layout order, then :data:`SCORE` (PSI).
    expected, actual : StabilityCounts
        The settled counts compared.
    """

    results: Mapping[str, StabilityResult]
    expected: StabilityCounts
    actual: StabilityCounts

    @property
    def score(self) -> StabilityResult:
        """The score's PSI."""
        return self.results[SCORE]

    def drifted(self) -> list[str]:
        """The names (characteristics, :data:`SCORE`) flagged as drift, layout order."""
        return [name for name, result in self.results.items() if result.drift]

    def document(self, layout: StabilityLayout) -> dict[str, Any]:
        """``stability.json``'s form: ``score``, ``characteristics`` (each with a ``table``)."""
        entries = {name: self._entry(name, layout) for name in self.results}
        return {
            "score": entries.pop(SCORE),
            "characteristics": entries,
            "drifted": self.drifted(),
        }

    def _entry(self, name: str, layout: StabilityLayout) -> dict[str, Any]:
        expected = self.expected.populations[name].counts
        actual = self.actual.populations[name].counts
        e_share = expected / max(expected.sum(), 1e-12)
        a_share = actual / max(actual.sum(), 1e-12)
        bins = [
            {
                "bin": label,
                "expected": float(e),
                "actual": float(a),
                "expected_share": float(es),
                "actual_share": float(as_),
            }
            for label, e, a, es, as_ in zip(
                layout.labels(name), expected, actual, e_share, a_share, strict=True
            )
        ]
        return {**self.results[name].as_dict(), "table": bins}


NoiseVariances = Mapping[str, NDArray[np.float64]]
"""Each characteristic's (and the score's) per-bin count noise variance (DP noise, summed)."""


def compare_populations(
    expected: StabilityCounts,
    actual: StabilityCounts,
    *,
    quantile: float = DEFAULT_QUANTILE,
    expected_noise: NoiseVariances | None = None,
    actual_noise: NoiseVariances | None = None,
) -> PopulationComparison:
    """PSI of the score and CSI of every characteristic, both samples settled first.

    ``expected_noise`` and ``actual_noise`` (None: exact counts) give the drift flag
    the counts' DP noise to allow for
    (:func:`~credit.governance.stability.noisy_critical_value`).

    Raises
    ------
    ValueError
        The samples have different layouts, or one holds no rows.
    """
    if expected.populations.keys() != actual.populations.keys():
        raise ValueError("the development and later counts have different layouts")
    settled_expected = {k: v.settled() for k, v in expected.populations.items()}
    settled_actual = {k: v.settled() for k, v in actual.populations.items()}
    results = {
        name: stability_report(
            counts,
            settled_actual[name],
            quantile=quantile,
            expected_variance=None if expected_noise is None else expected_noise[name],
            actual_variance=None if actual_noise is None else actual_noise[name],
        )
        for name, counts in settled_expected.items()
    }
    return PopulationComparison(
        results=results,
        expected=StabilityCounts(settled_expected),
        actual=StabilityCounts(settled_actual),
    )
