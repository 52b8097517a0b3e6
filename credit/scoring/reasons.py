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

Boosted trees take their TreeSHAP contributions instead (:mod:`credit.scoring.trees`):
a feature's loss is its contribution above the ensemble's expected margin.

The values a feature can take (:func:`feature_inputs`), in the encoder's input
space: each of its bins (one-hot, or its bin's WoE); a standardised numeric column's
regular values as a grid of :data:`Z_GRID` z-scores across its schema bounds (its
transformed ``[min, max]``, clipped at ``±Z_CLIP``: the closed form is exact at the
grid's ends) plus its special-code and missing bins.

Everything is vectorised over rows; occlusion passes every value of every feature
through the layers after the first (the first layer's change is added, not
recomputed), a chunk of rows at a time as one matrix product (:class:`Occlusion`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from torch import nn

from credit.encoding import Z_CLIP, EncodingKind, FeatureEncoder, NumericEncoding
from credit.feature_cells import transform_values
from credit.governance.scorecard import Scorecard
from credit.schema import DatasetSchema, NumericFeature

__all__ = [
    "MIN_POINTS_LOST",
    "OCCLUSION_CANDIDATES",
    "PRODUCT_ROWS",
    "Z_GRID",
    "FeatureInputs",
    "Occlusion",
    "ReasonTable",
    "dense_layers",
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
OCCLUSION_CANDIDATES = 8192
"""Candidate rows (applicants times alternatives) per occlusion chunk: a few MB."""
PRODUCT_ROWS = 128
"""Rows per matrix product of the occlusion (OpenBLAS keeps one of 128 x 64 x 32 on one
thread: its threshold is 65,536 x 4 multiply-adds)."""


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


def dense_layers(module: nn.Module) -> tuple[tuple[NDArray[np.float64], NDArray[np.float64]], ...]:
    """The ``(weight, bias)`` of each ``Linear`` layer of a ``Linear``/``ReLU`` model, float64.

    ``Dropout`` is skipped (scoring is evaluation).

    Raises
    ------
    TypeError
        Another layer type, or no ``Linear`` layer.
    """
    layers: list[tuple[NDArray[np.float64], NDArray[np.float64]]] = []
    for layer in module.children() if isinstance(module, nn.Sequential) else [module]:
        if isinstance(layer, nn.Linear):
            weight = layer.weight.detach().double().numpy().copy()
            layers.append((weight, layer.bias.detach().double().numpy().copy()))
        elif not isinstance(layer, nn.ReLU | nn.Dropout):
            raise TypeError(f"cannot score a model with a {type(layer).__name__} layer")
    if not layers:
        raise TypeError("the model has no Linear layer")
    return tuple(layers)


class Occlusion:
    """An MLP's occlusion losses, every alternative of every feature in one product per chunk.

    For a row with first-layer output ``h`` and feature ``j``'s contribution ``c_j``
    to it, the first-layer output with ``j`` set to alternative ``a`` is
    ``h - c_j + a . W1_j`` (the first layer is linear). The candidates of all
    features' alternatives, for :data:`OCCLUSION_CANDIDATES` candidates' worth of
    rows at a time, go through the layers after the first as one matrix, and each
    feature's lowest log-odds is a segment minimum.

    With ``screen`` (the default) the candidates first go through the layers in
    float32 (about three times the float64 speed here); only those within twice the
    float32 evaluation's error bound of their feature's float32 minimum are then
    evaluated in float64, so the minimum is the float64 one. The bound is the
    standard a-priori one for sums of products, ``|fl(x . y) - x . y| <= gamma_n
    |x| . |y|`` with ``gamma_n = n u / (1 - n u)`` (Higham, *Accuracy and Stability
    of Numerical Algorithms*, 2nd ed., 2002, section 3.1), carried through the
    layers with the chunk's largest activations.

    Parameters
    ----------
    layers : sequence of (weight, bias)
        The model's ``Linear`` layers, float64 (:func:`dense_layers`); two or more.
    inputs : sequence of FeatureInputs
        The features and their alternatives.
    screen : bool, default True
        Screen the candidates in float32 (same minimum; False: all in float64).
    """

    def __init__(
        self,
        layers: Sequence[tuple[NDArray[np.float64], NDArray[np.float64]]],
        inputs: Sequence[FeatureInputs],
        *,
        screen: bool = True,
    ) -> None:
        if len(layers) < 2:
            raise TypeError("occlusion needs a model with a hidden layer")
        first = layers[0][0]
        parts = [item.alternatives @ first[:, item.start : item.stop].T for item in inputs]
        by_count: dict[int, list[int]] = {}
        for j, part in enumerate(parts):
            by_count.setdefault(part.shape[0], []).append(j)
        self._groups = [
            _Group(np.array(features), stacked, stacked.astype(np.float32))
            for features in by_count.values()
            for stacked in [np.stack([parts[j] for j in features])]
        ]
        self._largest_alternative = np.abs(np.vstack(parts)).max(axis=0)
        self._upper = [(np.ascontiguousarray(w.T), b) for w, b in layers[1:]]
        self._upper32 = [(w.astype(np.float32), b.astype(np.float32)) for w, b in self._upper]
        self._magnitudes = [(np.abs(w), np.abs(b)) for w, b in self._upper]
        self.screen = screen
        self.chunk_rows = max(1, OCCLUSION_CANDIDATES // sum(len(part) for part in parts))

    def upper(self, hidden: NDArray[np.float64]) -> NDArray[np.float64]:
        """The log-odds from first-layer outputs (before their ReLU), float64: shape (n,)."""
        result: NDArray[np.float64] = _forward(np.maximum(hidden, 0.0), self._upper)
        return result

    def losses(
        self,
        hidden: NDArray[np.float64],
        contributions: NDArray[np.float64],
        base: NDArray[np.float64],
        factor: float,
    ) -> NDArray[np.float64]:
        """Points lost per row and feature.

        Parameters
        ----------
        hidden : numpy.ndarray, shape (n, units)
            The rows' first-layer outputs.
        contributions : numpy.ndarray, shape (n, features, units)
            Each feature's part of ``hidden``.
        base : numpy.ndarray, shape (n,)
            The rows' log-odds.
        factor : float
            Points per unit of log-odds.
        """
        rows, features, _ = contributions.shape
        lowest = np.empty((rows, features))
        for start in range(0, rows, self.chunk_rows):
            stop = min(rows, start + self.chunk_rows)
            without = hidden[start:stop, np.newaxis, :] - contributions[start:stop]
            margin = 2.0 * self._error_bound(without) if self.screen else 0.0
            without32 = without.astype(np.float32) if self.screen else without
            for group in self._groups:
                lowest[start:stop, group.features] = self._lowest(without, without32, group, margin)
        return np.clip(factor * (base[:, np.newaxis] - lowest), 0.0, None)

    def _lowest(
        self,
        without: NDArray[np.float64],
        without32: NDArray[np.floating[Any]],
        group: _Group,
        margin: float,
    ) -> NDArray[np.float64]:
        """A group's lowest float64 log-odds per row and feature: shape (rows, features).

        ``without``: each row's first-layer output less each feature's part, shape
        (rows, features, units); ``without32`` the same in float32 (screening).
        """
        units = without.shape[2]
        if not self.screen:
            candidates = without[:, group.features, np.newaxis, :] + group.parts
            values = self.upper(candidates.reshape(-1, units))
            lowest: NDArray[np.float64] = values.reshape(candidates.shape[:3]).min(axis=2)
            return lowest
        screened32 = without32[:, group.features, np.newaxis, :] + group.parts32
        np.maximum(screened32, 0.0, out=screened32)
        shape = screened32.shape[:3]
        screened = _forward(screened32.reshape(-1, units), self._upper32).reshape(shape)
        keep = screened <= screened.min(axis=2, keepdims=True) + margin
        row, feature, alternative = np.nonzero(keep)
        candidates = without[row, group.features[feature]] + group.parts[feature, alternative]
        values = np.full(shape, np.inf)
        values[row, feature, alternative] = self.upper(candidates)
        lowest = values.min(axis=2)
        return lowest

    def _error_bound(self, without: NDArray[np.float64]) -> float:
        """A bound on the screen's (float32) plus float64's log-odds error over a chunk.

        A candidate's input ``w + a`` computed in float32 from float32 ``w`` and ``a``
        errs by at most ``2 u (|w| + |a|)`` (two roundings of the parts, one of the
        sum, to first order; 3 u is taken); the errors then grow through each layer
        as ``|W| e + gamma_(n+1) (|W| m + |b|)`` with ``m`` the largest activation.
        """
        magnitude = np.abs(without).max(axis=(0, 1)) + self._largest_alternative
        error = 3.0 * _ROUNDING[np.float32] * magnitude
        for weight, bias in self._magnitudes:
            magnitude = magnitude @ weight + bias
            error = error @ weight + _gamma(weight.shape[0] + 1) * magnitude
        exact = _gamma(sum(w.shape[0] + 1 for w, _ in self._magnitudes), np.float64)
        return float(error.max() + exact * magnitude.max())


@dataclass(frozen=True, eq=False)  # holds arrays: compared by identity
class _Group:
    """Features with as many alternatives, and their alternatives' first-layer parts.

    ``parts``: shape (features, alternatives, units), float64; ``parts32`` in float32.
    """

    features: NDArray[np.intp]
    parts: NDArray[np.float64]
    parts32: NDArray[np.float32]


_ROUNDING = {np.float32: float(np.finfo(np.float32).eps) / 2.0, np.float64: 2.0**-53}


def _gamma(terms: int, dtype: type[np.floating[Any]] = np.float32) -> float:
    """``n u / (1 - n u)``: the relative error bound of a sum of ``n`` products."""
    rounding = terms * _ROUNDING[dtype]
    return rounding / (1.0 - rounding)


def _forward(activations: NDArray[Any], layers: Sequence[tuple[NDArray[Any], NDArray[Any]]]) -> Any:
    """Each ``(weight.T, bias)`` layer on the first layer's activations, ``ReLU`` between."""
    current = activations
    for k, (weight_t, bias) in enumerate(layers):
        if k:
            np.maximum(current, 0.0, out=current)
        current = _product(current, weight_t)
        current += bias
    return current[:, 0]


def _product(values: NDArray[Any], weight_t: NDArray[Any]) -> NDArray[Any]:
    """``values @ weight_t`` as products of :data:`PRODUCT_ROWS` rows each.

    OpenBLAS runs a product this small on the calling thread; a large one on every
    core, which on a machine busy with other work (or with the CSV reader of
    :func:`credit.scoring.score_csv`) costs more than it gains.
    """
    rows = values.shape[0]
    whole = rows - rows % PRODUCT_ROWS
    out = np.empty((rows, weight_t.shape[1]), dtype=values.dtype)
    if whole:
        stacked = values[:whole].reshape(-1, PRODUCT_ROWS, values.shape[1])
        np.matmul(stacked, weight_t, out=out[:whole].reshape(-1, PRODUCT_ROWS, weight_t.shape[1]))
    if whole < rows:
        np.matmul(values[whole:], weight_t, out=out[whole:])
    return out


def occlusion_losses(
    encoded: NDArray[np.floating],
    module: nn.Module,
    inputs: Sequence[FeatureInputs],
    factor: float,
) -> NDArray[np.float64]:
    """Points lost per row and feature by occlusion (module docstring, :class:`Occlusion`).

    Parameters
    ----------
    encoded : numpy.ndarray, shape (n, n_inputs)
        The encoded rows.
    module : torch.nn.Sequential
        The model: ``Linear`` layers with ``ReLU`` between them.
    inputs : sequence of FeatureInputs
        The features and their alternatives.
    factor : float
        Points per unit of log-odds.
    """
    layers = dense_layers(module)
    weight, bias = layers[0]
    values = np.asarray(encoded, dtype=np.float64)
    contributions = np.stack(
        [values[:, i.start : i.stop] @ weight[:, i.start : i.stop].T for i in inputs], axis=1
    )
    hidden = bias + contributions.sum(axis=1)
    occlusion = Occlusion(layers, inputs)
    return occlusion.losses(hidden, contributions, occlusion.upper(hidden), factor)


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
    for j in np.unique(index[keep]).tolist():  # the features that are someone's reason
        rows, columns = np.nonzero(index == j)
        text[rows, columns] = texts[j](rows)
    return ReasonTable(
        features=features, index=index, points_lost=np.where(keep, chosen, 0.0), text=text
    )
