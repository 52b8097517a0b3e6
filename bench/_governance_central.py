"""Where a scorecard's AUC gap comes from: converged, centralised fits on the same rows.

``bench/governance.py`` compares federated runs; this module refits their models on
the banks' pooled training rows with scikit-learn's logistic regression run to
convergence (effectively unpenalised, ``C = 1e6``, or with an L2 penalty ``C =
0.01``), scored on the same held-out rows, so that one change at a time shows:

* one-hot of the binned run's quantile bins (what ``--encoding binned`` trains on);
* one-hot of the WoE run's merged bins (merging alone);
* the WoE of the merged bins, one input per feature (the WoE constraint), and its
  integer scorecard (rounding points);
* the WoE of bins merged from :data:`PREBINS` quantile bins of the pooled training
  rows instead of the run's 10 (optbinning's default pre-binning: does a finer start
  help?).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from _governance_checks import Rows, auc
from numpy.typing import NDArray
from sklearn.linear_model import LogisticRegression

from credit.encoding import FeatureEncoder
from credit.feature_cells import transform_values
from credit.governance import ScoreScaling, count_bins, woe_table
from credit.woe_binning import fit_woe_encoder, layout_of, scorecard_of, tables_from_document

__all__ = ["PREBINS", "UNPENALISED", "central_decomposition"]

UNPENALISED = 1e6
"""scikit-learn's inverse regularisation strength for an (effectively) unpenalised fit."""
PREBINS = 20
"""Quantile bins per numeric input of the finer pre-binning (optbinning's ``max_n_prebins``)."""
PENALISED = 0.01
"""The L2 fit's inverse strength: about the shrinkage early stopping gives one-hot bins."""


def _one_hot(encoder: FeatureEncoder, rows: Any) -> NDArray[np.float64]:
    """One column per bin of every feature of ``encoder`` (its layout, any kind)."""
    indices = encoder.bin_indices(rows)
    blocks = [
        np.eye(layout_of(encoding).n_bins)[indices[encoding.name]]
        for encoding in (*encoder.numeric, *encoder.categorical)
    ]
    return np.hstack(blocks)


def _fit(train: NDArray[Any], labels: NDArray[Any], strength: float) -> LogisticRegression:
    return LogisticRegression(C=strength, max_iter=10_000).fit(train, labels)


def _finer(binned: FeatureEncoder, rows: Rows) -> FeatureEncoder:
    """``binned`` with :data:`PREBINS` quantile bins of the pooled training rows instead."""
    numeric = []
    for encoding in binned.numeric:
        raw = rows.train[encoding.name].to_numpy(dtype=np.float64)
        values = transform_values(raw[~np.isnan(raw)], encoding.transform)
        edges = np.unique(np.quantile(values, np.linspace(0.0, 1.0, PREBINS + 1)[1:-1]))
        numeric.append(encoding.model_copy(update={"edges": tuple(map(float, edges))}))
    return binned.model_copy(update={"numeric": tuple(numeric)})


def _woe_from(
    binned: FeatureEncoder, rows: Rows, labels: NDArray[Any]
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """WoE inputs of the bins merged from ``binned``'s, on the pooled training counts."""
    indices = binned.bin_indices(rows.train)
    tables = {
        e.name: woe_table(count_bins(indices[e.name], labels, layout_of(e)))
        for e in (*binned.numeric, *binned.categorical)
    }
    encoder = fit_woe_encoder(binned, tables).encoder
    return encoder.transform(rows.train), encoder.transform(rows.test)


def central_decomposition(
    rows: Rows,
    binned: FeatureEncoder,
    woe: FeatureEncoder,
    woe_iv: Mapping[str, Any],
    target: str,
) -> dict[str, float]:
    """Test AUC of each centralised fit (keys as :data:`bench.governance.CENTRAL_ROWS`)."""
    y_train = rows.train[target].to_numpy()
    y_test = rows.test[target].to_numpy()
    result = {}
    inputs = {
        "binned_onehot": (binned.transform(rows.train), binned.transform(rows.test)),
        "merged_onehot": (_one_hot(woe, rows.train), _one_hot(woe, rows.test)),
        "woe": (woe.transform(rows.train), woe.transform(rows.test)),
        "woe_prebins_20": _woe_from(_finer(binned, rows), rows, y_train),
    }
    for name, (train, test) in inputs.items():
        model = _fit(train, y_train, UNPENALISED)
        result[name] = auc(y_test, model.predict_proba(test)[:, 1])
        if name in ("binned_onehot", "woe"):
            penalised = _fit(train, y_train, PENALISED)
            result[f"{name}_l2"] = auc(y_test, penalised.predict_proba(test)[:, 1])
        if name == "woe":
            scorecard = scorecard_of(
                woe,
                tables_from_document(woe_iv),
                weights=model.coef_[0].astype(np.float32),
                bias=float(model.intercept_[0]),
                scaling=ScoreScaling(),
            )
            indices = woe.bin_indices(rows.test)
            columns = np.column_stack([indices[name] for name in woe.features])
            result["woe_scorecard"] = auc(y_test, -scorecard.integer_score(columns))
    return result
