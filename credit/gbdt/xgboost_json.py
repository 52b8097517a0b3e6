"""Export an ensemble as an XGBoost JSON model (``xgboost.Booster(model_file=...)``).

The model takes the raw matrix (:func:`~credit.gbdt.raw_matrix`: the encoder's input
features, numeric then categorical, missing values NaN) and reproduces our margins:
XGBoost sends a row left when ``float32(x) < float32(split_condition)``, and our
thresholds are float32 bin edges with the same rule. The objective is
``binary:logistic`` with our base score; XGBoost sums leaf values in float32, so its
margins equal ours to float32 rounding. Layout: XGBoost's ``doc/model.schema``
(version 3).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from credit.gbdt.tree import Ensemble

__all__ = ["XGBOOST_VERSION", "save_xgboost_json", "to_xgboost_json"]

XGBOOST_VERSION = (3, 2, 0)
"""The model format version written (XGBoost 3.x reads it)."""


def to_xgboost_json(ensemble: Ensemble) -> dict[str, Any]:
    """The ensemble as XGBoost's JSON model document (a dict ready for ``json.dump``)."""
    raise NotImplementedError


def save_xgboost_json(ensemble: Ensemble, path: Path) -> None:
    """Write :func:`to_xgboost_json` to ``path`` (UTF-8 JSON)."""
    path.write_text(json.dumps(to_xgboost_json(ensemble)), encoding="utf-8")
