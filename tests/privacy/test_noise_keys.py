"""Noise keys: fresh from the OS by default; from the seed (research only) by HKDF-SHA256."""

from __future__ import annotations

import hashlib
import hmac
import itertools

import numpy as np

from privacy import noise
from privacy.noise import SecureGaussian
from privacy.noise_keys import (
    HKDF_SALT,
    KEY_BYTES,
    FreshNoiseKeys,
    NoisePurpose,
    SeededNoiseKeys,
    derive_noise_key,
)


def _rfc5869(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    """HKDF-SHA256 written out from RFC 5869 with the standard library (the reference)."""
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    okm, block = b"", b""
    for counter in range(1, -(-length // 32) + 1):
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        okm += block
    return okm[:length]


def test_a_key_is_rfc5869_hkdf_of_the_seed_with_bank_purpose_and_stream_as_info() -> None:
    key = derive_noise_key(7, bank="bank-1", purpose=NoisePurpose.DP_SGD_NOISE, stream="r/1/3")
    info = b"".join(
        len(part).to_bytes(4, "big") + part for part in (b"bank-1", b"dp-sgd-noise", b"r/1/3")
    )
    assert key == _rfc5869(b"7", HKDF_SALT, info, 32)
    assert KEY_BYTES == noise.KEY_BYTES == len(key)


def test_keys_are_distinct_per_bank_purpose_stream_and_seed() -> None:
    banks = ("bank-1", "bank-2", "bank-10")
    streams = ("run/dp-sgd/1/2", "run/dp-sgd/2/3", "other/dp-sgd/1/2")
    keys = {
        (seed, bank, purpose, stream): derive_noise_key(
            seed, bank=bank, purpose=purpose, stream=stream
        )
        for seed, bank, purpose, stream in itertools.product((0, 1), banks, NoisePurpose, streams)
    }
    assert len(set(keys.values())) == len(keys) == 2 * 3 * len(NoisePurpose) * 3


def test_parts_cannot_be_shifted_from_one_field_to_the_next() -> None:
    """Length prefixes: ("bank-1", "x/1") and ("bank-1x", "/1")-like splits never collide."""
    purpose = NoisePurpose.SETUP_RELEASE
    assert derive_noise_key(0, bank="ab", purpose=purpose, stream="c") != derive_noise_key(
        0, bank="a", purpose=purpose, stream="bc"
    )


def test_seeded_keys_repeat_and_draw_the_same_noise() -> None:
    keys = SeededNoiseKeys(seed=3, bank="bank-2")
    again = SeededNoiseKeys(seed=3, bank="bank-2")
    purpose, stream = NoisePurpose.EVALUATION_RELEASE, "run/evaluation-release/2/5"
    assert keys.reproducible
    assert keys.key(purpose, stream) == again.key(purpose, stream)
    first = SecureGaussian(keys.key(purpose, stream)).standard_normal(16)
    repeated = SecureGaussian(again.key(purpose, stream)).standard_normal(16)
    np.testing.assert_array_equal(first, repeated)
    other_bank = SeededNoiseKeys(seed=3, bank="bank-3").key(purpose, stream)
    assert not np.array_equal(first, SecureGaussian(other_bank).standard_normal(16))


def test_fresh_keys_are_new_every_time() -> None:
    keys = FreshNoiseKeys()
    purpose, stream = NoisePurpose.DP_SGD_NOISE, "run/dp-sgd/1/1"
    assert not keys.reproducible
    drawn = {keys.key(purpose, stream) for _ in range(8)}
    assert len(drawn) == 8
    assert all(len(key) == KEY_BYTES for key in drawn)
