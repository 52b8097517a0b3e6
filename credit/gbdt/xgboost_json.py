"""Export an ensemble as an XGBoost JSON model (``xgboost.Booster(model_file=...)``).

The model takes the raw matrix (:func:`~credit.gbdt.raw_matrix`: the encoder's input
features, numeric then categorical, missing values NaN) and reproduces our margins:
XGBoost sends a row left when ``float32(x) < float32(split_condition)``, and our
thresholds are float32 bin edges with the same rule. The objective is
``binary:logistic`` with our base score; XGBoost sums leaf values in float32, so its
margins equal ours to float32 rounding. Layout: XGBoost's ``doc/model.schema``
(version 3).

:func:`ensemble_from_xgboost_json` reads such a document back onto the bins it was
trained on (a signed model package's ``xgboost.json`` with its ``encoder.json``): each
split's bin follows from its threshold, which must be one of the feature's edges.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from credit.gbdt.binning import FeatureBins
from credit.gbdt.tree import Ensemble, Tree

__all__ = [
    "XGBOOST_VERSION",
    "ensemble_from_xgboost_json",
    "save_xgboost_json",
    "to_xgboost_json",
]

XGBOOST_VERSION = (3, 2, 0)
"""The model format version written (XGBoost 3.x reads it)."""
_NO_PARENT = 2147483647
"""The root's parent in XGBoost's layout."""


def to_xgboost_json(ensemble: Ensemble) -> dict[str, Any]:
    """The ensemble as XGBoost's JSON model document (a dict ready for ``json.dump``)."""
    n_features = ensemble.bins.n_features
    trees = [_tree_json(tree, number, n_features) for number, tree in enumerate(ensemble.trees)]
    count = len(trees)
    return {
        "learner": {
            "attributes": {},
            "feature_names": list(ensemble.bins.names),
            "feature_types": ["float"] * n_features,
            "gradient_booster": {
                "model": {
                    "cats": {"enc": [], "feature_segments": [], "sorted_idx": []},
                    "gbtree_model_param": {"num_parallel_tree": "1", "num_trees": str(count)},
                    "iteration_indptr": list(range(count + 1)),
                    "tree_info": [0] * count,
                    "trees": trees,
                },
                "name": "gbtree",
            },
            "learner_model_param": {
                "base_score": f"[{_float32_text(ensemble.base_score)}]",
                "boost_from_average": "0",
                "num_class": "0",
                "num_feature": str(n_features),
                "num_target": "1",
            },
            "objective": {
                "name": "binary:logistic",
                "reg_loss_param": {"scale_pos_weight": "1"},
            },
        },
        "version": list(XGBOOST_VERSION),
    }


def _float32_text(value: float) -> str:
    """A float32 value written so that parsing it as float32 gives it back exactly."""
    return np.format_float_scientific(np.float32(value), unique=True).upper()


def _tree_json(tree: Tree, number: int, n_features: int) -> dict[str, Any]:
    """One tree in XGBoost's layout: a leaf's split condition is its value."""
    nodes = range(tree.n_nodes)
    parents = [_NO_PARENT] * tree.n_nodes
    for node in nodes:
        for child in (tree.left_children[node], tree.right_children[node]):
            if child >= 0:
                parents[child] = node
    conditions = [
        tree.values[node] if tree.is_leaf(node) else tree.thresholds[node] for node in nodes
    ]
    return {
        "base_weights": [_f32(v) for v in tree.values],
        "categories": [],
        "categories_nodes": [],
        "categories_segments": [],
        "categories_sizes": [],
        "default_left": [int(v) for v in tree.default_left],
        "id": number,
        "left_children": list(tree.left_children),
        "loss_changes": [_f32(v) for v in tree.gains],
        "parents": parents,
        "right_children": list(tree.right_children),
        "split_conditions": [_f32(v) for v in conditions],
        "split_indices": [max(f, 0) for f in tree.split_features],
        "split_type": [0] * tree.n_nodes,
        "sum_hessian": [_f32(v) for v in tree.covers],
        "tree_param": {
            "num_deleted": "0",
            "num_feature": str(n_features),
            "num_nodes": str(tree.n_nodes),
            "size_leaf_vector": "1",
        },
    }


def _f32(value: float) -> float:
    return float(np.float32(value))


def save_xgboost_json(ensemble: Ensemble, path: Path) -> None:
    """Write :func:`to_xgboost_json` to ``path`` (UTF-8 JSON)."""
    path.write_text(json.dumps(to_xgboost_json(ensemble)), encoding="utf-8")


def ensemble_from_xgboost_json(document: Mapping[str, Any], bins: FeatureBins) -> Ensemble:
    """The ensemble a :func:`to_xgboost_json` document describes, on ``bins``.

    Parameters
    ----------
    document : mapping
        The parsed XGBoost JSON model (``binary:logistic``, one output, no categorical
        splits), as :func:`to_xgboost_json` writes it.
    bins : FeatureBins
        The bins the model was trained on: its feature names must be theirs, and every
        split threshold one of the feature's edges (or the largest float32: every
        regular value left).

    Returns
    -------
    Ensemble
        Leaf values, thresholds and covers as the document stores them (float32);
        ``counts`` (training rows per node) are 0: the format does not carry them and
        neither margins nor contributions use them.

    Raises
    ------
    ValueError
        Another objective or feature list, a malformed tree (:class:`Tree`), or a
        threshold that is not one of the bins' (:class:`Ensemble`).
    """
    try:
        learner = document["learner"]
        objective = learner["objective"]["name"]
        names = tuple(learner["feature_names"])
        base_text = learner["learner_model_param"]["base_score"]
        trees = learner["gradient_booster"]["model"]["trees"]
    except (KeyError, TypeError) as exc:
        raise ValueError(f"not an XGBoost JSON model: {exc!r} is missing") from exc
    if objective != "binary:logistic":
        raise ValueError(f"the objective must be binary:logistic; got {objective!r}")
    if names != bins.names:
        raise ValueError(f"the model's features {list(names)} are not the bins' {list(bins.names)}")
    base_score = float(np.float32(str(base_text).strip("[]")))
    return Ensemble(
        trees=tuple(_tree_from_json(tree, bins) for tree in trees),
        base_score=base_score,
        bins=bins,
    )


def _tree_from_json(tree: Mapping[str, Any], bins: FeatureBins) -> Tree:
    """One tree of the document; each split's bin from its threshold (module docstring)."""
    left = tuple(int(v) for v in tree["left_children"])
    conditions = tuple(float(v) for v in tree["split_conditions"])
    leaf = tuple(child < 0 for child in left)
    features = tuple(
        -1 if is_leaf else int(f) for f, is_leaf in zip(tree["split_indices"], leaf, strict=True)
    )
    split_bins = tuple(
        0 if is_leaf else _split_bin(bins, feature, threshold)
        for feature, threshold, is_leaf in zip(features, conditions, leaf, strict=True)
    )
    return Tree(
        left_children=left,
        right_children=tuple(int(v) for v in tree["right_children"]),
        split_features=features,
        split_bins=split_bins,
        thresholds=tuple(
            0.0 if is_leaf else c for c, is_leaf in zip(conditions, leaf, strict=True)
        ),
        default_left=tuple(
            bool(v) and not is_leaf for v, is_leaf in zip(tree["default_left"], leaf, strict=True)
        ),
        values=tuple(float(v) for v in tree["base_weights"]),
        gains=tuple(
            0.0 if is_leaf else float(v)
            for v, is_leaf in zip(tree["loss_changes"], leaf, strict=True)
        ),
        covers=tuple(float(v) for v in tree["sum_hessian"]),
        counts=(0,) * len(left),
    )


def _split_bin(bins: FeatureBins, feature: int, threshold: float) -> int:
    """The bin ``b`` whose threshold (:meth:`FeatureBins.threshold`) is ``threshold``."""
    if not 0 <= feature < bins.n_features:
        raise ValueError(f"split feature {feature} is not one of the {bins.n_features} features")
    edges = bins.edges[feature]
    for split_bin in range(1, len(edges) + 2):
        if bins.threshold(feature, split_bin) == threshold:
            return split_bin
    raise ValueError(
        f"threshold {threshold} of feature '{bins.names[feature]}' is not one of its bin edges"
    )
