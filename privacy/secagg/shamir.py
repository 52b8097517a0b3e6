"""Shamir secret sharing over the prime field GF(2^521 - 1).

Shamir, "How to share a secret", CACM 22(11), 1979. A secret of up to 64 bytes (a
32-byte X25519 private key or self-mask seed fits) is the constant term of a random
polynomial of degree ``threshold - 1``; participant ``x`` (1, 2, ...) holds the
polynomial's value at ``x``. Any ``threshold`` shares determine the secret by
Lagrange interpolation at 0; fewer reveal nothing about it.

Notes
-----
The field is the Mersenne prime 2^521 - 1, larger than any 64-byte secret, so secrets
are embedded without reduction. Coefficients come from :func:`secrets.randbelow`
(the operating system's CSPRNG).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["PRIME", "Share", "combine_shares", "interpolate_at_zero", "split_secret"]

PRIME = 2**521 - 1
_SECRET_BYTES_MAX = 64
_SHARE_BYTES = 66  # ceil(521 / 8)


@dataclass(frozen=True)
class Share:
    """One participant's point ``(x, y)`` on the sharing polynomial."""

    x: int
    y: int

    def to_bytes(self) -> bytes:
        """Fixed-length encoding: 4-byte x then 66-byte y, big-endian."""
        return self.x.to_bytes(4, "big") + self.y.to_bytes(_SHARE_BYTES, "big")

    @classmethod
    def from_bytes(cls, data: bytes) -> Share:
        """Inverse of :meth:`to_bytes`."""
        if len(data) != 4 + _SHARE_BYTES:
            raise ValueError(f"a share is {4 + _SHARE_BYTES} bytes; got {len(data)}")
        y = int.from_bytes(data[4:], "big")
        if y >= PRIME:
            raise ValueError("share value outside the field")
        return cls(x=int.from_bytes(data[:4], "big"), y=y)


def split_secret(secret: bytes, *, xs: list[int], threshold: int) -> dict[int, Share]:
    """Share ``secret`` among the points ``xs`` so that any ``threshold`` recover it.

    Parameters
    ----------
    secret : bytes
        Up to 64 bytes.
    xs : list of int
        Distinct non-zero x-coordinates, one per holder (e.g. participant indices).
    threshold : int
        Shares needed to reconstruct, in [1, len(xs)].
    """
    if len(secret) > _SECRET_BYTES_MAX:
        raise ValueError(f"secret must be at most {_SECRET_BYTES_MAX} bytes; got {len(secret)}")
    if not 1 <= threshold <= len(xs):
        raise ValueError(f"threshold must be in [1, {len(xs)}]; got {threshold}")
    if len(set(xs)) != len(xs) or any(not 0 < x < PRIME for x in xs):
        raise ValueError("share x-coordinates must be distinct and non-zero")
    coefficients = [int.from_bytes(secret, "big")]
    coefficients += [secrets.randbelow(PRIME) for _ in range(threshold - 1)]
    return {x: Share(x=x, y=_evaluate(coefficients, x)) for x in xs}


def combine_shares(shares: Mapping[int, Share] | list[Share], *, length: int) -> bytes:
    """Recover a ``length``-byte secret from at least ``threshold`` shares.

    With fewer shares than the threshold the result is a random-looking value, not
    an error: the caller must know the threshold and pass enough shares.
    """
    points = list(shares.values()) if isinstance(shares, Mapping) else list(shares)
    secret = interpolate_at_zero(points)
    if secret >= 2 ** (8 * length):
        raise ValueError("shares do not combine to a secret of that length (too few or corrupt)")
    return secret.to_bytes(length, "big")


def interpolate_at_zero(points: list[Share]) -> int:
    """The field element at x = 0 of the polynomial through ``points`` (Lagrange).

    With ``X = prod_j (-x_j)``, the basis polynomial ``i`` at 0 is ``X / d_i`` where
    ``d_i = (-x_i) * prod_{j != i} (x_i - x_j)``; the ``t`` denominators are inverted
    together with one field inversion (Montgomery's batch inversion) instead of ``t``.
    """
    if not points:
        raise ValueError("no shares to combine")
    xs = [p.x for p in points]
    if len(set(xs)) != len(xs):
        raise ValueError("shares with the same x-coordinate")
    product = 1
    for x in xs:
        product = product * -x % PRIME
    denominators = []
    for i, x in enumerate(xs):
        denominator = -x % PRIME
        for j, other in enumerate(xs):
            if i != j:
                denominator = denominator * (x - other) % PRIME
        denominators.append(denominator)
    value = 0
    for point, inverse in zip(points, _inverses(denominators), strict=True):
        value = (value + point.y * inverse) % PRIME
    return value * product % PRIME


def _inverses(values: list[int]) -> list[int]:
    """The field inverses of non-zero ``values``, with one inversion (Montgomery's trick)."""
    prefix = [1]
    for value in values:
        prefix.append(prefix[-1] * value % PRIME)
    inverse = pow(prefix[-1], -1, PRIME)
    inverses = [0] * len(values)
    for index in range(len(values) - 1, -1, -1):
        inverses[index] = inverse * prefix[index] % PRIME
        inverse = inverse * values[index] % PRIME
    return inverses


def _evaluate(coefficients: list[int], x: int) -> int:
    value = 0
    for coefficient in reversed(coefficients):
        value = (value * x + coefficient) % PRIME
    return value
