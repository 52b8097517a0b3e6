"""Drift at the bank: the scored applicants' bins against the development sample's.

The service counts, per model input, the bin of every applicant it scores (the
scorer returns each row's bins) and the applicant's score bin (equal-width bins of
the probability, :func:`credit.metrics.score_bin_index`), on the package's stability
layout. :class:`DriftMonitor` compares these counts with the development counts stored
in the package (``scoring.json``) by
:func:`credit.governance.stability_release.compare_populations`: the same PSI (score),
CSI (characteristics), levels and sample-size-aware drift flag as ``fedcredit monitor``.
Under privacy budgets the development counts carry the banks' DP noise; the package
stores its variance per bin and the flag's critical value allows for it
(:func:`~credit.governance.stability.noisy_critical_value`), as ``fedcredit monitor
--run`` does (the service simulates it only where PSI reaches 0.1, the only place it
can change a flag: :meth:`DriftBaseline.flag_comparison`). The applicants' counts are
exact.

Nothing leaves the bank: the counts live in the service's memory, the comparison
reaches only its log (a WARNING line when a characteristic becomes flagged, once per
crossing, an INFO line when it is no longer) and ``/metrics``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from credit.governance.stability import DEFAULT_QUANTILE, MONITOR_THRESHOLD
from credit.governance.stability_release import (
    SCORE,
    NoiseVariances,
    PopulationComparison,
    StabilityCounts,
    StabilityLayout,
    compare_populations,
    stability_counts,
)
from credit.metrics import score_bin_index
from credit.package import ModelPackage
from credit.scoring import Scorer

__all__ = [
    "DEFAULT_DRIFT_EVERY",
    "DEFAULT_DRIFT_MIN_ROWS",
    "FILE_CHUNK_ROWS",
    "DriftBaseline",
    "DriftMonitor",
    "DriftStatus",
    "drift_baseline",
    "file_comparison",
    "sample_counts",
]

DEFAULT_DRIFT_EVERY = 100
"""Scoring requests between two comparisons (a ``/metrics`` scrape also compares)."""
DEFAULT_DRIFT_MIN_ROWS = 1_000
"""Applicants counted before the first comparison: with fewer, many bins are empty and
PSI's empty-bin floor (:data:`~credit.governance.stability.EMPTY_SHARE`) inflates it
beyond what its chi-square critical value allows for."""
FILE_CHUNK_ROWS = 50_000
"""Rows scored at a time by :func:`file_comparison`."""

logger = logging.getLogger("fedcredit.serve.drift")


@dataclass(frozen=True)
class DriftBaseline:
    """The development sample a package carries: its layout, counts and their noise.

    Attributes
    ----------
    layout : StabilityLayout
        The model's characteristics and bins, and the run's score bins.
    counts : StabilityCounts
        The development sample's rows per bin (the counts the run released).
    noise : NoiseVariances or None, default None
        The DP noise variance of ``counts`` per bin (None: exact counts).
    """

    layout: StabilityLayout
    counts: StabilityCounts
    noise: NoiseVariances | None = None

    def compare(
        self, actual: StabilityCounts, *, quantile: float = DEFAULT_QUANTILE
    ) -> PopulationComparison:
        """Exact later counts against these (noisy) development counts."""
        return compare_populations(
            self.counts, actual, quantile=quantile, expected_noise=self.noise
        )

    def flag_comparison(
        self, actual: StabilityCounts, *, quantile: float = DEFAULT_QUANTILE
    ) -> PopulationComparison:
        """:meth:`compare`'s PSI and flags, simulating the noise only where it can matter.

        A PSI below the monitor level (0.1) is never flagged, whatever the critical
        value; there the critical value is the exact counts' one and the simulation of
        :func:`~credit.governance.stability.noisy_critical_value` (a few milliseconds
        per characteristic) is skipped. Every flag, and the critical value of every
        name at or above the level, is :meth:`compare`'s.
        """
        exact = compare_populations(self.counts, actual, quantile=quantile)
        names = [name for name, result in exact.results.items() if result.psi >= MONITOR_THRESHOLD]
        if self.noise is None or not names:
            return exact
        noisy = compare_populations(
            StabilityCounts({name: self.counts.populations[name] for name in names}),
            StabilityCounts({name: actual.populations[name] for name in names}),
            quantile=quantile,
            expected_noise={name: self.noise[name] for name in names},
        )
        return PopulationComparison(
            results={**exact.results, **noisy.results},
            expected=exact.expected,
            actual=exact.actual,
        )


def drift_baseline(package: ModelPackage) -> DriftBaseline | None:
    """The package's development sample, or None (``scoring.development_missing`` says why)."""
    development = package.scoring.development
    if development is None:
        return None
    return DriftBaseline(
        layout=development.layout(), counts=development.counts(), noise=development.noise()
    )


def sample_counts(
    bins: Mapping[str, NDArray[np.integer]],
    probability: NDArray[np.floating],
    layout: StabilityLayout,
) -> StabilityCounts:
    """The counts of scored rows: each row's bin per characteristic and its score bin."""
    return stability_counts(bins, score_bin_index(probability, layout.score_bins), layout)


@dataclass(frozen=True)
class DriftStatus:
    """The latest comparison of the scored applicants with the development sample.

    Attributes
    ----------
    comparison : PopulationComparison
        PSI of the score and CSI of every characteristic.
    rows : int
        Applicants counted.
    """

    comparison: PopulationComparison
    rows: int

    @property
    def psi(self) -> dict[str, float]:
        """PSI / CSI by name (characteristics, then :data:`SCORE`)."""
        return {name: result.psi for name, result in self.comparison.results.items()}

    @property
    def drift(self) -> dict[str, bool]:
        """The drift flag by name."""
        return {name: result.drift for name, result in self.comparison.results.items()}


class DriftMonitor:
    """The scored applicants' counts and their comparison with the development sample.

    Thread-safe: the service may score in worker threads.

    Parameters
    ----------
    baseline : DriftBaseline
        The package's development sample.
    every : int, default 100
        Compare after this many scoring requests (>= 1).
    min_rows : int, default 100
        Applicants to count before the first comparison (>= 1).
    quantile : float, default 0.99
        The drift flag's quantile, in (0, 1), as ``fedcredit monitor --quantile``.
    """

    def __init__(
        self,
        baseline: DriftBaseline,
        *,
        every: int = DEFAULT_DRIFT_EVERY,
        min_rows: int = DEFAULT_DRIFT_MIN_ROWS,
        quantile: float = DEFAULT_QUANTILE,
    ) -> None:
        if every < 1:
            raise ValueError(f"every must be >= 1; got {every}")
        if min_rows < 1:
            raise ValueError(f"min_rows must be >= 1; got {min_rows}")
        if not 0.0 < quantile < 1.0:
            raise ValueError(f"quantile must lie in (0, 1); got {quantile}")
        self.baseline = baseline
        self.every = every
        self.min_rows = min_rows
        self.quantile = quantile
        self._lock = threading.Lock()  # the counts
        self._checking = threading.Lock()  # one comparison at a time
        self._counts = {
            name: np.zeros(size, dtype=np.int64) for name, size in baseline.layout.n_bins.items()
        }
        self._rows = 0
        self._requests = 0
        self._flagged: set[str] = set()
        self._status: DriftStatus | None = None

    @property
    def rows(self) -> int:
        """Applicants counted so far."""
        return self._rows

    def add(
        self,
        bins: Mapping[str, NDArray[np.integer]],
        probability: NDArray[np.floating],
        *,
        requests: int = 1,
    ) -> bool:
        """Count scored rows (of ``requests`` requests); whether a comparison is due now."""
        counts = sample_counts(bins, probability, self.baseline.layout)
        with self._lock:
            for name, population in counts.populations.items():
                self._counts[name] += population.counts.astype(np.int64)
            self._rows += int(np.asarray(probability).size)
            due = (self._requests + requests) // self.every > self._requests // self.every
            self._requests += requests
            return due

    def check(self) -> DriftStatus | None:
        """Compare the counts with the development sample; log each new crossing.

        Returns None until :attr:`min_rows` applicants are counted. Comparisons run one
        at a time; counting goes on meanwhile.
        """
        with self._checking:
            with self._lock:
                if self._rows < self.min_rows:
                    return None
                counts = [self._counts[name] for name in self._counts]
                later = StabilityCounts.from_vector(
                    np.concatenate(counts).astype(np.float64), self.baseline.layout
                )
                rows = self._rows
            comparison = self.baseline.flag_comparison(later, quantile=self.quantile)
            status = DriftStatus(comparison=comparison, rows=rows)
            self._log_crossings(status)
            self._status = status
            return status

    @property
    def status(self) -> DriftStatus | None:
        """The latest comparison (None before the first)."""
        return self._status

    def _log_crossings(self, status: DriftStatus) -> None:
        flagged = {name for name, drift in status.drift.items() if drift}
        for name in sorted(flagged - self._flagged, key=_score_first):
            result = status.comparison.results[name]
            index = "PSI" if name == SCORE else "CSI"
            logger.warning(
                "drift: %s %s %.4f (%s) above the no-drift critical value %.4f, "
                "%d applicants scored against %.0f development rows",
                name,
                index,
                result.psi,
                result.level.value,
                result.critical_value,
                status.rows,
                result.expected_rows,
            )
        for name in sorted(self._flagged - flagged, key=_score_first):
            result = status.comparison.results[name]
            logger.info("drift: %s back within the no-drift range (%.4f)", name, result.psi)
        self._flagged = flagged


def _score_first(name: str) -> tuple[bool, str]:
    return name != SCORE, name


def file_comparison(
    scorer: Scorer,
    baseline: DriftBaseline,
    frame: pd.DataFrame,
    *,
    quantile: float = DEFAULT_QUANTILE,
) -> PopulationComparison:
    """A file of applicants against the package's development sample (``fedcredit monitor
    --model``): the same counts and comparison as the service's, for the whole file,
    scored :data:`FILE_CHUNK_ROWS` rows at a time.

    Parameters
    ----------
    scorer : Scorer
        The package's scorer.
    baseline : DriftBaseline
        The package's development sample (:func:`drift_baseline`).
    frame : pandas.DataFrame
        The file's validated rows (:func:`credit.scoring.check_applicants`), at least one.
    quantile : float, default 0.99
        The drift flag's quantile.

    Raises
    ------
    ValueError
        ``frame`` holds no rows.
    """
    if frame.empty:
        raise ValueError("the file holds no rows to compare")
    parts = []
    for start in range(0, len(frame), FILE_CHUNK_ROWS):
        scored = scorer.score(frame.iloc[start : start + FILE_CHUNK_ROWS])
        parts.append(sample_counts(scored.bins, scored.probability, baseline.layout))
    counts = parts[0]
    for part in parts[1:]:
        counts = counts + part
    return baseline.compare(counts, quantile=quantile)
