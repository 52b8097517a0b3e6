"""The secure sampler: exact construction, right distributions, keyed, ChaCha20 only."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from scipy import stats

from privacy.noise import SecureGaussian, SecureRandom, uniform_from_words

KEY = bytes(range(32))


def _chacha20_uniforms(key: bytes, count: int) -> np.ndarray:
    """The uniforms a key's ChaCha20 keystream should give, rebuilt from the cipher."""
    raw = (
        Cipher(algorithms.ChaCha20(key, bytes(16)), mode=None).encryptor().update(bytes(8 * count))
    )
    words = np.frombuffer(raw, dtype="<u8") >> np.uint64(12)
    return (words.astype(np.float64) + 0.5) / 2.0**52


class _ConstantKeystream:
    """A keystream of one repeated byte: feeds the extreme words through the real code."""

    def __init__(self, byte: int) -> None:
        self._byte = byte

    def update(self, data: bytes, /) -> bytes:
        return bytes([self._byte]) * len(data)


def test_each_output_is_four_independent_cosine_pairs_halved() -> None:
    size = 257
    uniforms = _chacha20_uniforms(KEY, 8 * size + 1)
    pairs = uniforms[: 8 * size].reshape(size, 4, 2)  # output i owns uniforms 8i .. 8i+7
    summands = np.sqrt(-2.0 * np.log(pairs[..., 0])) * np.cos(2.0 * np.pi * pairs[..., 1])
    sampler = SecureGaussian(KEY)
    np.testing.assert_allclose(
        sampler.standard_normal(size), summands.sum(axis=1) / 2.0, rtol=1e-12
    )
    # Exactly eight uniforms per output were used: the stream continues with the next one,
    # so no pair was used twice (for a sine) or shared with another output.
    assert sampler.uniform(1)[0] == uniforms[8 * size]


def test_draws_are_standard_normal() -> None:
    draws = SecureGaussian(KEY).standard_normal(100_000)
    assert stats.kstest(draws, "norm").pvalue > 1e-4
    assert abs(draws.mean()) < 0.02
    assert draws.std() == pytest.approx(1.0, abs=0.02)
    assert abs(stats.skew(draws)) < 0.05 and abs(stats.kurtosis(draws)) < 0.1


def test_summands_of_different_outputs_are_uncorrelated() -> None:
    draws = SecureGaussian(KEY).standard_normal(40_000)
    assert abs(np.corrcoef(draws[:-1], draws[1:])[0, 1]) < 0.03


def test_same_key_same_stream_other_key_other_stream() -> None:
    first = SecureGaussian(KEY).standard_normal(64)
    np.testing.assert_array_equal(first, SecureGaussian(KEY).standard_normal(64))
    flipped = bytes([KEY[0] ^ 1]) + KEY[1:]
    other = SecureGaussian(flipped).standard_normal(64)
    assert np.corrcoef(first, other)[0, 1] < 0.5
    assert not np.any(first == other)


def test_fresh_instances_draw_differently() -> None:
    assert not np.array_equal(SecureGaussian().uniform(8), SecureGaussian().uniform(8))


@pytest.mark.parametrize(("byte", "expected"), [(0xFF, 1.0 - 2.0**-53), (0x00, 2.0**-53)])
def test_uniform_at_the_extreme_words_stays_inside_the_open_interval(
    byte: int, expected: float
) -> None:
    draws = SecureRandom.from_keystream(_ConstantKeystream(byte)).uniform(4)
    assert np.all(draws == expected)
    assert np.all((draws > 0.0) & (draws < 1.0))
    normals = SecureGaussian.from_keystream(_ConstantKeystream(byte)).standard_normal(4)
    assert np.all(np.isfinite(normals))


def test_uniform_from_words_maps_the_word_range_into_the_open_interval() -> None:
    words = np.array([0, 1, 2**51, 2**52 - 2, 2**52 - 1], dtype=np.uint64)
    draws = uniform_from_words(words)
    assert draws[0] == 2.0**-53 and draws[-1] == 1.0 - 2.0**-53
    assert np.all(np.diff(draws) > 0)  # distinct words stay distinct floats
    with pytest.raises(ValueError, match="2\\*\\*52"):
        uniform_from_words(np.array([2**52], dtype=np.uint64))


def test_uniform_is_open_interval() -> None:
    draws = SecureRandom(KEY).uniform(50_000)
    assert draws.min() > 0.0 and draws.max() < 1.0
    np.testing.assert_array_equal(draws, _chacha20_uniforms(KEY, 50_000))


def test_poisson_mask_has_the_requested_rate() -> None:
    rate, n, masks = 0.03, 10_000, 20
    sampler = SecureRandom(KEY)
    counts = np.array([sampler.poisson_mask(n, rate).sum() for _ in range(masks)])
    mean, sd = n * rate, np.sqrt(n * rate * (1 - rate))
    assert abs(counts.sum() - masks * mean) < 6 * sd * np.sqrt(masks)
    assert np.all(np.abs(counts - mean) < 6 * sd)  # each mask is one Binomial(n, rate) draw
    assert counts.std() == pytest.approx(sd, rel=0.5)


def test_poisson_mask_comes_from_the_chacha20_stream() -> None:
    rate = 0.1
    mask = SecureRandom(KEY).poisson_mask(5_000, rate)
    np.testing.assert_array_equal(mask, SecureRandom(KEY).poisson_mask(5_000, rate))
    np.testing.assert_array_equal(mask, _chacha20_uniforms(KEY, 5_000) < rate)
    torch.manual_seed(0)
    np.random.seed(0)  # proving the global generators play no part
    again = SecureRandom(KEY).poisson_mask(5_000, rate)
    np.testing.assert_array_equal(mask, again)


@pytest.mark.parametrize(("rate", "expected"), [(0.0, False), (1.0, True)])
def test_poisson_mask_rates_zero_and_one_are_exact(rate: float, expected: bool) -> None:
    for byte in (0x00, 0xFF):
        mask = SecureRandom.from_keystream(_ConstantKeystream(byte)).poisson_mask(16, rate)
        assert np.all(mask == expected)


@pytest.mark.parametrize(("n", "rate", "message"), [(-1, 0.5, "n must"), (4, 1.5, "rate must")])
def test_poisson_mask_refuses_bad_arguments(n: int, rate: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SecureRandom(KEY).poisson_mask(n, rate)


def test_noise_like_matches_shape_dtype_and_scale() -> None:
    reference = torch.zeros(300, 40, dtype=torch.float32)
    noise = SecureGaussian(KEY).like(reference, std=3.0)
    assert noise.shape == reference.shape and noise.dtype == torch.float32
    assert float(noise.std()) == pytest.approx(3.0, rel=0.03)


def test_wrong_key_length_is_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        SecureGaussian(b"short")
