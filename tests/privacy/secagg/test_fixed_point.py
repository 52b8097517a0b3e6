"""Fixed-point ring encoding: sums decode to the weighted mean within the stated bound."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privacy.secagg.fixed_point import FixedPoint

CODE = FixedPoint(clip=8.0, fraction_bits=24)


@settings(max_examples=60, deadline=None)
@given(
    n_participants=st.integers(1, 12),
    length=st.integers(1, 40),
    seed=st.integers(0, 2**32 - 1),
)
def test_ring_sum_decodes_to_weighted_mean(n_participants: int, length: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = rng.uniform(-10, 10, size=(n_participants, length))
    weights = rng.integers(1, 50_000, size=n_participants).astype(float)
    CODE.check_headroom(total_weight=weights.sum(), participants=n_participants)
    total = np.zeros(length, dtype=np.uint64)
    weight_total = np.uint64(0)
    for row, weight in zip(values, weights, strict=True):
        total += CODE.encode(row, weight)
        weight_total += CODE.encode_weight(weight)
    decoded = CODE.decode_mean(total, weight_total)
    clipped = np.clip(values, -CODE.clip, CODE.clip)
    exact = (clipped * weights[:, None]).sum(axis=0) / weights.sum()
    bound = n_participants / (2 * CODE.scale * weights.sum()) + 1e-12
    assert np.max(np.abs(decoded - exact)) <= bound * 1.0001 + 1e-9


def test_negative_values_wrap_and_come_back() -> None:
    encoded = CODE.encode(np.array([-8.0, -1e-7, 0.0, 8.0]), 1.0)
    decoded = CODE.decode_mean(encoded, CODE.encode_weight(1.0))
    np.testing.assert_allclose(decoded, [-8.0, -1e-7, 0.0, 8.0], rtol=0, atol=0.5 / CODE.scale)


def test_headroom_edge() -> None:
    code = FixedPoint(clip=1.0, fraction_bits=30)
    code.check_headroom(total_weight=2.0**32 - 1, participants=10)  # 2^62: fits
    with pytest.raises(ValueError, match="overflow"):
        code.check_headroom(total_weight=2.0**33, participants=10)  # 2^63: may wrap


def test_value_too_large_for_63_bits_is_refused() -> None:
    code = FixedPoint(clip=1.0, fraction_bits=52)
    with pytest.raises(ValueError, match="63 bits"):
        code.encode(np.array([1.0]), 4096.0)


@pytest.mark.parametrize(("clip", "bits"), [(0.0, 10), (1.0, -1), (1.0, 53)])
def test_invalid_codes_are_rejected(clip: float, bits: int) -> None:
    with pytest.raises(ValueError):
        FixedPoint(clip=clip, fraction_bits=bits)
