"""Model construction: shapes, seeded initialisation and Opacus compatibility."""

from __future__ import annotations

from itertools import pairwise

import pytest
import torch
from opacus.validators import ModuleValidator
from pydantic import ValidationError
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from credit.models import ModelKind, ModelSpec, build_model

N_INPUTS = 23


def _spec(kind: ModelKind, **overrides: object) -> ModelSpec:
    return ModelSpec.model_validate({"kind": kind, "n_inputs": N_INPUTS, **overrides})


def _inputs(n_rows: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n_rows, N_INPUTS, generator=generator)


@pytest.mark.parametrize("kind", list(ModelKind))
@pytest.mark.parametrize("n_rows", [1, 17])
def test_model_maps_rows_to_one_logit_each(kind: ModelKind, n_rows: int) -> None:
    model = build_model(_spec(kind))
    with torch.no_grad():
        logits = model(_inputs(n_rows))

    assert logits.shape == (n_rows, 1)
    assert logits.dtype == torch.float32
    assert torch.isfinite(logits).all()


def test_logistic_regression_is_one_linear_layer() -> None:
    model = build_model(_spec(ModelKind.LOGREG))
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]

    assert [(m.in_features, m.out_features) for m in linears] == [(N_INPUTS, 1)]


@pytest.mark.parametrize("hidden_sizes", [(64, 32), (8,), (5, 4, 3)])
def test_mlp_layers_follow_hidden_sizes(hidden_sizes: tuple[int, ...]) -> None:
    model = build_model(_spec(ModelKind.MLP, hidden_sizes=hidden_sizes))
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    widths = [N_INPUTS, *hidden_sizes, 1]

    assert [(m.in_features, m.out_features) for m in linears] == list(pairwise(widths))


@pytest.mark.parametrize("kind", list(ModelKind))
def test_same_seed_gives_identical_weights(kind: ModelKind) -> None:
    first = build_model(_spec(kind), seed=42).state_dict()
    second = build_model(_spec(kind), seed=42).state_dict()

    assert first.keys() == second.keys()
    for name, tensor in first.items():
        assert torch.equal(tensor, second[name]), name


@pytest.mark.parametrize("kind", list(ModelKind))
def test_seed_does_not_depend_on_global_torch_rng(kind: ModelKind) -> None:
    torch.manual_seed(1)
    first = build_model(_spec(kind), seed=5).state_dict()
    torch.manual_seed(2)
    second = build_model(_spec(kind), seed=5).state_dict()

    for name, tensor in first.items():
        assert torch.equal(tensor, second[name]), name


@pytest.mark.parametrize("kind", list(ModelKind))
def test_different_seeds_give_different_weights(kind: ModelKind) -> None:
    first = build_model(_spec(kind), seed=0).state_dict()
    second = build_model(_spec(kind), seed=1).state_dict()

    weights = [name for name, tensor in first.items() if tensor.dim() > 1]
    assert weights
    for name in weights:
        assert not torch.equal(first[name], second[name]), name


@pytest.mark.parametrize("kind", list(ModelKind))
@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_models_pass_opacus_validation(kind: ModelKind, dropout: float) -> None:
    model = build_model(_spec(kind, dropout=dropout))

    assert ModuleValidator.validate(model, strict=False) == []


@pytest.mark.parametrize("kind", list(ModelKind))
@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_models_contain_no_batch_norm(kind: ModelKind, dropout: float) -> None:
    model = build_model(_spec(kind, dropout=dropout))
    names = [type(m).__name__ for m in model.modules()]

    assert not any(isinstance(m, _BatchNorm) for m in model.modules())
    assert not any("BatchNorm" in name for name in names)
    assert set(names) <= {"Sequential", "Linear", "ReLU", "Dropout"}


def test_dropout_is_added_only_when_requested() -> None:
    without = build_model(_spec(ModelKind.MLP, dropout=0.0))
    with_dropout = build_model(_spec(ModelKind.MLP, dropout=0.25, hidden_sizes=(8, 4)))

    assert not any(isinstance(m, nn.Dropout) for m in without.modules())
    dropouts = [m for m in with_dropout.modules() if isinstance(m, nn.Dropout)]
    assert [m.p for m in dropouts] == [0.25, 0.25]


@pytest.mark.parametrize(
    "overrides",
    [{"n_inputs": 0}, {"dropout": 1.0}, {"dropout": -0.1}, {"kind": "forest"}, {"extra": 1}],
)
def test_invalid_specs_are_rejected(overrides: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ModelSpec.model_validate({"kind": "mlp", "n_inputs": N_INPUTS, **overrides})
