"""Gradient-boosted trees on shared bins: the pure, federation-free core.

Histogram boosting of the logistic loss (XGBoost's second-order method, grown level by
level) on bin codes from bin edges every bank shares. Gradients are quantised to
integers before histogramming (:mod:`credit.gbdt.gradients`), so the sum of the banks'
histograms is the pooled histogram exactly, and federated training grows the very trees
central training grows. Modules:

* :mod:`~credit.gbdt.params`: the hyperparameters;
* :mod:`~credit.gbdt.binning`: shared edges, codes and the raw matrix;
* :mod:`~credit.gbdt.gradients`: quantised gradients, base score, row sampling;
* :mod:`~credit.gbdt.histogram`: a bank's per-level histograms;
* :mod:`~credit.gbdt.splits`: gain, split choice, leaf weights;
* :mod:`~credit.gbdt.grower`: one tree's level loop (coordinator and bank state);
* :mod:`~credit.gbdt.tree`: trees, ensembles, margins;
* :mod:`~credit.gbdt.central`: central training from the same pieces;
* :mod:`~credit.gbdt.xgboost_json`: export as an XGBoost JSON model, and read it back;
* :mod:`~credit.gbdt.model`: the model a run's folder holds (ensemble, encoder, card);
* :mod:`~credit.gbdt.explain`: TreeSHAP contributions and feature importance;
* :mod:`~credit.gbdt.shap_tables`: the same contributions by per-leaf table look-up.
"""

from __future__ import annotations

from credit.gbdt.binning import FeatureBins, bins_from_encoder, matrix_card, raw_matrix
from credit.gbdt.central import train_central
from credit.gbdt.explain import (
    FeatureImportance,
    contributions,
    feature_importance,
    reason_features,
)
from credit.gbdt.gradients import (
    GRADIENT_SCALE,
    GRADIENT_SCALE_BITS,
    QuantisedGradients,
    base_margin,
    base_score_from_counts,
    quantise_gradients,
    sample_rows,
)
from credit.gbdt.grower import (
    BankBoosting,
    LevelSplits,
    NodeSplit,
    TreeGrower,
    apply_splits,
    sample_features,
)
from credit.gbdt.histogram import HISTOGRAM_CHANNELS, histograms
from credit.gbdt.model import (
    BOOSTED_MODEL,
    ENCODER_FILE,
    XGBOOST_FILE,
    BoostedModel,
    boosted_model_from_files,
)
from credit.gbdt.params import MAX_BINS, MAX_DEPTH, MAX_TREES, BoostingParams
from credit.gbdt.shap_tables import ContributionTables, contribution_tables
from credit.gbdt.splits import NodeSums, SplitCandidate, best_split, leaf_weight, node_sums
from credit.gbdt.tree import Ensemble, Tree
from credit.gbdt.xgboost_json import (
    ensemble_from_xgboost_json,
    save_xgboost_json,
    to_xgboost_json,
)

__all__ = [  # noqa: RUF022 - plain sort, as every package door
    "BOOSTED_MODEL",
    "BankBoosting",
    "BoostedModel",
    "BoostingParams",
    "ContributionTables",
    "ENCODER_FILE",
    "Ensemble",
    "FeatureBins",
    "FeatureImportance",
    "GRADIENT_SCALE",
    "GRADIENT_SCALE_BITS",
    "HISTOGRAM_CHANNELS",
    "LevelSplits",
    "MAX_BINS",
    "MAX_DEPTH",
    "MAX_TREES",
    "NodeSplit",
    "NodeSums",
    "QuantisedGradients",
    "SplitCandidate",
    "Tree",
    "TreeGrower",
    "XGBOOST_FILE",
    "apply_splits",
    "base_margin",
    "base_score_from_counts",
    "best_split",
    "bins_from_encoder",
    "boosted_model_from_files",
    "contribution_tables",
    "contributions",
    "ensemble_from_xgboost_json",
    "feature_importance",
    "histograms",
    "leaf_weight",
    "matrix_card",
    "node_sums",
    "quantise_gradients",
    "raw_matrix",
    "reason_features",
    "sample_features",
    "sample_rows",
    "save_xgboost_json",
    "to_xgboost_json",
    "train_central",
]
