"""The secure Gaussian sampler: right distribution, keyed, unpredictable without the key."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from privacy.noise import SecureGaussian


def test_draws_are_standard_normal() -> None:
    draws = SecureGaussian().standard_normal(100_000)
    assert stats.kstest(draws, "norm").pvalue > 1e-4
    assert abs(draws.mean()) < 0.02
    assert draws.std() == pytest.approx(1.0, abs=0.02)


def test_same_key_same_stream_other_key_other_stream() -> None:
    key = bytes(range(32))
    first = SecureGaussian(key).standard_normal(64)
    np.testing.assert_array_equal(first, SecureGaussian(key).standard_normal(64))
    flipped = bytes([key[0] ^ 1]) + key[1:]
    other = SecureGaussian(flipped).standard_normal(64)
    assert np.corrcoef(first, other)[0, 1] < 0.5
    assert not np.any(first == other)


def test_fresh_instances_draw_differently() -> None:
    assert not np.array_equal(SecureGaussian().uniform(8), SecureGaussian().uniform(8))


def test_uniform_is_open_interval() -> None:
    draws = SecureGaussian().uniform(50_000)
    assert draws.min() > 0.0 and draws.max() < 1.0


def test_noise_like_matches_shape_dtype_and_scale() -> None:
    reference = torch.zeros(300, 40, dtype=torch.float32)
    noise = SecureGaussian().like(reference, std=3.0)
    assert noise.shape == reference.shape and noise.dtype == torch.float32
    assert float(noise.std()) == pytest.approx(3.0, rel=0.03)


def test_wrong_key_length_is_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        SecureGaussian(b"short")
