"""Credit-default models in torch, both compatible with Opacus DP-SGD.

No BatchNorm (it mixes records within a batch, which per-sample clipping forbids);
only ``Linear``, ``ReLU`` and ``Dropout``, which Opacus supports. Every model maps an
encoded input matrix to one logit per row.
"""

from __future__ import annotations

import torch
from torch import nn

from credit.model_spec import ModelKind, ModelSpec

__all__ = ["ModelKind", "ModelSpec", "build_model"]


def build_model(spec: ModelSpec, *, seed: int = 0) -> nn.Module:
    """Build a freshly initialised model; the same ``seed`` gives the same weights.

    Parameters
    ----------
    spec : ModelSpec
        The architecture.
    seed : int, default 0
        Seed of a private torch generator used for initialisation only.
    """
    generator = torch.Generator().manual_seed(seed)
    if spec.kind is ModelKind.LOGREG:
        model: nn.Module = nn.Sequential(nn.Linear(spec.n_inputs, 1))
    else:
        layers: list[nn.Module] = []
        width = spec.n_inputs
        for hidden in spec.hidden_sizes:
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            if spec.dropout > 0:
                layers.append(nn.Dropout(spec.dropout))
            width = hidden
        layers.append(nn.Linear(width, 1))
        model = nn.Sequential(*layers)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() > 1:
                bound = 1.0 / parameter.shape[1] ** 0.5
                parameter.copy_(
                    torch.empty_like(parameter).uniform_(-bound, bound, generator=generator)
                )
            else:
                parameter.zero_()
    return model
