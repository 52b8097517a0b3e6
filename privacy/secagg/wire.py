"""Wire form of the protocol's messages: compact JSON bytes inside Flower records.

Participant ids are Flower node ids (unsigned 64-bit), written as decimal strings;
keys, seeds and ciphertexts as base64. Masked vectors travel separately as arrays.
Every ``decode_*`` function reads bytes from the network: anything that is not what
its ``encode_*`` twin writes raises :class:`~credit.errors.MalformedMessage`.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, TypeVar

from credit.errors import MalformedMessage
from privacy.secagg.fixed_point import FixedPoint
from privacy.secagg.protocol import Advertisement, Forward, UnmaskRequest
from privacy.secagg.signed import RosterEntry

__all__ = [
    "decode_advertisement",
    "decode_fixed_point",
    "decode_forward",
    "decode_keys",
    "decode_roster",
    "decode_survivors",
    "decode_unmask",
    "encode_advertisement",
    "encode_fixed_point",
    "encode_forward",
    "encode_keys",
    "encode_roster",
    "encode_survivors",
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


def _ids(raw: Any) -> frozenset[int]:
    if not isinstance(raw, list):
        raise TypeError(f"expected a list of node ids, got {type(raw).__name__}")
    return frozenset(int(p) for p in raw)


def encode_roster(roster: Mapping[int, RosterEntry]) -> bytes:
    """Node id -> member name, encryption key and enrollment signature."""
    return _dump(
        {
            str(node): {
                "member": entry.member,
                "encryption_key": base64.b64encode(entry.encryption_key).decode(),
                "signature": base64.b64encode(entry.signature).decode(),
            }
            for node, entry in roster.items()
        }
    )


def decode_roster(data: bytes) -> dict[int, RosterEntry]:
    """Inverse of :func:`encode_roster`.

    Remembered per process for the last few rosters (a pure function of the bytes):
    every simulated bank of a worker decodes the same N-member roster each round.
    Each caller gets its own dict.
    """
    return dict(_decoded_roster(data))


@functools.lru_cache(maxsize=8)
def _decoded_roster(data: bytes) -> Mapping[int, RosterEntry]:
    raw = _load(data, "roster")

    def entry(value: Any) -> RosterEntry:
        member = value["member"]
        if not isinstance(member, str):
            raise TypeError(f"member name is {type(member).__name__}")
        return RosterEntry(
            member=member,
            encryption_key=_b64(value["encryption_key"]),
            signature=_b64(value["signature"]),
        )

    return MappingProxyType(_guarded("roster", lambda: {int(k): entry(v) for k, v in raw.items()}))


def encode_survivors(survivors: frozenset[int]) -> bytes:
    """A survivor set (the consistency check's question) as bytes."""
    return _dump(sorted(str(p) for p in survivors))


def decode_survivors(data: bytes) -> frozenset[int]:
    """Inverse of :func:`encode_survivors`."""
    raw = _load(data, "survivor set")
    return _guarded("survivor set", lambda: _ids(raw))


def encode_advertisement(advertisement: Advertisement) -> bytes:
    """An :class:`Advertisement` as bytes."""
    return _dump(
        {
            "mask_public": base64.b64encode(advertisement.mask_public).decode(),
            "sealed": json.loads(encode_keys(advertisement.sealed)),
            "signature": base64.b64encode(advertisement.signature).decode(),
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
            signature=_b64(raw["signature"]),
        ),
    )


def encode_forward(forward: Forward) -> bytes:
    """A :class:`Forward` as bytes."""
    return _dump(
        {
            "mask_publics": json.loads(encode_keys(forward.mask_publics)),
            "sealed": json.loads(encode_keys(forward.sealed)),
            "signatures": json.loads(encode_keys(forward.signatures)),
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
            signatures=decode_keys(_dump(raw["signatures"]), "forward"),
        ),
    )


def encode_unmask(request: UnmaskRequest) -> bytes:
    """An :class:`UnmaskRequest` as bytes."""
    return _dump(
        {
            "survivors": sorted(str(p) for p in request.survivors),
            "dropped": sorted(str(p) for p in request.dropped),
            "signatures": json.loads(encode_keys(request.signatures)),
        }
    )


def decode_unmask(data: bytes) -> UnmaskRequest:
    """Inverse of :func:`encode_unmask`."""
    raw = _load(data, "unmask request")
    return _guarded(
        "unmask request",
        lambda: UnmaskRequest(
            survivors=_ids(raw["survivors"]),
            dropped=_ids(raw["dropped"]),
            signatures=decode_keys(_dump(raw["signatures"]), "unmask request"),
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
