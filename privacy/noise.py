"""Gaussian noise from a cryptographically secure source.

DP noise must be unpredictable: a noise stream an attacker can reconstruct (a
Mersenne Twister state recovered from outputs, a guessable seed) cancels the noise.
:class:`SecureGaussian` expands a 256-bit key from ``os.urandom`` with the ChaCha20
stream cipher of the ``cryptography`` package into uniform 53-bit floats, and turns
them into standard normals with the Box-Muller transform.

Notes
-----
Floating-point attacks on Gaussian samplers (Mironov, CCS 2012; Jin et al.,
"Are we there yet? Timing and floating-point attacks on differential privacy
systems", S&P 2022) exploit the gaps in the set of floats one draw can produce.
Following Holohan and Braghin ("Secure random sampling in differential privacy",
ESORICS 2021, section 5.1), as Opacus's ``secure_mode`` does, each output is the sum
of four independent normals divided by two, which has the same distribution and no
exploitable gaps. Draws are made in float64 and rounded to the parameter dtype last.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from numpy.typing import NDArray

__all__ = ["SecureGaussian"]

_KEY_BYTES = 32
_NONCE_BYTES = 16
_SUMMED_DRAWS = 4


class SecureGaussian:
    """A stream of N(0, std^2) draws keyed by 256 bits of OS entropy.

    Parameters
    ----------
    key : bytes, optional
        32-byte ChaCha20 key; fresh from ``os.urandom`` when omitted. Pass a key only
        in tests that need reproducible draws.
    """

    def __init__(self, key: bytes | None = None) -> None:
        key = os.urandom(_KEY_BYTES) if key is None else key
        if len(key) != _KEY_BYTES:
            raise ValueError(f"key must be {_KEY_BYTES} bytes; got {len(key)}")
        nonce = bytes(_NONCE_BYTES)  # each instance has its own random key: a zero nonce is safe
        self._keystream = Cipher(algorithms.ChaCha20(key, nonce), mode=None).encryptor()

    def uniform(self, size: int) -> NDArray[np.float64]:
        """``size`` floats uniform on (0, 1), never exactly 0 or 1."""
        raw = self._keystream.update(bytes(8 * size))
        words = np.frombuffer(raw, dtype="<u8") >> np.uint64(11)
        return (words.astype(np.float64) + 0.5) / float(2**53)

    def standard_normal(self, size: int) -> NDArray[np.float64]:
        """``size`` N(0, 1) draws (sum of four Box-Muller normals, halved)."""
        pairs = (size * _SUMMED_DRAWS + 1) // 2
        u1, u2 = self.uniform(pairs), self.uniform(pairs)
        radius = np.sqrt(-2.0 * np.log(u1))
        normals = np.concatenate([radius * np.cos(2 * np.pi * u2), radius * np.sin(2 * np.pi * u2)])
        summed: NDArray[np.float64] = (
            normals[: size * _SUMMED_DRAWS].reshape(_SUMMED_DRAWS, size).sum(axis=0)
        )
        return summed / 2.0

    def like(self, reference: torch.Tensor, std: float) -> torch.Tensor:
        """Noise of standard deviation ``std`` shaped and typed like ``reference``."""
        draws = self.standard_normal(reference.numel()) * std
        return torch.from_numpy(draws).reshape(reference.shape).to(reference.dtype)
