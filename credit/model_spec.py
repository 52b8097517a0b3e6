"""What a model is, without torch: its family and architecture (both sides share it)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ModelKind", "ModelSpec"]


class ModelKind(StrEnum):
    """The model families fedcredit trains."""

    LOGREG = "logreg"
    MLP = "mlp"


class ModelSpec(BaseModel):
    """Everything needed to rebuild a model's architecture.

    Parameters
    ----------
    kind : ModelKind
        ``logreg`` (one linear layer) or ``mlp``.
    n_inputs : int
        Width of the encoded input matrix.
    hidden_sizes : tuple of int, default (64, 32)
        Hidden layer widths of the MLP; ignored for logistic regression.
    dropout : float, default 0.0
        Dropout after each hidden layer of the MLP, in [0, 1).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: ModelKind
    n_inputs: int = Field(ge=1)
    hidden_sizes: tuple[int, ...] = (64, 32)
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
