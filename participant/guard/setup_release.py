"""The bank's set-up release under a budget: noisy per-class counts, grids on coarse cells.

A run whose encoder is fitted from federated statistics asks each bank for its
training rows' counts per class (events: default rows; non-events) over every model
input's cells (:mod:`credit.feature_stats`): a numeric input's cells of the
coordinator's grid (default 1,024 cells between the schema's public bounds), one per
special code and a missing cell; a categorical input's levels and a missing cell. A
bank under a privacy budget releases:

1. Each numeric input's grid cells merged, class by class, into at most ``max_bins``
   runs of consecutive cells (:func:`~credit.feature_stats.coarse_cells`; the bank's
   :class:`~participant.guard.settings.SetupReleasePolicy`, whatever grid the
   coordinator asks for); special-code, missing and level cells as they are.
2. Gaussian noise of standard deviation ``z * sqrt(F)`` added to every count of
   every class, F being the number of model inputs (numeric and categorical):
   adding or removing one record moves exactly one count of one class in each
   feature (its grid cell, special code, missing cell or level), so the L2
   sensitivity of the release is sqrt(F) and this is the Gaussian mechanism with
   noise multiplier ``z`` (Mironov, CSF 2017, Proposition 7: RDP alpha / (2 z^2)),
   recorded as one ``gaussian-release`` event (q = 1, one step).
3. Each noisy coarse count spread evenly over its grid cells, so the reply keeps the
   coordinator's grid; the count, sum and sum of squares are derived from the
   class-summed histogram through the cells' centres
   (:func:`~credit.feature_stats.numeric_from_cells`). Step 3 is post-processing
   and costs nothing more.

Nothing is clipped at the bank: a noisy count may be negative. The coordinator clips
only the banks' sum (:func:`~credit.feature_stats.settle_noisy`, and per bin for the
WoE tables), so the banks' noise in empty cells cancels instead of adding up to a
positive bias.

Fewer cells, same noise per cell: with 64 cells instead of 1,024, each count sums 16
grid cells' rows, so the release's signal-to-noise ratio is 16 times higher at the
same epsilon. Splitting the counts by class leaves the sensitivity as it was (a row
is in one class) but puts two noisy counts where one was: the class-summed histogram
the encoder's edges come from has twice the noise variance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from credit.feature_stats import (
    ClassCells,
    FeatureStats,
    coarse_cells,
    grid_edges,
    merge_cells,
    numeric_from_cells,
    spread_cells,
)
from credit.schema import DatasetSchema
from privacy.accounting import MAX_NOISE_MULTIPLIER, DpEvent
from privacy.noise import SecureGaussian

__all__ = ["Shortfall", "noisy_stats", "setup_event"]


def setup_event(run: str, noise_multiplier: float, features: int) -> DpEvent:
    """The set-up release of F = ``features`` inputs: one Gaussian release, sensitivity sqrt(F)."""
    return DpEvent(
        round=0,
        noise_multiplier=noise_multiplier,
        sample_rate=1.0,
        steps=1,
        max_grad_norm=math.sqrt(features),
        kind="gaussian-release",
        run=run,
    )


def noisy_stats(
    stats: FeatureStats,
    schema: DatasetSchema,
    *,
    release: DpEvent,
    max_bins: int,
    noise: SecureGaussian,
) -> FeatureStats:
    """The bank's exact ``stats`` released as ``release`` says (module docstring).

    Parameters
    ----------
    stats : FeatureStats
        The bank's exact statistics on the coordinator's grid.
    schema : DatasetSchema
        The run's schema (its public bounds give the grid's cell centres).
    release : DpEvent
        The charged set-up release: noise standard deviation
        ``noise_multiplier * max_grad_norm`` on each coarse count.
    max_bins : int
        Most coarse cells per numeric input and class.
    noise : privacy.noise.SecureGaussian
        The noise source.

    Returns
    -------
    FeatureStats
        Noisy counts (a numeric input's grid constant over each coarse cell, not
        clipped), moments derived from them.
    """
    bounds = coarse_cells(stats.grid_bins, max_bins)
    deviation = release.noise_multiplier * release.max_grad_norm
    by_name = {feature.name: feature for feature in schema.numeric}
    numeric = {}
    for name, exact in stats.numeric.items():
        cells = ClassCells(
            events=_noisy_grid(exact.cells.events, bounds, deviation, noise),
            non_events=_noisy_grid(exact.cells.non_events, bounds, deviation, noise),
            regular=exact.cells.regular,
        )
        numeric[name] = numeric_from_cells(cells, grid_edges(by_name[name], stats.grid_bins))
    categorical = {
        name: ClassCells(
            events=_noisy(cells.events, deviation, noise),
            non_events=_noisy(cells.non_events, deviation, noise),
            regular=cells.regular,
        )
        for name, cells in stats.categorical.items()
    }
    return FeatureStats(numeric=numeric, categorical=categorical, grid_bins=stats.grid_bins)


def _noisy(
    counts: NDArray[np.float64], deviation: float, noise: SecureGaussian
) -> NDArray[np.float64]:
    """Every count with its own Gaussian noise."""
    noisy: NDArray[np.float64] = counts + noise.standard_normal(counts.size) * deviation
    return noisy


def _noisy_grid(
    counts: NDArray[np.float64],
    bounds: NDArray[np.int64],
    deviation: float,
    noise: SecureGaussian,
) -> NDArray[np.float64]:
    """One class of a numeric input: the grid noised on coarse cells, then spread; the
    special-code and missing cells noised as they are."""
    grid_bins = int(bounds[-1])
    coarse = _noisy(merge_cells(counts[:grid_bins], bounds), deviation, noise)
    extra = _noisy(counts[grid_bins:], deviation, noise)
    return np.concatenate([spread_cells(coarse, bounds), extra])


@dataclass(frozen=True, kw_only=True)
class Shortfall:
    """What a run that fits its bank's budget at no noise multiplier would cost at least.

    Attributes
    ----------
    maximum, spent : float
        The bank's max epsilon and its spend before the run (training rows).
    least : float
        The least the run would take the spend to: its set-up release and every
        planned round at the largest noise multiplier, after what is spent.
    one_round : float
        One round of DP-SGD alone at the largest noise multiplier.
    planned_rounds : int
        The run's planned rounds.
    setup : float or None
        The set-up release alone (calibrated to its share, or at the largest noise
        multiplier when even that passes the share); None for a run without one.
    share : float
        The set-up release's share of the budget, in epsilon.
    """

    maximum: float
    spent: float
    least: float
    one_round: float
    planned_rounds: int
    setup: float | None
    share: float

    def text(self) -> str:
        """One line: what the set-up release and one round cost at least, and what to do."""
        most = f"at noise multiplier {MAX_NOISE_MULTIPLIER:g}"
        text = f"max epsilon {self.maximum:g} cannot pay for "
        if self.setup is not None and self.setup <= self.share:
            text += f"the set-up release (epsilon {self.setup:.2g}, its share) and "
        elif self.setup is not None:
            text += (
                f"the set-up release (epsilon ≥ {self.setup:.2g} {most}; its share is "
                f"{self.share:.2g}) and "
            )
        text += f"one round of DP-SGD (epsilon ≥ {self.one_round:.2g} {most})"
        if self.spent > 0 or self.planned_rounds > 1:
            rounds = f"all {self.planned_rounds} planned rounds"
            run = rounds if self.setup is None else f"the set-up and {rounds}"
            after = f" after {self.spent:.2g} spent" if self.spent > 0 else ""
            text += f"; {run}{after}: epsilon ≥ {self.least:.2g}"
        if self.setup is None:
            return text + ": raise the budget or plan fewer rounds"
        if self.setup > self.share:
            return text + (
                ": raise the budget or the bank's set-up share, or use public feature statistics"
            )
        return text + ": raise the budget or plan fewer rounds, or use public feature statistics"
