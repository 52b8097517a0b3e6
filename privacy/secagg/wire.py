"""Wire form of the protocol's messages: compact JSON bytes inside Flower records.

Participant ids are Flower node ids (unsigned 64-bit), written as decimal strings;
keys, seeds and ciphertexts as base64. Masked vectors travel separately as arrays.
Every ``decode_*`` function reads bytes from the network: anything that is not what
its ``encode_*`` twin writes raises :class:`~credit.errors.MalformedMessage`.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from credit.errors import MalformedMessage
from privacy.secagg.fixed_point import FixedPoint
from privacy.secagg.protocol import Advertisement, Forward, UnmaskRequest

__all__ = [
    "decode_advertisement",
    "decode_fixed_point",
    "decode_forward",
    "decode_keys",
    "decode_unmask",
    "encode_advertisement",
    "encode_fixed_point",
    "encode_forward",
    "encode_keys",
    "encode_unmask",
]


T = TypeVar("T")
_BROKEN = (KeyError, TypeError, ValueError, AttributeError, binascii.Error)


def _guarded(what: str, parse: Callable[[], T]) -> T:
    """``parse()``, with any sign of a malformed input turned into MalformedMessage."""
    try:
        return parse()
    except MalformedMessage:
        raise
    except _BROKEN as exc:
        raise MalformedMessage(f"malformed secure-aggregation {what} ({exc})") from None


def _b64(text: Any) -> bytes:
    if not isinstance(text, str):
        raise TypeError(f"expected base64 text, got {type(text).__name__}")
    return base64.b64decode(text, validate=True)


def _dump(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":"), sort_keys=True).encode()


def _load(data: bytes, what: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedMessage(f"malformed secure-aggregation {what} (not JSON)") from exc


def encode_keys(keys: Mapping[int, bytes]) -> bytes:
    """Participant id -> key bytes (rosters, reveals)."""
    return _dump({str(k): base64.b64encode(v).decode() for k, v in keys.items()})


def decode_keys(data: bytes, what: str = "key map") -> dict[int, bytes]:
    """Inverse of :func:`encode_keys`."""
    raw = _load(data, what)
    return _guarded(what, lambda: {int(k): _b64(v) for k, v in raw.items()})


def encode_advertisement(advertisement: Advertisement) -> bytes:
    """An :class:`Advertisement` as bytes."""
    return _dump(
        {
            "mask_public": base64.b64encode(advertisement.mask_public).decode(),
            "sealed": json.loads(encode_keys(advertisement.sealed)),
        }
    )


def decode_advertisement(data: bytes) -> Advertisement:
    """Inverse of :func:`encode_advertisement`."""
    raw = _load(data, "advertisement")
    return _guarded(
        "advertisement",
        lambda: Advertisement(
            mask_public=_b64(raw["mask_public"]),
            sealed=decode_keys(_dump(raw["sealed"]), "advertisement"),
        ),
    )


def encode_forward(forward: Forward) -> bytes:
    """A :class:`Forward` as bytes."""
    return _dump(
        {
            "mask_publics": json.loads(encode_keys(forward.mask_publics)),
            "sealed": json.loads(encode_keys(forward.sealed)),
        }
    )


def decode_forward(data: bytes) -> Forward:
    """Inverse of :func:`encode_forward`."""
    raw = _load(data, "forward")
    return _guarded(
        "forward",
        lambda: Forward(
            mask_publics=decode_keys(_dump(raw["mask_publics"]), "forward"),
            sealed=decode_keys(_dump(raw["sealed"]), "forward"),
        ),
    )


def encode_unmask(request: UnmaskRequest) -> bytes:
    """An :class:`UnmaskRequest` as bytes."""
    return _dump(
        {
            "survivors": sorted(str(p) for p in request.survivors),
            "dropped": sorted(str(p) for p in request.dropped),
        }
    )


def decode_unmask(data: bytes) -> UnmaskRequest:
    """Inverse of :func:`encode_unmask`."""
    raw = _load(data, "unmask request")
    return _guarded(
        "unmask request",
        lambda: UnmaskRequest(
            survivors=frozenset(int(p) for p in raw["survivors"]),
            dropped=frozenset(int(p) for p in raw["dropped"]),
        ),
    )


def encode_fixed_point(code: FixedPoint) -> str:
    """A :class:`FixedPoint` as a short string: ``clip:fraction_bits:ring_bits``."""
    return f"{code.clip!r}:{code.fraction_bits}:{code.ring_bits}"


def decode_fixed_point(text: str) -> FixedPoint:
    """Inverse of :func:`encode_fixed_point`."""

    def parse() -> FixedPoint:
        clip, bits, ring = text.split(":")
        return FixedPoint(clip=float(clip), fraction_bits=int(bits), ring_bits=int(ring))

    return _guarded("fixed-point code", parse)
