"""Cryptographic building blocks of secure aggregation, all from ``cryptography``.

* Key agreement: X25519 (RFC 7748) between two participants' key pairs.
* Key derivation: HKDF-SHA256 (RFC 5869) from the agreed secret, with ``info``
  binding purpose, run, round, the ordered pair and both parties' public keys (in
  the pair's order), so each derived key is used once and belongs to those two keys
  only (a key substituted on one side derives another key).
* Mask expansion: the AES-256-CTR keystream (NIST SP 800-38A) under a 256-bit
  derived key, read as little-endian 32- or 64-bit ring elements. Each key expands
  exactly one mask, so a fixed zero initial counter block is safe; a mask of at most
  2^32 blocks is far below CTR's 2^64-block distinguishing bound. AES-CTR rather
  than ChaCha20 because AES-NI makes it about twice as fast here, and mask
  expansion is most of secure aggregation's cost.
* Share transport: ChaCha20-Poly1305 AEAD; the associated data binds sender,
  receiver, run and round, so a share moved to another pair or replayed in another
  round fails authentication.

Nothing here is a new primitive; this module only fixes encodings and contexts.
"""

from __future__ import annotations

import os
import struct

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from numpy.typing import NDArray

__all__ = [
    "KEY_BYTES",
    "ShareRejected",
    "derive_key",
    "expand_mask",
    "generate_private_key",
    "open_share",
    "public_bytes",
    "seal_share",
]

KEY_BYTES = 32
_NONCE_BYTES = 12
_DOMAIN = b"fedcredit/secagg/v1/"


class ShareRejected(ValueError):
    """A share ciphertext failed authentication: tampered, misaddressed or replayed."""


def generate_private_key() -> X25519PrivateKey:
    """A fresh X25519 private key from the operating system's CSPRNG."""
    return X25519PrivateKey.generate()


def public_bytes(private_key: X25519PrivateKey) -> bytes:
    """The raw 32-byte public key."""
    return private_key.public_key().public_bytes_raw()


def derive_key(
    private_key: X25519PrivateKey,
    peer_public: bytes,
    *,
    purpose: str,
    run: int,
    server_round: int,
    pair: tuple[int, int],
    publics: tuple[bytes, bytes],
) -> bytes:
    """A 256-bit key both ends of ``pair`` derive alike (X25519 then HKDF-SHA256).

    ``pair`` is ordered by the caller's convention (smaller id first), so both
    participants pass the same tuple; ``publics`` are the two parties' public keys of
    this purpose in the same order (each 32 bytes).

    Raises
    ------
    ValueError
        A public key is not 32 bytes, or ``peer_public`` is not among ``publics``.
    """
    if any(len(key) != KEY_BYTES for key in publics) or peer_public not in publics:
        raise ValueError(
            f"publics must be the pair's two {KEY_BYTES}-byte public keys, the peer's among them"
        )
    shared = private_key.exchange(X25519PublicKey.from_public_bytes(peer_public))
    info = (
        _DOMAIN
        + purpose.encode()
        + struct.pack(">QQQQ", run, server_round, *pair)
        + publics[0]
        + publics[1]
    )
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=info).derive(shared)


def expand_mask(key: bytes, length: int, *, ring_bits: int = 64) -> NDArray[np.unsignedinteger]:
    """``length`` uniform elements of Z_(2^ring_bits) from the AES-256-CTR keystream of ``key``.

    ``ring_bits`` is 32 or 64; the keystream is read as little-endian words of that
    size. The result is a read-only view of the keystream (no copy on little-endian
    machines); combine it into new arrays rather than writing to it.
    """
    if len(key) != KEY_BYTES:
        raise ValueError(f"mask key must be {KEY_BYTES} bytes; got {len(key)}")
    if ring_bits not in (32, 64):
        raise ValueError(f"ring_bits must be 32 or 64; got {ring_bits}")
    width = ring_bits // 8
    encryptor = Cipher(algorithms.AES(key), modes.CTR(bytes(16))).encryptor()
    stream = encryptor.update(bytes(width * length)) + encryptor.finalize()
    words = np.frombuffer(stream, dtype=f"<u{width}")
    native = np.uint32 if ring_bits == 32 else np.uint64
    return words if words.dtype.isnative else words.astype(native)


def _associated_data(sender: int, receiver: int, run: int, server_round: int) -> bytes:
    return _DOMAIN + b"share" + struct.pack(">QQQQ", sender, receiver, run, server_round)


def seal_share(
    key: bytes, plaintext: bytes, *, sender: int, receiver: int, run: int, server_round: int
) -> bytes:
    """Encrypt a share for ``receiver``: random 96-bit nonce, then ciphertext and tag."""
    nonce = os.urandom(_NONCE_BYTES)
    ad = _associated_data(sender, receiver, run, server_round)
    return nonce + ChaCha20Poly1305(key).encrypt(nonce, plaintext, ad)


def open_share(
    key: bytes, sealed: bytes, *, sender: int, receiver: int, run: int, server_round: int
) -> bytes:
    """Decrypt a share; :class:`ShareRejected` if it was altered or is out of context."""
    if len(sealed) < _NONCE_BYTES + 16:
        raise ShareRejected(f"share ciphertext from {sender} is too short")
    nonce, body = sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:]
    ad = _associated_data(sender, receiver, run, server_round)
    try:
        return ChaCha20Poly1305(key).decrypt(nonce, body, ad)
    except InvalidTag as exc:
        raise ShareRejected(
            f"share from participant {sender} to {receiver} (run {run}, round {server_round}) "
            "failed authentication: tampered, misaddressed or replayed"
        ) from exc
