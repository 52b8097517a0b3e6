"""What a model is, without torch: its family and architecture (both sides share it)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ModelKind", "ModelSpec"]


MAX_INPUTS = 100_000
"""Widest encoded input a model may take (a bank refuses a larger spec)."""
MAX_WIDTH = 4096
"""Widest hidden layer."""
MAX_LAYERS = 8
"""Most hidden layers."""


class ModelKind(StrEnum):
    """The model families fedcredit trains."""

    LOGREG = "logreg"
    MLP = "mlp"
    GBDT = "gbdt"
    """Gradient-boosted trees, grown one level per exchange (``credit.gbdt``); no
    torch model: a run of this kind never builds a :class:`ModelSpec`'s network."""


class ModelSpec(BaseModel):
    """Everything needed to rebuild a model's architecture.

    Parameters
    ----------
    kind : ModelKind
        ``logreg`` (one linear layer) or ``mlp``.
    n_inputs : int
        Width of the encoded input matrix, at most :data:`MAX_INPUTS`.
    hidden_sizes : tuple of int, default (64, 32)
        Hidden layer widths of the MLP; ignored for logistic regression.
    dropout : float, default 0.0
        Dropout after each hidden layer of the MLP, in [0, 1).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: ModelKind
    n_inputs: int = Field(ge=1, le=MAX_INPUTS)
    hidden_sizes: tuple[Annotated[int, Field(ge=1, le=MAX_WIDTH)], ...] = Field(
        default=(64, 32), max_length=MAX_LAYERS
    )
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
