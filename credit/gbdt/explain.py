"""Explanations: per-applicant feature contributions and feature importance.

Contributions are exact path-dependent TreeSHAP values (Lundberg, Erion & Lee 2018,
"Consistent individualized feature attribution for tree ensembles", Algorithm 2), with
each node's cover (Hessian sum) weighting the paths a feature's absence averages over,
as XGBoost's ``predict(pred_contribs=True)`` computes them: per row, one value per
feature plus a last column for the bias (the expected margin), summing to the margin.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from credit.gbdt.tree import Ensemble

__all__ = ["FeatureImportance", "contributions", "feature_importance"]


@dataclass(frozen=True)
class FeatureImportance:
    """Per feature (the ensemble's feature order): split counts, total gain and cover.

    Attributes
    ----------
    names : tuple of str
    splits : tuple of int
        Internal nodes splitting on the feature (XGBoost's ``weight``).
    total_gain, total_cover : tuple of float
        Sums over those nodes of the loss change and of the Hessian sum (XGBoost's
        ``total_gain``, ``total_cover``; its ``gain`` and ``cover`` are these divided by
        ``splits``).
    """

    names: tuple[str, ...]
    splits: tuple[int, ...]
    total_gain: tuple[float, ...]
    total_cover: tuple[float, ...]


def contributions(ensemble: Ensemble, values: NDArray[np.floating]) -> NDArray[np.float64]:
    """TreeSHAP contributions of rows given as the raw matrix.

    Returns
    -------
    numpy.ndarray of float64, shape (rows, features + 1)
        Per feature its contribution to the margin, last column the bias; each row sums
        to :meth:`Ensemble.margin`.
    """
    raise NotImplementedError


def feature_importance(ensemble: Ensemble) -> FeatureImportance:
    """Split counts, total gain and total cover per feature."""
    raise NotImplementedError
