"""Fixed-point encoding of weighted updates into the ring Z_(2^64).

Secure aggregation sums integers modulo 2^64 (numpy's uint64 arithmetic wraps
exactly so). A participant with weight ``w`` encodes ``round(w * clip(x) * 2^f)`` as a
two's-complement 64-bit integer; the coordinator decodes the masked-then-unmasked sum
as a signed integer and divides by ``2^f`` and by the summed weight.

Notes
-----
Headroom. The decoded sum is exact while ``|sum_i w_i x_i| * 2^f < 2^63``. With values
clipped to ``[-c, c]`` that holds whenever ``W * c * 2^f + N / 2 < 2^63`` for total
weight ``W`` over ``N`` participants; :class:`FixedPoint` checks it before any
encoding (:meth:`FixedPoint.check_headroom`). Quantization: each participant's
rounding moves its term by at most 1/2 unit, so the decoded weighted mean is within
``N / (2 * 2^f * W)`` of the exact weighted mean of the clipped values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["FixedPoint"]

_SIGNED_LIMIT = 2**63


@dataclass(frozen=True, kw_only=True)
class FixedPoint:
    """A fixed-point code with ``fraction_bits`` bits after the point and a clip range.

    Parameters
    ----------
    clip : float
        Values are clipped to ``[-clip, clip]`` before encoding, > 0.
    fraction_bits : int
        Bits after the binary point, in [0, 52].
    """

    clip: float
    fraction_bits: int

    def __post_init__(self) -> None:
        if not self.clip > 0:
            raise ValueError(f"clip must be > 0; got {self.clip}")
        if not 0 <= self.fraction_bits <= 52:
            raise ValueError(f"fraction_bits must be in [0, 52]; got {self.fraction_bits}")

    @property
    def scale(self) -> float:
        """2 ** fraction_bits."""
        return float(2**self.fraction_bits)

    def check_headroom(self, *, total_weight: float, participants: int) -> None:
        """Raise ValueError if a sum of ``participants`` terms of ``total_weight`` may wrap."""
        worst = total_weight * self.clip * self.scale + participants / 2
        if worst >= _SIGNED_LIMIT:
            raise ValueError(
                f"fixed-point sum may overflow: total weight {total_weight:g} x clip "
                f"{self.clip:g} x 2^{self.fraction_bits} reaches 2^{np.log2(worst):.1f} >= 2^63; "
                "lower fraction_bits or the clip range"
            )

    def encode(self, values: NDArray[np.floating], weight: float) -> NDArray[np.uint64]:
        """``round(weight * clip(values) * 2^f)`` as ring elements (two's complement)."""
        if not weight >= 0:
            raise ValueError(f"weight must be >= 0; got {weight}")
        clipped = np.clip(np.asarray(values, dtype=np.float64), -self.clip, self.clip)
        scaled = np.rint(clipped * weight * self.scale)
        if np.any(np.abs(scaled) >= _SIGNED_LIMIT):
            raise ValueError("a weighted value does not fit 63 bits; check the headroom first")
        return scaled.astype(np.int64).view(np.uint64)

    def encode_weight(self, weight: float) -> np.uint64:
        """The weight itself as a ring element, scaled like the values."""
        return np.uint64(int(np.rint(weight * self.scale)) % 2**64)

    def decode_mean(
        self, total: NDArray[np.uint64], weight_total: np.uint64
    ) -> NDArray[np.float64]:
        """Weighted mean from the ring sums of weighted values and of weights."""
        weights = float(np.int64(np.uint64(weight_total)).item()) / self.scale
        if not weights > 0:
            raise ValueError(f"summed weight must be > 0; got {weights}")
        values = total.view(np.int64).astype(np.float64) / self.scale
        mean: NDArray[np.float64] = values / weights
        return mean
