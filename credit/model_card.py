"""Save and load a trained model with its model card.

A model directory holds ``model.pt`` (the torch ``state_dict``) and ``model_card.json``:
the schema name and hash, the fitted feature encoder, the architecture, the training
configuration, the final metrics and the SHA-256 of the weights file (a scorecard run
also writes ``scorecard.csv`` there: :data:`SCORECARD_FILE`). One call,
:func:`load_model`, rebuilds a scorer that turns validated rows into probabilities.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from numpy.typing import NDArray
from torch import nn

from credit.encoding import FeatureEncoder
from credit.errors import FedcreditError
from credit.models import ModelSpec, build_model

__all__ = [
    "CARD_FILE",
    "SCORECARD_FILE",
    "WEIGHTS_FILE",
    "CreditModel",
    "load_model",
    "model_from_files",
    "save_model",
]

CARD_FILE = "model_card.json"
WEIGHTS_FILE = "model.pt"
SCORECARD_FILE = "scorecard.csv"
"""The scorecard table in a model folder (:func:`credit.governance.write_scorecard_csv`)."""
CARD_FORMAT = "fedcredit-model/1"


@dataclass(frozen=True, eq=False)
class CreditModel:
    """A trained model with everything needed to score new rows."""

    module: nn.Module
    encoder: FeatureEncoder
    spec: ModelSpec
    card: dict[str, Any]

    def predict_proba(self, frame: pd.DataFrame) -> NDArray[np.float64]:
        """Default probabilities for validated rows (see ``credit.loading``)."""
        self.module.eval()
        with torch.no_grad():
            logits = self.module(torch.from_numpy(self.encoder.transform(frame))).squeeze(-1)
        return torch.sigmoid(logits).double().numpy()


def save_model(
    directory: Path,
    module: nn.Module,
    *,
    spec: ModelSpec,
    encoder: FeatureEncoder,
    schema_name: str,
    training: dict[str, Any],
    metrics: dict[str, Any],
    selection: dict[str, Any] | None = None,
) -> Path:
    """Write ``model.pt`` and ``model_card.json`` into ``directory``; return the card path.

    ``selection``: which round's model this is and why (``metrics.json``'s
    ``selection``), for a run that chose it on its banks' validation parts.
    """
    directory.mkdir(parents=True, exist_ok=True)
    weights = directory / WEIGHTS_FILE
    torch.save(module.state_dict(), weights)
    card = {
        "format": CARD_FORMAT,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "schema": {"name": schema_name, "sha256": encoder.schema_hash},
        "model": spec.model_dump(mode="json"),
        "encoder": encoder.model_dump(mode="json"),
        "input_names": encoder.input_names,
        "training": training,
        "metrics": metrics,
        "weights": {"file": WEIGHTS_FILE, "sha256": _sha256(weights)},
    }
    if selection is not None:
        card["selection"] = selection
    card_path = directory / CARD_FILE
    card_path.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    return card_path


def load_model(directory: Path | str) -> CreditModel:
    """Load a model directory written by :func:`save_model`.

    Raises
    ------
    FedcreditError
        The card is missing or of another format, or the weights do not match the
        hash recorded in the card.
    """
    root = Path(directory)
    card_path = root / CARD_FILE
    if not card_path.is_file():
        raise FedcreditError(f"{card_path}: no model card; pass the 'model' folder of a run")
    card = json.loads(card_path.read_text(encoding="utf-8"))
    if card.get("format") != CARD_FORMAT:
        raise FedcreditError(f"{card_path}: unknown model format {card.get('format')!r}")
    weights = root / card["weights"]["file"]
    if not weights.is_file():
        raise FedcreditError(f"{weights}: weights file missing; copy the whole model folder")
    data = weights.read_bytes()  # hashed and loaded from one read
    if hashlib.sha256(data).hexdigest() != card["weights"]["sha256"]:
        raise FedcreditError(f"{weights}: weights do not match the hash in the model card")
    return model_from_files(card, data)


def model_from_files(card: dict[str, Any], weights: bytes) -> CreditModel:
    """The model of a card and its weights file's bytes (already checked by the caller).

    :func:`load_model` checks the weights against the card's hash first; a signed
    package (:mod:`credit.package`) checks every file against its manifest first.
    The weights are read with ``torch.load(weights_only=True)``: tensors only.
    """
    spec = ModelSpec.model_validate(card["model"])
    module = build_model(spec)
    module.load_state_dict(torch.load(io.BytesIO(weights), weights_only=True))
    encoder = FeatureEncoder.model_validate(card["encoder"])
    return CreditModel(module=module, encoder=encoder, spec=spec, card=card)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
