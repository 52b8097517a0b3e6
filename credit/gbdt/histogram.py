"""Gradient histograms of the open nodes of one tree level (a bank's contribution).

Nodes are numbered in heap order: the root is 0, node ``n``'s children are ``2n + 1``
(left) and ``2n + 2`` (right). A bank keeps each of its rows' node (``-1``: a row not
sampled for this tree) and, per level, sums its rows' quantised gradients, Hessians and
counts per open node, feature and bin code. The sum over banks of these int64 arrays is
the pooled histogram exactly.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["HISTOGRAM_CHANNELS", "MAX_HISTOGRAM_ROWS", "histograms"]

HISTOGRAM_CHANNELS = 3
"""The last axis of a histogram: quantised gradient sum, quantised Hessian sum, row count."""
MAX_HISTOGRAM_ROWS = 1 << 32
"""Most rows one histogram call may sum: below it, float64 partial sums of the quantised
values (at most ``2**20`` each) stay below ``2**53`` and so are exact integers."""


def histograms(
    codes: NDArray[np.uint8],
    gradients: NDArray[np.int64],
    hessians: NDArray[np.int64],
    node_of_row: NDArray[np.int64],
    open_nodes: tuple[int, ...],
    n_bins: int,
) -> NDArray[np.int64]:
    """Per open node, feature and bin: the sums of quantised g, h and the row count.

    Parameters
    ----------
    codes : numpy.ndarray of uint8, shape (rows, features)
        The rows' bin codes (:meth:`~credit.gbdt.FeatureBins.codes`), each < ``n_bins``.
    gradients, hessians : numpy.ndarray of int64, shape (rows,)
        Quantised per-row values (:func:`~credit.gbdt.quantise_gradients`).
    node_of_row : numpy.ndarray of int64, shape (rows,)
        Each row's current node (heap numbering; -1 or any node not open: ignored).
    open_nodes : tuple of int
        The nodes to histogram, in the order of the result's first axis.
    n_bins : int
        Histogram width (:attr:`~credit.gbdt.FeatureBins.n_bins`), missing code last.

    Returns
    -------
    numpy.ndarray of int64, shape (len(open_nodes), features, n_bins, 3)
        ``[..., 0]`` gradient sums, ``[..., 1]`` Hessian sums, ``[..., 2]`` counts.

    Raises
    ------
    ValueError
        Inputs of different row counts, more than :data:`MAX_HISTOGRAM_ROWS` rows, a
        code >= ``n_bins`` or a repeated open node.
    """
    rows, features = codes.shape
    if not (gradients.shape == hessians.shape == node_of_row.shape == (rows,)):
        raise ValueError(
            f"codes have {rows} rows but gradients, hessians and node_of_row have shapes "
            f"{gradients.shape}, {hessians.shape}, {node_of_row.shape}"
        )
    if rows > MAX_HISTOGRAM_ROWS:
        raise ValueError(f"at most {MAX_HISTOGRAM_ROWS} rows per histogram; got {rows}")
    if rows and int(codes.max()) >= n_bins:
        raise ValueError(f"bin codes must be < n_bins ({n_bins}); got {int(codes.max())}")
    if len(set(open_nodes)) != len(open_nodes):
        raise ValueError(f"open_nodes must not repeat a node; got {open_nodes}")
    slot = np.full(rows, -1, dtype=np.int64)
    for position, node in enumerate(open_nodes):
        slot[node_of_row == node] = position
    kept = np.flatnonzero(slot >= 0)
    nodes, cells = len(open_nodes), len(open_nodes) * n_bins
    offset = slot[kept] * n_bins
    kept_codes = codes[kept]
    weights = (gradients[kept].astype(np.float64), hessians[kept].astype(np.float64))
    result = np.empty((nodes, features, n_bins, HISTOGRAM_CHANNELS), dtype=np.int64)
    for feature in range(features):  # one feature at a time: small arrays, cache-friendly
        index = offset + kept_codes[:, feature]
        for channel, weight in enumerate(weights):
            sums = np.bincount(index, weight, minlength=cells)
            result[:, feature, :, channel] = np.rint(sums).reshape(nodes, n_bins)
        result[:, feature, :, 2] = np.bincount(index, minlength=cells).reshape(nodes, n_bins)
    return result
