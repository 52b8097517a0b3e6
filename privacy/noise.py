"""Gaussian noise and Poisson sampling from a cryptographically secure source.

DP noise and DP sampling must be unpredictable: a stream an attacker can reconstruct
(a Mersenne Twister state recovered from outputs, a guessable seed) cancels the noise
or reveals who was in a batch. :class:`SecureRandom` expands a 256-bit key from
``os.urandom`` with the ChaCha20 stream cipher of the ``cryptography`` package into
uniform 52-bit words; from them it makes uniform floats on the open interval (0, 1)
and Poisson-sampling masks. :class:`SecureGaussian` turns the uniforms into standard
normals with the Box-Muller transform.

Notes
-----
Floating-point attacks on Gaussian samplers (Mironov, CCS 2012; Jin et al.,
"Are we there yet? Timing and floating-point attacks on differential privacy
systems", S&P 2022) exploit the gaps in the set of floats one draw can produce.
Following Holohan and Braghin ("Secure random sampling in differential privacy",
ESORICS 2021, section 5.1), as Opacus's ``secure_mode`` does, each output is the sum
of four *independent* Box-Muller normals divided by two, which has the same N(0, 1)
distribution and fills the gaps a single draw leaves. Each of the four summands comes
from its own pair of uniforms and uses only the cosine branch of that pair, so no two
summands and no two outputs share a pair (the cosine and sine of one pair are two
functions of the same two uniforms). Draws are made in float64 and rounded to the
parameter dtype last. See ``docs/privacy.md`` for what this does and does not cover.
"""

from __future__ import annotations

import os
from typing import Protocol, Self

import numpy as np
import torch
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from numpy.typing import NDArray

__all__ = ["Keystream", "SecureGaussian", "SecureRandom", "uniform_from_words"]

KEY_BYTES = 32
_NONCE_BYTES = 16
WORD_BITS = 52
"""Bits of each uniform word: ``(w + 0.5) / 2**52`` is exact in float64 and lies in (0, 1)."""
_WORD_BYTES = 8
_SUMMED_DRAWS = 4
_UNIFORMS_PER_NORMAL = 2 * _SUMMED_DRAWS  # four Box-Muller pairs, one cosine each


class Keystream(Protocol):
    """What :class:`SecureRandom` reads bytes from (a ChaCha20 encryptor in production)."""

    def update(self, data: bytes, /) -> bytes:
        """Return ``len(data)`` bytes of keystream XORed with ``data``."""
        ...


def uniform_from_words(words: NDArray[np.uint64]) -> NDArray[np.float64]:
    """Map 52-bit words ``w`` in [0, 2**52) to ``(w + 0.5) / 2**52``.

    ``w + 0.5`` needs at most 53 significant bits and dividing by a power of two is
    exact, so every result is exactly the midpoint of its cell: the smallest is
    ``2**-53`` and the largest ``1 - 2**-53``; never 0.0 and never 1.0.

    Raises
    ------
    ValueError
        A word is ``2**52`` or more (it was not shifted down to 52 bits).
    """
    if words.size and int(words.max()) >= 2**WORD_BITS:
        raise ValueError(f"words must be < 2**{WORD_BITS}; got {int(words.max())}")
    return (words.astype(np.float64) + 0.5) / float(2**WORD_BITS)


class SecureRandom:
    """Uniform words, uniform floats and Poisson masks from a ChaCha20 keystream.

    Parameters
    ----------
    key : bytes, optional
        32-byte ChaCha20 key; fresh from ``os.urandom`` when omitted. Pass a key only
        in tests that need reproducible draws.

    Raises
    ------
    ValueError
        ``key`` is not 32 bytes long.
    """

    def __init__(self, key: bytes | None = None) -> None:
        key = os.urandom(KEY_BYTES) if key is None else key
        if len(key) != KEY_BYTES:
            raise ValueError(f"key must be {KEY_BYTES} bytes; got {len(key)}")
        nonce = bytes(_NONCE_BYTES)  # each instance has its own random key: a zero nonce is safe
        self._keystream: Keystream = Cipher(algorithms.ChaCha20(key, nonce), mode=None).encryptor()

    @classmethod
    def from_keystream(cls, keystream: Keystream) -> Self:
        """A generator reading ``keystream`` instead of ChaCha20: for tests only.

        Tests use it to feed chosen words (all zeros, all ones) through the exact code
        that turns keystream bytes into draws. Never use it for noise that protects
        people: its output is only as unpredictable as ``keystream``.
        """
        instance = cls.__new__(cls)
        instance._keystream = keystream
        return instance

    def words(self, size: int) -> NDArray[np.uint64]:
        """``size`` independent uniform words on [0, 2**52): 8 keystream bytes each."""
        raw = self._keystream.update(bytes(_WORD_BYTES * size))
        shift = np.uint64(8 * _WORD_BYTES - WORD_BITS)
        return np.frombuffer(raw, dtype="<u8").astype(np.uint64) >> shift

    def uniform(self, size: int) -> NDArray[np.float64]:
        """``size`` floats uniform on (0, 1), never exactly 0 or 1 (:func:`uniform_from_words`)."""
        return uniform_from_words(self.words(size))

    def poisson_mask(self, n: int, rate: float) -> NDArray[np.bool_]:
        """Poisson sampling of ``n`` rows: each row in independently with probability ``rate``.

        Row ``i`` is in when its word is below ``round(rate * 2**52)``, so the
        probability is that threshold over ``2**52``: ``rate`` to within ``2**-53``
        (exactly 0 and 1 for ``rate`` 0 and 1).

        Parameters
        ----------
        n : int
            Rows, >= 0.
        rate : float
            Sampling probability per row, in [0, 1].

        Raises
        ------
        ValueError
            ``n`` < 0 or ``rate`` outside [0, 1].
        """
        if n < 0:
            raise ValueError(f"n must be >= 0; got {n}")
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"rate must be in [0, 1]; got {rate}")
        threshold = np.uint64(round(rate * 2**WORD_BITS))
        mask: NDArray[np.bool_] = self.words(n) < threshold
        return mask


class SecureGaussian(SecureRandom):
    """A stream of N(0, std^2) draws keyed by 256 bits of OS entropy.

    Each draw is ``(Z1 + Z2 + Z3 + Z4) / 2`` where every ``Zk`` is the cosine branch of
    its own Box-Muller pair ``sqrt(-2 ln u1) cos(2 pi u2)``: eight fresh uniforms per
    output, none shared with another summand or another output.

    Parameters
    ----------
    key : bytes, optional
        32-byte ChaCha20 key; fresh from ``os.urandom`` when omitted. Pass a key only
        in tests that need reproducible draws.
    """

    def standard_normal(self, size: int) -> NDArray[np.float64]:
        """``size`` N(0, 1) draws (sum of four independent Box-Muller normals, halved)."""
        uniforms = self.uniform(size * _UNIFORMS_PER_NORMAL).reshape(size, _SUMMED_DRAWS, 2)
        radius = np.sqrt(-2.0 * np.log(uniforms[..., 0]))
        normals = radius * np.cos(2.0 * np.pi * uniforms[..., 1])
        summed: NDArray[np.float64] = normals.sum(axis=1) / 2.0
        return summed

    def like(self, reference: torch.Tensor, std: float) -> torch.Tensor:
        """Noise of standard deviation ``std`` shaped and typed like ``reference``."""
        draws = self.standard_normal(reference.numel()) * std
        return torch.from_numpy(draws).reshape(reference.shape).to(reference.dtype)
