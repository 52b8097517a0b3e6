"""DP-SGD at a bank: Opacus validation, the exact charged mechanism, training that learns."""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from credit.models import ModelKind, ModelSpec, build_model
from privacy.dp_sgd import (
    DpSgdSettings,
    _SecureNoiseOptimizer,
    charged_steps,
    steps_per_epoch,
    train_dp_sgd,
    validate_for_dp,
)
from privacy.errors import PrivacyError
from privacy.noise import SecureGaussian, SecureRandom

NOISE_KEY = bytes(range(32))
SAMPLING_KEY = bytes(range(32, 64))


def _data(n: int = 2_000, d: int = 8) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = (x[:, 0] + 0.5 * rng.normal(size=n) > 0).astype(np.int64)
    return x, y


def _settings(*, batch_size: int = 100, epochs: int = 1, noise: float = 1.0) -> DpSgdSettings:
    return DpSgdSettings(
        noise_multiplier=noise,
        max_grad_norm=1.0,
        batch_size=batch_size,
        epochs=epochs,
        learning_rate=0.1,
    )


def _logreg(d: int = 8) -> nn.Module:
    return build_model(ModelSpec(kind=ModelKind.LOGREG, n_inputs=d))


def _weight(model: nn.Module) -> torch.Tensor:
    return model.get_parameter("0.weight").detach().clone()


class _RecordingSampler(SecureRandom):
    """The real ChaCha20 sampler, recording each mask's (rows, rate, size)."""

    def __init__(self, key: bytes) -> None:
        super().__init__(key)
        self.calls: list[tuple[int, float, int]] = []

    def poisson_mask(self, n: int, rate: float) -> np.ndarray:
        mask = super().poisson_mask(n, rate)
        self.calls.append((n, rate, int(mask.sum())))
        return mask


class _NeverSamples:
    """A keystream of 0xFF bytes: every word is 2**52 - 1, so every Poisson batch is empty."""

    def update(self, data: bytes, /) -> bytes:
        return b"\xff" * len(data)


def test_batchnorm_is_a_clear_error_not_a_traceback() -> None:
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 1))
    with pytest.raises(PrivacyError, match="BatchNorm"):
        validate_for_dp(model)


@pytest.mark.parametrize("kind", list(ModelKind))
def test_fedcredit_models_pass_validation(kind: ModelKind) -> None:
    validate_for_dp(build_model(ModelSpec(kind=kind, n_inputs=8)))


def test_dp_training_learns_and_is_noisy() -> None:
    x, y = _data()
    first, second = _logreg(), _logreg()
    train_dp_sgd(first, x, y, _settings(epochs=2))
    train_dp_sgd(second, x, y, _settings(epochs=2))
    weight = _weight(first)
    assert float(weight[0, 0]) > 0.3  # learned the signal in feature 0
    assert not torch.equal(weight, _weight(second))  # fresh noise each run


@pytest.mark.parametrize(
    ("n", "batch_size", "epochs"),
    [(200, 20, 1), (203, 20, 2), (97, 10, 3), (50, 50, 2), (31, 7, 1)],
)
def test_executed_steps_equal_charged_at_rate_batch_over_n(
    n: int, batch_size: int, epochs: int
) -> None:
    x, y = _data(n=n)
    sampler = _RecordingSampler(SAMPLING_KEY)
    settings = _settings(batch_size=batch_size, epochs=epochs)
    result = train_dp_sgd(
        _logreg(), x, y, settings, noise=SecureGaussian(NOISE_KEY), sampler=sampler
    )
    charged = epochs * -(-n // batch_size)
    assert result.steps == charged == charged_steps(n, settings)
    assert result.sample_rate == batch_size / n
    assert len(sampler.calls) == charged  # one fresh Poisson mask per step
    assert all(rows == n and rate == batch_size / n for rows, rate, _ in sampler.calls)
    assert result.noise_only_steps == sum(size == 0 for *_, size in sampler.calls)


@pytest.mark.parametrize("n", [40, 266, 3_000])
def test_local_steps_run_that_many_poisson_steps_at_any_size(n: int) -> None:
    """``local_steps`` fixes a round's steps whatever n, each a mask at rate B/n."""
    x, y = _data(n=n)
    sampler = _RecordingSampler(SAMPLING_KEY)
    settings = replace(_settings(batch_size=20, epochs=3), local_steps=25)
    result = train_dp_sgd(
        _logreg(), x, y, settings, noise=SecureGaussian(NOISE_KEY), sampler=sampler
    )
    assert result.steps == charged_steps(n, settings) == 25
    assert len(sampler.calls) == 25
    assert all(rows == n and rate == 20 / n for rows, rate, _ in sampler.calls)


def test_empty_batches_take_the_noise_only_step() -> None:
    n, batch_size, noise_multiplier = 10, 5, 2.0
    x, y = _data(n=n)
    model = _logreg()
    expected = copy.deepcopy(model)
    settings = _settings(batch_size=batch_size, noise=noise_multiplier)
    result = train_dp_sgd(
        model,
        x,
        y,
        settings,
        noise=SecureGaussian(NOISE_KEY),
        sampler=SecureRandom.from_keystream(_NeverSamples()),
    )
    assert result.steps == result.noise_only_steps == steps_per_epoch(n, batch_size) == 2
    # The analysed step: zero gradient sum + N(0, (z C)^2) noise, divided by the expected
    # batch size, then SGD with momentum; the same noise stream drawn parameter by parameter.
    replay = SecureGaussian(NOISE_KEY)
    optimizer = torch.optim.SGD(expected.parameters(), lr=settings.learning_rate, momentum=0.9)
    for _ in range(result.steps):
        for parameter in expected.parameters():
            noise = replay.like(parameter, noise_multiplier * settings.max_grad_norm)
            parameter.grad = (torch.zeros_like(parameter) + noise) / batch_size
        optimizer.step()
    for got, want in zip(model.parameters(), expected.parameters(), strict=True):
        torch.testing.assert_close(got, want)
    assert not torch.equal(_weight(model), _weight(_logreg()))  # the noise moved it


def test_natural_empty_batches_are_stepped_not_skipped() -> None:
    x, y = _data(n=60)
    sampler = _RecordingSampler(SAMPLING_KEY)
    result = train_dp_sgd(_logreg(), x, y, _settings(batch_size=1), sampler=sampler)
    empty = sum(size == 0 for *_, size in sampler.calls)
    assert empty > 0  # (1 - 1/60)^60 ~ 0.36 per step: about 22 of 60 steps are empty
    assert result.steps == 60 and result.noise_only_steps == empty


def test_sampling_and_noise_come_only_from_the_chacha20_keys() -> None:
    x, y = _data(n=300)
    start = _logreg()
    weights = []
    for torch_seed, sampling_key in [(0, SAMPLING_KEY), (1, SAMPLING_KEY), (0, NOISE_KEY)]:
        model = copy.deepcopy(start)
        torch.manual_seed(torch_seed)
        train_dp_sgd(
            model,
            x,
            y,
            _settings(batch_size=30),
            noise=SecureGaussian(NOISE_KEY),
            sampler=SecureRandom(sampling_key),
        )
        weights.append(_weight(model))
    assert torch.equal(weights[0], weights[1])  # torch's generator plays no part
    assert not torch.equal(weights[0], weights[2])  # the sampling key does


def test_a_skipped_noised_step_is_a_privacy_error(monkeypatch: pytest.MonkeyPatch) -> None:
    skips = iter([True])  # Opacus skips a step (as for virtual steps) once
    monkeypatch.setattr(
        _SecureNoiseOptimizer,
        "_check_skip_next_step",
        lambda self, pop_next=True: next(skips, False),
    )
    x, y = _data(n=100)
    with pytest.raises(PrivacyError, match="executed 9 noised steps but 10 were charged"):
        train_dp_sgd(_logreg(), x, y, _settings(batch_size=10), sampler=SecureRandom(SAMPLING_KEY))


def test_steps_per_epoch_rounds_up() -> None:
    assert steps_per_epoch(1_000, 64) == 16
    assert steps_per_epoch(1_024, 64) == 16
    assert steps_per_epoch(1_025, 64) == 17


def test_batch_larger_than_the_data_is_refused() -> None:
    x, y = _data(n=50)
    with pytest.raises(PrivacyError, match="exceeds"):
        train_dp_sgd(_logreg(), x, y, _settings(batch_size=64))
