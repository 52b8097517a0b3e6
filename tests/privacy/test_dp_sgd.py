"""DP-SGD at a bank: Opacus validation, noisy training that still learns."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from credit.models import ModelKind, ModelSpec, build_model
from privacy.dp_sgd import DpSgdSettings, steps_per_epoch, train_dp_sgd, validate_for_dp
from privacy.errors import PrivacyError


def _data(n: int = 2_000, d: int = 8) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = (x[:, 0] + 0.5 * rng.normal(size=n) > 0).astype(np.int64)
    return x, y


def test_batchnorm_is_a_clear_error_not_a_traceback() -> None:
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 1))
    with pytest.raises(PrivacyError, match="BatchNorm"):
        validate_for_dp(model)


@pytest.mark.parametrize("kind", list(ModelKind))
def test_fedcredit_models_pass_validation(kind: ModelKind) -> None:
    validate_for_dp(build_model(ModelSpec(kind=kind, n_inputs=8)))


def test_dp_training_learns_and_is_noisy() -> None:
    x, y = _data()
    settings = DpSgdSettings(
        noise_multiplier=1.0, max_grad_norm=1.0, batch_size=100, epochs=2, learning_rate=0.1
    )
    first = build_model(ModelSpec(kind=ModelKind.LOGREG, n_inputs=8))
    second = build_model(ModelSpec(kind=ModelKind.LOGREG, n_inputs=8))
    train_dp_sgd(first, x, y, settings)
    train_dp_sgd(second, x, y, settings)
    weight = first[0].weight.detach()
    assert float(weight[0, 0]) > 0.3  # learned the signal in feature 0
    assert not torch.equal(weight, second[0].weight.detach())  # fresh noise each run


def test_steps_per_epoch_rounds_up() -> None:
    assert steps_per_epoch(1_000, 64) == 16
    assert steps_per_epoch(1_024, 64) == 16


def test_batch_larger_than_the_data_is_refused() -> None:
    x, y = _data(n=50)
    settings = DpSgdSettings(
        noise_multiplier=1.0, max_grad_norm=1.0, batch_size=64, epochs=1, learning_rate=0.1
    )
    with pytest.raises(PrivacyError, match="exceeds"):
        train_dp_sgd(build_model(ModelSpec(kind=ModelKind.LOGREG, n_inputs=8)), x, y, settings)
