"""Where a bank's DP noise streams get their ChaCha20 keys: the OS, or (research only) a seed.

Every DP draw a bank makes (DP-SGD's Gaussian noise and Poisson sampling, the set-up,
evaluation, governance and stability releases) comes from its own
:class:`~privacy.noise.SecureRandom` stream, one 256-bit ChaCha20 key per stream. A
:class:`NoiseKeys` hands out those keys; the bank's guard asks it for one per
*purpose* (:class:`NoisePurpose`) and per *stream* (which release: the guard names it
by the ledger event the release was charged as).

* :class:`FreshNoiseKeys` (every deployed bank, and the default everywhere): a fresh
  key from ``os.urandom`` for every stream; nothing about the noise can be predicted.
* :class:`SeededNoiseKeys` (``fedcredit simulate --reproducible-noise`` only): each
  key is derived from the simulation's seed with HKDF-SHA256 (RFC 5869, the
  ``cryptography`` package), its ``info`` the bank's name, the purpose and the stream,
  so that a simulation repeats exactly at the same seed. Anyone who knows the seed
  can recompute every draw and subtract the noise: the released model and statistics
  are then **not** differentially private. It exists for research on public or
  synthetic data (reproducible tables), never for real customers' data.

Notes
-----
Only the key source differs: the draws are made by the same ChaCha20 keystream and
Box-Muller sum (:mod:`privacy.noise`) either way, so the noise has the same
distribution and the ledger, the accounting and ``fedcredit privacy verify`` are
unchanged. Each stream uses its key with ChaCha20's zero nonce once; distinct
``(bank, purpose, stream)`` triples give independent keys (HKDF's ``info`` is
length-prefixed, so no two triples encode alike), which :func:`derive_noise_key`'s
tests check. No configuration a coordinator sends or a bank's deployed node reads
can choose :class:`SeededNoiseKeys`: only the simulation harness constructs it
(:mod:`simulations.engine`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import StrEnum, unique
from typing import Protocol

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = [
    "FreshNoiseKeys",
    "NoiseKeys",
    "NoisePurpose",
    "SeededNoiseKeys",
    "derive_noise_key",
]

KEY_BYTES = 32
"""A ChaCha20 key's length (:data:`privacy.noise.KEY_BYTES`; that module imports torch)."""
HKDF_SALT = b"fedcredit reproducible-noise v1"
"""HKDF's salt: binds derived keys to this scheme (and its version)."""


@unique
class NoisePurpose(StrEnum):
    """What a noise stream is drawn for; one key per purpose and stream."""

    DP_SGD_NOISE = "dp-sgd-noise"
    DP_SGD_SAMPLING = "dp-sgd-sampling"
    SETUP_RELEASE = "setup-release"
    EVALUATION_RELEASE = "evaluation-release"
    GOVERNANCE_RELEASE = "governance-release"
    STABILITY_RELEASE = "stability-release"
    GBDT_HISTOGRAM = "gbdt-histogram"


class NoiseKeys(Protocol):
    """A source of ChaCha20 keys for a bank's noise streams (hashable: guards are cached by it)."""

    def __hash__(self) -> int:
        """Hash of the source's settings (frozen dataclasses have one)."""
        ...

    @property
    def reproducible(self) -> bool:
        """Whether the keys can be recomputed by someone else (research only)."""
        ...

    def key(self, purpose: NoisePurpose, stream: str) -> bytes:
        """A 32-byte key for the ``purpose`` stream named ``stream``."""
        ...


@dataclass(frozen=True)
class FreshNoiseKeys:
    """A fresh 256-bit key from ``os.urandom`` for every stream: a real bank's noise."""

    @property
    def reproducible(self) -> bool:
        """False: nobody can recompute the keys."""
        return False

    def key(self, purpose: NoisePurpose, stream: str) -> bytes:
        """32 bytes of OS entropy (``purpose`` and ``stream`` are not used)."""
        return os.urandom(KEY_BYTES)


@dataclass(frozen=True)
class SeededNoiseKeys:
    """Keys derived from a simulation's seed: the same draws at the same seed.

    Research only: the noise is predictable from ``seed``, so nothing released under
    these keys is private. Only the simulation harness builds one.

    Parameters
    ----------
    seed : int
        The simulation's seed (``fedcredit simulate --seed``).
    bank : str
        The simulated bank's name; every bank gets its own keys.
    """

    seed: int
    bank: str

    @property
    def reproducible(self) -> bool:
        """True: anyone with the seed recomputes every key."""
        return True

    def key(self, purpose: NoisePurpose, stream: str) -> bytes:
        """:func:`derive_noise_key` of this seed and bank."""
        return derive_noise_key(self.seed, bank=self.bank, purpose=purpose, stream=stream)


def derive_noise_key(seed: int, *, bank: str, purpose: NoisePurpose, stream: str) -> bytes:
    """HKDF-SHA256 of ``seed`` with ``info`` = bank, purpose and stream (length-prefixed).

    Parameters
    ----------
    seed : int
        The input keying material (its decimal digits).
    bank, purpose, stream : str
        What the key is for; each part is UTF-8 with a 4-byte big-endian length
        before it, so two different triples never give the same ``info``.

    Returns
    -------
    bytes
        A 32-byte ChaCha20 key.
    """
    info = b"".join(
        len(part).to_bytes(4, "big") + part
        for part in (bank.encode(), str(purpose).encode(), stream.encode())
    )
    kdf = HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=HKDF_SALT, info=info)
    return kdf.derive(str(seed).encode())
