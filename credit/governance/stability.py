"""Population and characteristic stability (PSI, CSI) from summed bin counts.

Each bank counts its rows per fixed public bin (:func:`population_counts`): the score bins
for the population stability index (PSI) of the score, the bin layout of a
characteristic for its characteristic stability index (CSI, the same formula). The
counts add up exactly over banks, so the coordinator compares the development
sample ("expected") with a later one ("actual") for one bank or the consortium
(:func:`stability_report`) without seeing a row.

``PSI = sum_i (a_i - e_i) ln(a_i / e_i)`` over the shares ``e_i``, ``a_i`` of the two
samples in bin ``i``. Empty bins: a bin empty in both samples adds nothing (and does
not count as a bin below); a share of zero in one sample only is replaced by
:data:`EMPTY_SHARE` (1e-4, the floor common credit-risk PSI implementations use), as
the logarithm is undefined otherwise.

Levels follow the conventional thresholds: below 0.1 stable, 0.1 to 0.25 monitor,
0.25 and above shift. Small samples reach these thresholds by chance alone: with no
drift, PSI is approximately ``(1/n + 1/m) chi2(B - 1)`` distributed (``n``, ``m``
the sample sizes, ``B`` the bins occupied in either sample; Yurdakul 2018,
"Statistical properties of the population stability index", Western Michigan
University). Drift is therefore flagged only when PSI reaches the conventional
monitor threshold **and** exceeds the critical value ``(1/n + 1/m)
chi2_q(B - 1)`` (``q`` = 0.99 by default), so a small bank is not flagged for noise.

Noise. Under differential privacy the summed counts are real numbers, possibly
negative; :meth:`PopulationCounts.settled` (applied by :func:`stability_report`) clips them
at zero after summing over banks, never at a bank. DP noise moves PSI as sampling
does, so the drift flag must not read it as drift either: given each bin count's noise
variance (``v_e``, ``v_a``: the banks' Gaussian noise, summed), the share difference of bin
``i`` has variance ``p_i (1/n + 1/m) + v_e,i / n^2 + v_a,i / m^2``, so PSI ~ ``(1/n + 1/m)
chi2(B - 1) + sum_i u_i chi2(1)`` with ``u_i = (v_e,i / n^2 + v_a,i / m^2) / p_i``, and the
critical value is the ``q`` quantile of that sum by the Welch-Satterthwaite
approximation (a scaled chi-square with the same mean and variance:
:func:`noisy_critical_value`); without noise it is exactly ``(1/n + 1/m) chi2_q(B - 1)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import scipy.stats
from numpy.typing import NDArray

from credit.summing import sum_of

__all__ = [
    "DEFAULT_QUANTILE",
    "EMPTY_SHARE",
    "MONITOR_THRESHOLD",
    "NULL_DRAWS",
    "SHIFT_THRESHOLD",
    "STABILITY_SENSITIVITY",
    "PopulationCounts",
    "StabilityLevel",
    "StabilityResult",
    "characteristic_stability",
    "noisy_critical_value",
    "population_counts",
    "population_from_vector",
    "population_stability_index",
    "population_vector",
    "psi_critical_value",
    "stability_level",
    "stability_report",
]

MONITOR_THRESHOLD = 0.1
SHIFT_THRESHOLD = 0.25
DEFAULT_QUANTILE = 0.99
EMPTY_SHARE = 1e-4
"""The share that replaces a zero share in one sample (the other sample has rows there)."""
STABILITY_SENSITIVITY = 1.0
"""L2 sensitivity of :meth:`PopulationCounts.to_vector`: one row adds 1 to one bin."""


class StabilityLevel(StrEnum):
    """The conventional reading of a PSI value."""

    STABLE = "stable"
    MONITOR = "monitor"
    SHIFT = "shift"


@dataclass(frozen=True)
class PopulationCounts:
    """Rows per bin of one sample at one bank (or summed over banks).

    Attributes
    ----------
    counts : numpy.ndarray
        One entry per bin; whole numbers at a bank, real numbers once a bank added noise.
    """

    counts: NDArray[np.float64]

    def __post_init__(self) -> None:
        if self.counts.ndim != 1 or self.counts.size < 1:
            raise ValueError(f"bin counts must be a non-empty 1-D array; got {self.counts.shape}")

    @property
    def n_bins(self) -> int:
        """Number of bins."""
        return int(self.counts.size)

    def to_vector(self) -> NDArray[np.float64]:
        """The counts, one entry per bin."""
        return np.asarray(self.counts, dtype=np.float64).copy()

    @classmethod
    def from_vector(cls, vector: NDArray[np.floating], n_bins: int) -> PopulationCounts:
        """Inverse of :meth:`to_vector` for ``n_bins`` bins."""
        values = np.array(vector, dtype=np.float64)
        if values.shape != (n_bins,):
            raise ValueError(
                f"a bin-count vector of {n_bins} bins has {n_bins} entries; "
                f"got shape {values.shape}"
            )
        return cls(values)

    def __add__(self, other: PopulationCounts) -> PopulationCounts:
        if self.n_bins != other.n_bins:
            raise ValueError(f"bin counts have different bins: {self.n_bins} vs {other.n_bins}")
        return PopulationCounts(self.counts + other.counts)

    @classmethod
    def combine(cls, parts: Sequence[PopulationCounts]) -> PopulationCounts:
        """Sum the bin counts of several banks."""
        return sum_of(parts, what="bin counts")

    def settled(self) -> PopulationCounts:
        """Summed (possibly noisy) counts clipped at zero; exact counts pass unchanged.

        Call this on the sum over banks, never on one bank's noisy counts.
        """
        return PopulationCounts(np.clip(self.counts, 0.0, None))


def population_counts(bin_indices: NDArray[np.integer], n_bins: int) -> PopulationCounts:
    """One bank's rows per bin (bank side), from each row's bin index in [0, n_bins)."""
    indices = np.asarray(bin_indices)
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1; got {n_bins}")
    if indices.ndim != 1 or not np.issubdtype(indices.dtype, np.integer):
        raise ValueError(f"bin indices must be a 1-D integer array; got {indices.dtype}")
    if indices.size and (indices.min() < 0 or indices.max() >= n_bins):
        raise ValueError(
            f"bin indices must lie in [0, {n_bins}); got {indices.min()} to {indices.max()}"
        )
    return PopulationCounts(np.bincount(indices, minlength=n_bins).astype(np.float64))


def population_vector(
    counts: Mapping[str, PopulationCounts], names: Sequence[str]
) -> NDArray[np.float64]:
    """Several characteristics' counts as one vector, in the order of ``names``."""
    parts = [counts[name].to_vector() for name in names]
    return np.concatenate(parts) if parts else np.zeros(0)


def population_from_vector(
    vector: NDArray[np.floating], n_bins: Mapping[str, int]
) -> dict[str, PopulationCounts]:
    """Inverse of :func:`population_vector`: characteristics with ``n_bins`` bins, in order."""
    values = np.asarray(vector, dtype=np.float64)
    total = sum(n_bins.values())
    if values.shape != (total,):
        raise ValueError(
            f"a bin-count vector of {len(n_bins)} characteristics has {total} entries; "
            f"got shape {values.shape}"
        )
    starts = np.cumsum([0, *n_bins.values()])
    return {
        name: PopulationCounts.from_vector(values[start : start + size], size)
        for (name, size), start in zip(n_bins.items(), starts, strict=False)
    }


def _shares(counts: NDArray[np.float64], sample: str) -> NDArray[np.float64]:
    total = counts.sum()
    if total < 0.5:
        raise ValueError(f"the {sample} sample holds no rows: PSI is undefined")
    return np.asarray(counts / total, dtype=np.float64)


def population_stability_index(
    expected: PopulationCounts, actual: PopulationCounts, *, empty_share: float = EMPTY_SHARE
) -> float:
    """PSI of ``actual`` against ``expected`` over the same bins (counts settled first).

    ``sum_i (a_i - e_i) ln(a_i / e_i)`` on shares; a bin empty in both samples adds
    nothing, a zero share in one sample is replaced by ``empty_share``.

    Raises
    ------
    ValueError
        The samples have different bins, or one holds no rows.
    """
    if expected.n_bins != actual.n_bins:
        raise ValueError(
            f"expected and actual samples have different bins: {expected.n_bins} vs {actual.n_bins}"
        )
    if not 0.0 < empty_share < 1.0:
        raise ValueError(f"empty_share must lie in (0, 1); got {empty_share}")
    expected_share = _shares(expected.settled().counts, "expected")
    actual_share = _shares(actual.settled().counts, "actual")
    occupied = (expected_share > 0) | (actual_share > 0)
    e = np.where(expected_share > 0, expected_share, empty_share)[occupied]
    a = np.where(actual_share > 0, actual_share, empty_share)[occupied]
    return float(((a - e) * np.log(a / e)).sum())


def stability_level(psi: float) -> StabilityLevel:
    """Stable below 0.1, monitor from 0.1 to below 0.25, shift from 0.25."""
    if psi >= SHIFT_THRESHOLD:
        return StabilityLevel.SHIFT
    if psi >= MONITOR_THRESHOLD:
        return StabilityLevel.MONITOR
    return StabilityLevel.STABLE


def psi_critical_value(
    expected_rows: float, actual_rows: float, bins: int, quantile: float = DEFAULT_QUANTILE
) -> float:
    """The critical value ``(1/n + 1/m) chi2_quantile(bins - 1)`` of PSI under no drift.

    With no drift, PSI exceeds it with probability about ``1 - quantile``. Zero when
    ``bins`` is 1 (PSI is then 0).
    """
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile must lie in (0, 1); got {quantile}")
    if expected_rows <= 0 or actual_rows <= 0:
        raise ValueError(f"sample sizes must be > 0; got {expected_rows} and {actual_rows}")
    if bins < 2:
        return 0.0
    chi2 = float(scipy.stats.chi2.ppf(quantile, bins - 1))
    return (1.0 / expected_rows + 1.0 / actual_rows) * chi2


NULL_DRAWS = 2_000
"""Draws of the simulated no-drift distribution of PSI under DP noise."""


def noisy_critical_value(
    expected_share: NDArray[np.float64],
    expected_rows: float,
    actual_rows: float,
    *,
    expected_variance: NDArray[np.float64],
    actual_variance: NDArray[np.float64],
    quantile: float = DEFAULT_QUANTILE,
    draws: int = NULL_DRAWS,
    seed: int = 0,
) -> float:
    """The critical value of PSI under no drift when the counts carry DP noise.

    The ``quantile`` of PSI over ``draws`` simulated pairs of samples with no drift:
    ``n`` and ``m`` rows drawn from ``expected_share`` (multinomial), each count with
    Gaussian noise of its variance, clipped at zero as the real counts are, compared
    by :func:`population_stability_index`'s formula.

    Parameters
    ----------
    expected_share : numpy.ndarray
        The development shares of the bins (summing to 1).
    expected_rows, actual_rows : float
        ``n`` and ``m``, > 0 (rounded to whole rows for the draws).
    expected_variance, actual_variance : numpy.ndarray
        Each bin's count noise variance in either sample (0: exact counts).
    quantile : float, default 0.99
        ``q``, in (0, 1).
    draws : int, default 2,000
        Simulated samples.
    seed : int, default 0
        Seeds the simulation (a test statistic, nothing private: the same inputs give
        the same critical value).

    Notes
    -----
    Simulated rather than approximated: with noise of the size DP needs on bins of
    a few hundred rows, PSI's logarithm is far from its quadratic approximation and a
    scaled chi-square underestimates the tail several-fold.
    """
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile must lie in (0, 1); got {quantile}")
    if expected_rows <= 0 or actual_rows <= 0:
        raise ValueError(f"sample sizes must be > 0; got {expected_rows} and {actual_rows}")
    share = np.clip(np.asarray(expected_share, dtype=np.float64), 0.0, None)
    share = share / share.sum()
    rng = np.random.default_rng(seed)
    samples = []
    for rows, variance in ((expected_rows, expected_variance), (actual_rows, actual_variance)):
        counts = rng.multinomial(max(1, round(rows)), share, size=draws).astype(np.float64)
        noise = rng.standard_normal(counts.shape) * np.sqrt(np.asarray(variance))
        samples.append(np.clip(counts + noise, 0.0, None))
    psi = _psi_rows(samples[0], samples[1])
    return float(np.quantile(psi, quantile))


def _psi_rows(expected: NDArray[np.float64], actual: NDArray[np.float64]) -> NDArray[np.float64]:
    """:func:`population_stability_index` of each row pair (rows without counts give 0)."""
    e = expected / np.maximum(expected.sum(axis=1, keepdims=True), 1e-12)
    a = actual / np.maximum(actual.sum(axis=1, keepdims=True), 1e-12)
    occupied = (e > 0) | (a > 0)
    e = np.where(e > 0, e, EMPTY_SHARE)
    a = np.where(a > 0, a, EMPTY_SHARE)
    terms = np.where(occupied, (a - e) * np.log(a / e), 0.0)
    result: NDArray[np.float64] = terms.sum(axis=1)
    return result


@dataclass(frozen=True)
class StabilityResult:
    """One comparison of a later sample with the development sample.

    Attributes
    ----------
    psi : float
        Population (or characteristic) stability index.
    level : StabilityLevel
        The conventional reading of ``psi``.
    critical_value : float
        ``(1/n + 1/m) chi2_q(B - 1)`` (with DP noise: :func:`noisy_critical_value`):
        what PSI exceeds by chance with probability ``1 - q`` when nothing drifted.
    drift : bool
        ``psi >= 0.1`` and ``psi > critical_value``: drift that sample noise does not
        explain.
    expected_rows, actual_rows : float
        ``n`` and ``m``, the settled sample sizes.
    bins : int
        ``B``, the bins occupied in either sample.
    """

    psi: float
    level: StabilityLevel
    critical_value: float
    drift: bool
    expected_rows: float
    actual_rows: float
    bins: int

    def as_dict(self) -> dict[str, float | int | bool | str]:
        """Plain dictionary for JSON."""
        return {**self.__dict__, "level": self.level.value}


def stability_report(
    expected: PopulationCounts,
    actual: PopulationCounts,
    *,
    quantile: float = DEFAULT_QUANTILE,
    expected_variance: NDArray[np.float64] | None = None,
    actual_variance: NDArray[np.float64] | None = None,
) -> StabilityResult:
    """PSI, its level and the sample-size-aware drift flag (coordinator side).

    Both count vectors (summed over banks) are settled first. ``expected_variance``
    and ``actual_variance`` (one entry per bin; None: exact counts) are the DP noise
    variances of the counts, which the critical value then allows for
    (:func:`noisy_critical_value`).
    """
    expected, actual = expected.settled(), actual.settled()
    psi = population_stability_index(expected, actual)
    n, m = float(expected.counts.sum()), float(actual.counts.sum())
    occupied = (expected.counts > 0) | (actual.counts > 0)
    bins = int(occupied.sum())
    if expected_variance is None and actual_variance is None:
        critical = psi_critical_value(n, m, bins, quantile)
    else:
        zeros = np.zeros(expected.n_bins)
        critical = noisy_critical_value(
            expected.counts / n,
            n,
            m,
            expected_variance=zeros if expected_variance is None else expected_variance,
            actual_variance=zeros if actual_variance is None else actual_variance,
            quantile=quantile,
        )
    return StabilityResult(
        psi=psi,
        level=stability_level(psi),
        critical_value=critical,
        drift=psi >= MONITOR_THRESHOLD and psi > critical,
        expected_rows=n,
        actual_rows=m,
        bins=bins,
    )


def characteristic_stability(
    expected: Mapping[str, PopulationCounts],
    actual: Mapping[str, PopulationCounts],
    *,
    quantile: float = DEFAULT_QUANTILE,
) -> dict[str, StabilityResult]:
    """CSI of every characteristic: :func:`stability_report` per name, in ``expected``'s order."""
    if expected.keys() != actual.keys():
        raise ValueError(
            "the samples count different characteristics: "
            f"{sorted(expected.keys() ^ actual.keys())}"
        )
    return {
        name: stability_report(counts, actual[name], quantile=quantile)
        for name, counts in expected.items()
    }
