"""A boosted-trees model as a run's model folder holds it: ensemble, encoder, card.

A ``--model gbdt`` run writes ``xgboost.json`` (the ensemble, XGBoost JSON),
``encoder.json`` (the binned encoder whose edges are the trees' bins: with
:func:`~credit.gbdt.raw_matrix` it builds the input matrix from validated rows) and
``model_card.json`` (``"model": "gbdt"``). :func:`boosted_model_from_files` rebuilds the
model from those files' bytes (a signed package's loader passes the bytes it verified):
the trees are read back onto the encoder's bins, every threshold checked against them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from credit.encoding import EncodingKind, FeatureEncoder
from credit.gbdt.binning import bins_from_encoder, raw_matrix
from credit.gbdt.tree import Ensemble
from credit.gbdt.xgboost_json import ensemble_from_xgboost_json

__all__ = [
    "BOOSTED_MODEL",
    "ENCODER_FILE",
    "XGBOOST_FILE",
    "BoostedModel",
    "boosted_model_from_files",
]

XGBOOST_FILE: Final = "xgboost.json"
"""The ensemble, in XGBoost's JSON model format."""
ENCODER_FILE: Final = "encoder.json"
"""The run's binned encoder (:class:`~credit.encoding.FeatureEncoder` JSON)."""
BOOSTED_MODEL: Final = "gbdt"
"""The model card's ``"model"`` of a boosted-trees run."""


@dataclass(frozen=True, eq=False)
class BoostedModel:
    """A boosted-trees model with everything needed to score validated rows.

    Attributes
    ----------
    ensemble : Ensemble
        The trees and base score, on the encoder's bins.
    encoder : FeatureEncoder
        The binned encoder: its features are the input matrix's columns, its bins the
        trees' (and the reason texts' and drift counts' bins).
    card : dict
        The model card.
    """

    ensemble: Ensemble
    encoder: FeatureEncoder
    card: dict[str, Any]

    def matrix(self, rows: pd.DataFrame | Mapping[str, ArrayLike]) -> NDArray[np.float32]:
        """The raw input matrix of validated rows (a frame, or one array per feature)."""
        frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(
            {name: np.asarray(rows[name]) for name in self.encoder.features}
        )  # fmt: skip
        return raw_matrix(frame, self.encoder)

    def predict_proba(self, rows: pd.DataFrame | Mapping[str, ArrayLike]) -> NDArray[np.float64]:
        """Probability of default of validated rows (the ensemble's margins, float64)."""
        return self.ensemble.predict_proba(self.matrix(rows))


def boosted_model_from_files(
    card: dict[str, Any], model_json: bytes, encoder_json: bytes
) -> BoostedModel:
    """The model of a card, its ``xgboost.json`` and its ``encoder.json`` bytes.

    The caller checks the bytes first (a signed package's manifest).

    Raises
    ------
    ValueError
        The card is not a boosted-trees card, the encoder is not a binned one, or the
        trees do not fit its bins (:func:`~credit.gbdt.ensemble_from_xgboost_json`).
    """
    if card.get("model") != BOOSTED_MODEL:
        raise ValueError(f"the model card's model is {card.get('model')!r}, not 'gbdt'")
    encoder = FeatureEncoder.model_validate_json(encoder_json)
    if encoder.kind is not EncodingKind.BINNED:
        raise ValueError(f"a boosted-trees model needs a binned encoder; got '{encoder.kind}'")
    ensemble = ensemble_from_xgboost_json(json.loads(model_json), bins_from_encoder(encoder))
    return BoostedModel(ensemble=ensemble, encoder=encoder, card=card)
