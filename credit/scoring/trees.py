"""Boosted trees' log-odds and reason codes: TreeSHAP contributions in points.

A boosted-trees package's probability is the ensemble's (its margin from the raw
input matrix, :meth:`credit.gbdt.Ensemble.margin`: XGBoost's on the exported model to
float32 rounding). A feature's *points lost* is its TreeSHAP contribution to the
margin (:func:`credit.gbdt.contributions`, XGBoost's ``pred_contribs``) in points,
``factor * phi_j``: what the applicant's value costs against the ensemble's expected
margin over the training rows (the contributions' bias). The reasons are the features
that raise the applicant's risk the most, as :func:`credit.gbdt.reason_features` picks
them (a feature with a contribution <= 0 is never a reason).

Every row's values are computed from that row alone (row-wise array arithmetic), so a
row scores the same alone or in any batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from credit.gbdt import BoostedModel, ContributionTables, contributions
from credit.scoring.binning import Columns

__all__ = ["TreeScores", "tree_scores"]


@dataclass(frozen=True, eq=False)  # holds arrays: compared by identity
class TreeScores:
    """Rows' margins and points lost per feature.

    Attributes
    ----------
    log_odds : numpy.ndarray of float64, shape (n,)
        The ensemble's margin per row.
    losses : numpy.ndarray of float64, shape (n, F)
        ``factor * contribution`` per row and feature (the encoder's feature order).
    """

    log_odds: NDArray[np.float64]
    losses: NDArray[np.float64]


def tree_scores(
    model: BoostedModel,
    columns: Columns,
    *,
    factor: float,
    tables: ContributionTables | None = None,
) -> TreeScores:
    """Margins and points lost of validated rows (module docstring).

    Parameters
    ----------
    model : BoostedModel
        The package's trees and binned encoder.
    columns : mapping of str to numpy.ndarray
        One array per model input feature (:meth:`FeatureBinner.columns`).
    factor : float
        Points per unit of log-odds (the package's scaling, > 0).
    tables : ContributionTables, optional
        The ensemble's contribution tables (:func:`credit.gbdt.contribution_tables`,
        built once per scorer): the same contributions at a fraction of the cost per
        call; without them, :func:`credit.gbdt.contributions`.
    """
    matrix = model.matrix(columns)
    phi = contributions(model.ensemble, matrix) if tables is None else tables.contributions(matrix)
    losses: NDArray[np.float64] = factor * phi[:, :-1]
    return TreeScores(log_odds=model.ensemble.margin(matrix), losses=losses)
