"""Reason codes: the features that cost an applicant the most points.

Points are the score's units: ``factor * log-odds`` with ``factor = pdo / ln 2``
(:class:`~credit.governance.scorecard.ScoreScaling`). A feature's *points lost* is
how many points the applicant's value costs against the best value the feature can
take; the reasons are the ``top_k`` features with the largest losses (ties in the
encoder's feature order), and a feature that costs nothing is never a reason.

Three methods, by model:

* a scorecard (logistic regression on WoE inputs): PMML's ``pointsBelow`` with the
  ``max`` baseline on integer points, exactly
  :func:`credit.governance.scorecard.reason_codes` (:func:`scorecard_losses`);
* another logistic regression (binned or standardised inputs): in closed form, the
  feature's log-odds contribution ``x_j . w_j`` minus its lowest attainable one
  (:func:`linear_losses`);
* an MLP: occlusion, ``log-odds(x)`` minus the lowest log-odds over the feature set
  to each value it can take, every other feature kept (:func:`occlusion_losses`).
  For a logistic regression occlusion equals the closed form.

The values a feature can take (:func:`feature_inputs`), in the encoder's input
space: each of its bins (one-hot, or its bin's WoE); a standardised numeric column's
regular values as a grid of :data:`Z_GRID` z-scores across its schema bounds (its
transformed ``[min, max]``, clipped at ``±Z_CLIP``: the closed form is exact at the
grid's ends) plus its special-code and missing bins.

Everything is vectorised over rows; occlusion costs one pass of the layers after the
first per value a feature can take (the first layer's change is added, not recomputed).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from credit.encoding import Z_CLIP, EncodingKind, FeatureEncoder, NumericEncoding
from credit.feature_cells import transform_values
from credit.governance.scorecard import Scorecard
from credit.schema import DatasetSchema, NumericFeature

__all__ = [
    "MIN_POINTS_LOST",
    "Z_GRID",
    "FeatureInputs",
    "ReasonTable",
    "feature_inputs",
    "linear_losses",
    "occlusion_losses",
    "scorecard_losses",
    "top_reasons",
]

Z_GRID = 11
"""Grid points over a standardised column's z-range for occlusion."""
MIN_POINTS_LOST = 1e-9
"""A loss at or below this (floating-point noise) is no reason."""


@dataclass(frozen=True, eq=False)  # holds arrays: compared by identity
class FeatureInputs:
    """A model input feature's columns in the encoded matrix and the values they can take.

    Attributes
    ----------
    name : str
        The feature.
    start, stop : int
        Its columns ``[start, stop)`` of the encoded matrix.
    alternatives : numpy.ndarray of float64, shape (m, stop - start)
        The encoded values the feature can take (module docstring).
    """

    name: str
    start: int
    stop: int
    alternatives: NDArray[np.float64]


@dataclass(frozen=True, eq=False)  # holds arrays: compared by identity
class ReasonTable:
    """Each row's top reasons as arrays.

    Attributes
    ----------
    features : tuple of str
        The features reasons may name (column order of the losses).
    index : numpy.ndarray of int64, shape (n, k)
        Each row's reasons as indices into ``features``, largest loss first; -1 after
        the last reason.
    points_lost : numpy.ndarray of float64, shape (n, k)
        Points lost per reason (0 where there is none).
    text : numpy.ndarray of object, shape (n, k)
        ``"<description>: <the applicant's bin>"`` per reason ('' where none).
    """

    features: tuple[str, ...]
    index: NDArray[np.int64]
    points_lost: NDArray[np.float64]
    text: NDArray[np.object_]


def feature_inputs(encoder: FeatureEncoder, schema: DatasetSchema) -> tuple[FeatureInputs, ...]:
    """Every model input feature's columns and alternatives, in the encoder's order."""
    found = []
    start = 0
    for numeric in encoder.numeric:
        alternatives = _numeric_alternatives(encoder.kind, numeric, schema)
        width = alternatives.shape[1]
        found.append(FeatureInputs(numeric.name, start, start + width, alternatives))
        start += width
    for categorical in encoder.categorical:
        if encoder.kind is EncodingKind.WOE:
            alternatives = np.asarray(categorical.woe, dtype=np.float64).reshape(-1, 1)
        else:
            alternatives = np.eye(categorical.width)
        width = alternatives.shape[1]
        found.append(FeatureInputs(categorical.name, start, start + width, alternatives))
        start += width
    return tuple(found)


def _numeric_alternatives(
    kind: EncodingKind, numeric: NumericEncoding, schema: DatasetSchema
) -> NDArray[np.float64]:
    if kind is EncodingKind.WOE:
        return np.asarray(numeric.woe, dtype=np.float64).reshape(-1, 1)
    if kind is EncodingKind.BINNED:
        return np.eye(numeric.width)
    feature = schema.feature(numeric.name)
    if not isinstance(feature, NumericFeature):  # the encoder and schema disagree
        raise ValueError(f"'{numeric.name}' is numeric in the encoder, not in the schema")
    bounds = transform_values(np.array([feature.min, feature.max]), numeric.transform)
    low, high = np.clip((bounds - numeric.mean) / numeric.std, -Z_CLIP, Z_CLIP)
    extras = numeric.width - numeric.regular_bins
    grid = np.zeros((Z_GRID, 1 + extras))
    grid[:, 0] = np.linspace(low, high, Z_GRID)
    other = np.hstack([np.zeros((extras, 1)), np.eye(extras)])
    return np.vstack([grid, other])


def linear_losses(
    encoded: NDArray[np.floating],
    weights: NDArray[np.float64],
    inputs: Sequence[FeatureInputs],
    factor: float,
) -> NDArray[np.float64]:
    """Points lost per row and feature of a logistic regression, in closed form.

    ``factor * (x_j . w_j - min over alternatives a of a . w_j)``, clipped at 0.
    """
    losses = np.empty((encoded.shape[0], len(inputs)))
    for j, item in enumerate(inputs):
        w = weights[item.start : item.stop]
        contribution = encoded[:, item.start : item.stop].astype(np.float64) @ w
        losses[:, j] = contribution - (item.alternatives @ w).min()
    return np.clip(factor * losses, 0.0, None)


def occlusion_losses(
    encoded: NDArray[np.floating],
    module: nn.Module,
    inputs: Sequence[FeatureInputs],
    factor: float,
) -> NDArray[np.float64]:
    """Points lost per row and feature by occlusion (module docstring).

    Parameters
    ----------
    encoded : numpy.ndarray, shape (n, n_inputs)
        The encoded rows.
    module : torch.nn.Sequential
        The model: a first ``Linear`` layer, then the rest.
    inputs : sequence of FeatureInputs
        The features and their alternatives.
    factor : float
        Points per unit of log-odds.
    """
    double = copy.deepcopy(module).double().eval()
    if not isinstance(double, nn.Sequential) or not isinstance(double[0], nn.Linear):
        raise TypeError("occlusion needs a torch Sequential model whose first layer is Linear")
    first, rest = double[0], double[1:]
    w1 = first.weight.detach()
    with torch.no_grad():
        x = torch.from_numpy(np.asarray(encoded, dtype=np.float64))
        hidden = first(x)
        base = rest(hidden).squeeze(-1)
        losses = torch.empty((x.shape[0], len(inputs)), dtype=torch.float64)
        for j, item in enumerate(inputs):
            block = w1[:, item.start : item.stop]
            without = hidden - x[:, item.start : item.stop] @ block.T
            lowest = torch.full_like(base, torch.inf)
            for alternative in torch.from_numpy(item.alternatives):
                lowest = torch.minimum(lowest, rest(without + block @ alternative).squeeze(-1))
            losses[:, j] = base - lowest
    return np.clip(factor * losses.numpy(), 0.0, None)


def scorecard_losses(scorecard: Scorecard, bin_matrix: NDArray[np.int64]) -> NDArray[np.float64]:
    """Integer points lost per row and characteristic: the largest points minus the row's."""
    baseline = np.array([item.points.max() for item in scorecard.characteristics])
    lost: NDArray[np.float64] = (
        baseline[np.newaxis, :] - scorecard.points_matrix(bin_matrix)
    ).astype(np.float64)
    return lost


def top_reasons(
    losses: NDArray[np.float64],
    texts: Sequence[Callable[[NDArray[np.intp]], NDArray[np.object_]]],
    *,
    features: tuple[str, ...],
    top_k: int,
) -> ReasonTable:
    """The ``top_k`` largest losses per row (stable: ties in feature order).

    Parameters
    ----------
    losses : numpy.ndarray of float64, shape (n, F)
        Points lost per row and feature.
    texts : sequence of callables, one per feature
        Given row indices, those rows' reason texts for the feature (called only for
        the rows where it is a reason).
    features : tuple of str
        The feature names, in column order.
    top_k : int
        Most reasons per row.
    """
    order = np.argsort(-losses, axis=1, kind="stable")[:, :top_k]
    chosen = np.take_along_axis(losses, order, axis=1)
    keep = chosen > MIN_POINTS_LOST
    index = np.where(keep, order, -1).astype(np.int64)
    text = np.full(index.shape, "", dtype=object)
    for j, feature_texts in enumerate(texts):
        rows, columns = np.nonzero(index == j)
        if rows.size:
            text[rows, columns] = feature_texts(rows)
    return ReasonTable(
        features=features, index=index, points_lost=np.where(keep, chosen, 0.0), text=text
    )
