"""The model's log-odds computed row by row: one row's value in any batch is the same.

A float32 matrix product in torch (or any BLAS) may sum a row's terms in an order
that depends on how many rows are multiplied together, so a row scored alone and
the same row in a file of a million can differ in the last bits. A scoring service
and a batch file must give the same probability to the bit, so the scorer evaluates
the network in float64 with sums whose order depends on the row alone:

* first layer: the sum over features, in the encoder's order, of each feature's
  block of inputs times its weights; a block has at most one non-zero input per row
  (a one-hot bin, a WoE value, a z-score), so each block's product is exact, and
  it is the same exact value when looked up from the row's bin (each bin's product
  computed once: :meth:`RowwiseNetwork.contributions`, the scorer's path);
* further layers (an MLP's): ReLU, then each unit's weighted sum as an elementwise
  product summed along the row (numpy reduces each row's contiguous terms alike).

The values agree with :meth:`credit.model_card.CreditModel.predict_proba` (float32)
to float32 precision.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import NDArray
from torch import nn

from credit.scoring.reasons import FeatureInputs, dense_layers

__all__ = ["ROW_BLOCK", "RowwiseNetwork"]

ROW_BLOCK = 2048
"""Rows per elementwise product of a dense layer (bounds its temporary memory)."""


class RowwiseNetwork:
    """A ``Linear``/``ReLU`` sequential model evaluated row by row in float64.

    Parameters
    ----------
    module : torch.nn.Sequential
        ``Linear`` layers with ``ReLU`` between them (``Dropout`` is skipped: scoring
        is evaluation).
    inputs : sequence of FeatureInputs
        The features' column blocks of the encoded matrix, in order.
    bin_blocks : sequence of numpy.ndarray, optional
        Per feature, the encoded block of each of its bins
        (:func:`credit.scoring.binning.bin_inputs`): each bin's first-layer
        contribution is computed once, for :meth:`contributions`.
    z_scores : bool, default False
        Whether numeric features carry a z-score in their block's first column (a
        standardised encoder): its contribution is the z-score times that weight.

    Raises
    ------
    TypeError
        Another layer type.
    """

    def __init__(
        self,
        module: nn.Module,
        inputs: Sequence[FeatureInputs],
        *,
        bin_blocks: Sequence[NDArray[np.float64]] | None = None,
        z_scores: bool = False,
    ) -> None:
        layers = dense_layers(module)
        self._first = layers[0]
        self._rest = layers[1:]
        self._inputs = tuple(inputs)
        weight = self._first[0]
        tables, z_weights = [], []
        if bin_blocks is not None:
            for item, block in zip(self._inputs, bin_blocks, strict=True):
                part = weight[:, item.start : item.stop]
                tables.append(np.ascontiguousarray(block @ part.T))  # one non-zero term: exact
                z_weights.append(part[:, 0].copy() if z_scores else None)
        self._tables: tuple[NDArray[np.float64], ...] = tuple(tables)
        self._z_weights: tuple[NDArray[np.float64] | None, ...] = tuple(z_weights)

    @property
    def layers(self) -> tuple[tuple[NDArray[np.float64], NDArray[np.float64]], ...]:
        """The ``(weight, bias)`` of every ``Linear`` layer, float64, in order."""
        return (self._first, *self._rest)

    def contributions(
        self, bins: Sequence[NDArray[np.int64]], z_scores: Mapping[int, NDArray[np.float32]]
    ) -> list[NDArray[np.float64]]:
        """Each feature's first-layer contribution from the rows' bins: (n, units) each.

        Equal to :meth:`block` of the encoded rows, bit for bit (``z_scores``: a
        standardised feature's z-scores by its position).

        Raises
        ------
        ValueError
            The network was built without ``bin_blocks``.
        """
        if len(self._tables) != len(self._inputs):
            raise ValueError("contributions from bins need the bins' blocks: pass bin_blocks")
        found = []
        for j, (table, rows) in enumerate(zip(self._tables, bins, strict=True)):
            contribution = table[rows]
            z_weight = self._z_weights[j]
            if j in z_scores and z_weight is not None:
                z = z_scores[j].astype(np.float64)
                contribution = z[:, np.newaxis] * z_weight + contribution
            found.append(contribution)
        return found

    def hidden_of(self, contributions: Sequence[NDArray[np.float64]]) -> NDArray[np.float64]:
        """The first layer's output from :meth:`contributions` (as :meth:`hidden`)."""
        bias = self._first[1]
        rows = contributions[0].shape[0] if contributions else 0
        total = np.broadcast_to(bias, (rows, bias.size)).copy()
        for contribution in contributions:
            total += contribution
        return total

    def hidden(self, encoded: NDArray[np.floating]) -> NDArray[np.float64]:
        """The first layer's output, before its activation: shape (n, units)."""
        bias = self._first[1]
        total = np.broadcast_to(bias, (encoded.shape[0], bias.size)).copy()
        for item in self._inputs:
            total += self.block(encoded, item)
        return total

    def block(self, encoded: NDArray[np.floating], item: FeatureInputs) -> NDArray[np.float64]:
        """One feature's exact contribution to the first layer: shape (n, units)."""
        weight = self._first[0][:, item.start : item.stop]
        values = np.asarray(encoded[:, item.start : item.stop], dtype=np.float64)
        contribution: NDArray[np.float64] = values @ weight.T
        return contribution

    def after_first(self, hidden: NDArray[np.float64]) -> NDArray[np.float64]:
        """The log-odds from the first layer's output: shape (n,)."""
        current = hidden
        for weight, bias in self._rest:
            current = _dense(np.maximum(current, 0.0), weight, bias)
        result: NDArray[np.float64] = current[:, 0]
        return result

    def log_odds(self, encoded: NDArray[np.floating]) -> NDArray[np.float64]:
        """The model's log-odds of default per row."""
        return self.after_first(self.hidden(encoded))


def _dense(
    values: NDArray[np.float64], weight: NDArray[np.float64], bias: NDArray[np.float64]
) -> NDArray[np.float64]:
    """``values @ weight.T + bias`` with each row's sums in an order of that row alone."""
    out = np.empty((values.shape[0], weight.shape[0]))
    for start in range(0, values.shape[0], ROW_BLOCK):
        part = values[start : start + ROW_BLOCK]
        out[start : start + ROW_BLOCK] = (part[:, np.newaxis, :] * weight[np.newaxis]).sum(-1)
    out += bias
    return out
