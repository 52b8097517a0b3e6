"""Fixed-point encoding of weighted updates into the ring Z_(2^k), k = 32 or 64.

Secure aggregation sums integers modulo 2^k (numpy's unsigned arithmetic wraps
exactly so). A participant with weight ``w`` encodes ``round(w * clip(x) * 2^f)`` as a
two's-complement k-bit integer; the coordinator decodes the masked-then-unmasked sum
as a signed integer and divides by ``2^f`` and by the summed weight. The weight itself
is encoded as ``round(w * 2^f)``.

Notes
-----
Headroom. The decoded sums are exact while ``|sum_i w_i x_i| * 2^f < 2^(k-1)`` and
``sum_i w_i * 2^f < 2^(k-1)``. With values clipped to ``[-c, c]`` both hold whenever

    W * max(c, 1) * 2^f + N / 2 < 2^(k-1)

for total weight ``W`` over ``N`` participants; :meth:`FixedPoint.check_headroom`
checks it and :meth:`FixedPoint.for_sum` picks the largest ``f`` that satisfies it.

Quantization. Each participant's rounding moves its term by at most 1/2 unit, so the
decoded weighted mean is within ``N / (2 * 2^f * W)`` of the exact weighted mean of
the clipped values (:meth:`FixedPoint.mean_error_bound`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["FINE_FRACTION_BITS", "FixedPoint", "RingArray"]

RingArray = NDArray[np.unsignedinteger]
FINE_FRACTION_BITS = 32
"""Fraction bits of unweighted totals that must decode to within about 1e-10 (sums of
probabilities, such as the governance release's): only in the 64-bit ring, where each
of N participants' terms may still reach about 2^31 / N in magnitude
(:meth:`FixedPoint.for_totals`)."""
_RING_DTYPES: dict[int, tuple[type[np.unsignedinteger], type[np.signedinteger]]] = {
    32: (np.uint32, np.int32),
    64: (np.uint64, np.int64),
}


@dataclass(frozen=True, kw_only=True)
class FixedPoint:
    """A fixed-point code with ``fraction_bits`` bits after the point and a clip range.

    Parameters
    ----------
    clip : float
        Values are clipped to ``[-clip, clip]`` before encoding, > 0.
    fraction_bits : int
        Bits after the binary point, in [0, ring_bits - 12].
    ring_bits : int
        The ring Z_(2^ring_bits): 32 (uploads as large as float32) or 64.
    """

    clip: float
    fraction_bits: int
    ring_bits: int = 64

    def __post_init__(self) -> None:
        if self.ring_bits not in _RING_DTYPES:
            raise ValueError(f"ring_bits must be 32 or 64; got {self.ring_bits}")
        if not self.clip > 0:
            raise ValueError(f"clip must be > 0; got {self.clip}")
        if not 0 <= self.fraction_bits <= self.ring_bits - 12:
            raise ValueError(
                f"fraction_bits must be in [0, {self.ring_bits - 12}]; got {self.fraction_bits}"
            )

    @classmethod
    def for_sum(
        cls, *, clip: float, total_weight: float, participants: int, ring_bits: int = 32
    ) -> FixedPoint:
        """The finest code whose sum of ``participants`` terms of ``total_weight`` cannot wrap.

        Raises
        ------
        ValueError
            If even ``fraction_bits = 0`` leaves no headroom.
        """
        limit = 2.0 ** (ring_bits - 1) - participants / 2
        magnitude = total_weight * max(clip, 1.0)
        if not magnitude > 0 or limit <= magnitude:
            raise ValueError(
                f"no fixed-point code fits total weight {total_weight:g} x clip {clip:g} "
                f"in a {ring_bits}-bit ring"
            )
        bits = min(math.floor(math.log2(limit / magnitude)), ring_bits - 12)
        while bits > 0 and magnitude * 2.0**bits >= limit:  # guard against log2 rounding up
            bits -= 1
        code = cls(clip=clip, fraction_bits=max(bits, 0), ring_bits=ring_bits)
        code.check_headroom(total_weight=total_weight, participants=participants)
        return code

    @classmethod
    def for_totals(
        cls, *, participants: int, ring_bits: int = 32, fraction_bits: int = 4
    ) -> FixedPoint:
        """A code for unweighted sums (counts, noisy counts, bounded sums) of ``participants``.

        Each participant's values are clipped to about the largest magnitude whose sum
        over ``participants`` cannot wrap, ``(2^(k-1) - N/2) / (N 2^f)``: each encoded
        term is at most ``(2^(k-1) - 1) // N`` units (in whole numbers, as a float64
        cannot hold such a bound of a 64-bit ring exactly).
        """
        if participants < 1:
            raise ValueError(f"participants must be >= 1; got {participants}")
        units = (2 ** (ring_bits - 1) - 1) // participants  # per term: N terms cannot wrap
        clip = float(units - 1) / 2.0**fraction_bits
        while math.floor(clip * 2.0**fraction_bits) + 1 > units:  # float rounded up
            clip = math.nextafter(clip, 0.0)
        return cls(clip=clip, fraction_bits=fraction_bits, ring_bits=ring_bits)

    def decode_total(self, total: RingArray) -> NDArray[np.float64]:
        """The unweighted sum from the ring sum of :meth:`encode` (weight 1) outputs."""
        signed = _RING_DTYPES[self.ring_bits][1]
        values: NDArray[np.float64] = (
            np.asarray(total, dtype=self.dtype).view(signed).astype(np.float64) / self.scale
        )
        return values

    @property
    def scale(self) -> float:
        """2 ** fraction_bits."""
        return float(2**self.fraction_bits)

    @property
    def dtype(self) -> type[np.unsignedinteger]:
        """The numpy dtype of ring elements (uint32 or uint64)."""
        return _RING_DTYPES[self.ring_bits][0]

    def check_headroom(self, *, total_weight: float, participants: int) -> None:
        """Raise ValueError if a sum of ``participants`` terms of ``total_weight`` may wrap."""
        worst = total_weight * max(self.clip, 1.0) * self.scale + participants / 2
        if worst >= 2.0 ** (self.ring_bits - 1):
            raise ValueError(
                f"fixed-point sum may overflow: total weight {total_weight:g} x clip "
                f"{self.clip:g} x 2^{self.fraction_bits} reaches 2^{np.log2(worst):.1f} "
                f">= 2^{self.ring_bits - 1}; lower fraction_bits or the clip range"
            )

    def mean_error_bound(self, *, total_weight: float, participants: int) -> float:
        """Largest possible gap between the decoded and the exact weighted mean."""
        return participants / (2 * self.scale * total_weight)

    def encode(self, values: NDArray[np.floating], weight: float) -> RingArray:
        """``round(weight * clip(values) * 2^f)`` as ring elements (two's complement).

        Raises
        ------
        ValueError
            ``weight`` is negative or not finite, or a value is NaN or infinite (the
            count is named): clipping would turn NaN into an arbitrary ring element.
        """
        if not (weight >= 0 and math.isfinite(weight)):
            raise ValueError(f"weight must be finite and >= 0; got {weight}")
        array = np.asarray(values, dtype=np.float64)
        non_finite = int(np.count_nonzero(~np.isfinite(array)))
        if non_finite:
            raise ValueError(
                f"values must be finite: {non_finite} of {array.size} are NaN or infinite; "
                "nothing was encoded"
            )
        clipped = np.clip(array, -self.clip, self.clip)
        scaled = np.rint(clipped * weight * self.scale)
        signed = _RING_DTYPES[self.ring_bits][1]
        if np.any(np.abs(scaled) >= 2.0 ** (self.ring_bits - 1)):
            raise ValueError(
                f"a weighted value does not fit {self.ring_bits - 1} bits; check the headroom first"
            )
        encoded: RingArray = scaled.astype(signed).view(self.dtype)
        return encoded

    def encode_weight(self, weight: float) -> np.unsignedinteger:
        """The weight itself as a ring element, scaled like the values."""
        return self.dtype(int(np.rint(weight * self.scale)) % 2**self.ring_bits)

    def decode_mean(
        self, total: RingArray, weight_total: np.unsignedinteger
    ) -> NDArray[np.float64]:
        """Weighted mean from the ring sums of weighted values and of weights."""
        signed = _RING_DTYPES[self.ring_bits][1]
        weights = float(np.asarray(weight_total, dtype=self.dtype).view(signed)) / self.scale
        if not weights > 0:
            raise ValueError(f"summed weight must be > 0; got {weights}")
        values = np.asarray(total, dtype=self.dtype).view(signed).astype(np.float64) / self.scale
        mean: NDArray[np.float64] = values / weights
        return mean
