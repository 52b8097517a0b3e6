"""How much DP noise the stability counts carry, bin by bin.

A bank with a budget adds Gaussian noise to each count it releases; the drift flag must
not read that noise as drift (:func:`~credit.governance.stability.noisy_critical_value`).
A monitoring run (``fedcredit monitor --run``) allows for both samples' noise; a model
package stores its development counts' (:mod:`credit.package.settings`), which the
bank's scoring service and ``fedcredit monitor --model`` allow for.

The variances follow from the events the banks' ledger summaries report (public
parameters: noise multiplier and sensitivity) and from how each release lays its noise:

* the later counts (:func:`later_noise`): each bank's ``stability-release`` of the
  monitoring run adds noise of variance ``(z s)^2`` to every count;
* the development characteristics (:func:`development_noise`): each bank's set-up
  release (``gaussian-release``) adds noise of standard deviation ``z s`` to each
  class's count of a coarse run of grid cells, spread evenly over its cells
  (:mod:`participant.guard.setup_release`); a numeric regular bin covering the fraction
  ``f_c`` of coarse cell ``c`` then holds noise of variance ``2 (z s)^2 sum_c f_c^2`` (two
  classes), computed with the most coarse cells a bank's policy allows (64: the upper
  bound, as a bin overlaps more, smaller cells); special-code, missing and categorical
  bins are noised cell by cell: ``2 (z s)^2``;
* the development score histograms: each bank's evaluation release of the final model
  adds ``(z s)^2`` to each class's count of a bin: ``2 (z s)^2``.

Variances of several banks add up. A bank without a budget adds nothing.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from credit.encoding import FeatureEncoder
from credit.feature_stats import coarse_cells, grid_edges
from credit.governance.stability_release import SCORE, NoiseVariances, StabilityLayout
from credit.messages import LedgerEvent, LedgerSummary
from credit.metrics import EVALUATION_SENSITIVITY
from credit.schema import DatasetSchema

__all__ = ["MOST_COARSE_CELLS", "development_noise", "later_noise"]

MOST_COARSE_CELLS = 64
"""The most coarse cells per numeric input a bank's set-up release policy allows."""


def later_noise(
    privacy: Mapping[str, LedgerSummary], run: str, layout: StabilityLayout
) -> NoiseVariances | None:
    """The later counts' noise variance per bin (None: no bank added noise)."""
    total = sum(
        _variance(event)
        for summary in privacy.values()
        for event in summary.events
        if event.kind == "stability-release" and event.run == run
    )
    if not total:
        return None
    return {name: np.full(size, float(total)) for name, size in layout.n_bins.items()}


def development_noise(
    privacy: Mapping[str, Any],
    layout: StabilityLayout,
    encoder: FeatureEncoder,
    schema: DatasetSchema,
    grid_bins: int,
) -> NoiseVariances | None:
    """The development counts' noise variance per bin, from the run's ledger summaries.

    Parameters
    ----------
    privacy : mapping
        The development run's ``metrics.json`` ``privacy`` section: each bank's ledger
        summary as the run ended (:meth:`~credit.messages.LedgerSummary.document`).
        Each bank's last set-up release and last evaluation release of its ledger are
        the run's (the final evaluation and the set-up release are a run's last of
        their kinds).
    layout : StabilityLayout
        The run's model's characteristics' bins and its score bins.
    encoder : FeatureEncoder
        The run's model's encoder (its numeric bins' edges).
    schema : DatasetSchema
        The run's schema (its numeric features' grids).
    grid_bins : int
        The run's ``grid-bins``: the set-up release's grid cells per numeric input.

    Returns
    -------
    dict of str to numpy.ndarray or None
        Per characteristic and :data:`SCORE`, each bin's noise variance; None when no
        bank added noise.
    """
    setup = evaluation = 0.0
    for bank, raw in privacy.items():
        summary = LedgerSummary.from_document(bank, raw)
        setup += _last(summary, lambda e: e.kind == "gaussian-release")
        evaluation += _last(
            summary,
            lambda e: (
                e.kind == "evaluation-release"
                and bool(np.isclose(e.max_grad_norm, EVALUATION_SENSITIVITY))
            ),
        )
    if not setup and not evaluation:
        return None
    numeric = {feature.name: feature for feature in schema.numeric}
    noise: dict[str, NDArray[np.float64]] = {}
    for encoding in encoder.numeric:
        edges = grid_edges(numeric[encoding.name], grid_bins)
        regular = _regular_weights(np.asarray(encoding.edges), edges, grid_bins)
        extra = np.ones(layout.n_bins[encoding.name] - regular.size)
        noise[encoding.name] = 2.0 * setup * np.concatenate([regular, extra])
    for categorical in encoder.categorical:
        noise[categorical.name] = np.full(layout.n_bins[categorical.name], 2.0 * setup)
    noise[SCORE] = np.full(layout.score_bins, 2.0 * evaluation)
    return noise


def _regular_weights(
    edges: NDArray[np.float64], grid: NDArray[np.float64], grid_bins: int
) -> NDArray[np.float64]:
    """``sum_c f_c^2`` per regular bin: the bin's share ``f_c`` of each coarse cell."""
    cuts = np.concatenate([[0], np.searchsorted(grid, edges), [grid_bins]]).astype(np.int64)
    bounds = coarse_cells(grid_bins, MOST_COARSE_CELLS)
    sizes = np.diff(bounds)
    cell_of = np.repeat(np.arange(sizes.size), sizes)
    weights = []
    for low, high in itertools.pairwise(cuts):
        covered = np.bincount(cell_of[low:high], minlength=sizes.size) / sizes
        weights.append(float(np.square(covered).sum()))
    return np.array(weights)


def _last(summary: LedgerSummary, wanted: Callable[[LedgerEvent], bool]) -> float:
    """The variance of the summary's last event ``wanted`` accepts (0: none)."""
    chosen = [event for event in summary.events if wanted(event)]
    return _variance(chosen[-1]) if chosen else 0.0


def _variance(event: LedgerEvent) -> float:
    return float((event.noise_multiplier * event.max_grad_norm) ** 2)
