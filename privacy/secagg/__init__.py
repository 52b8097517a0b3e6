"""Secure aggregation building blocks (the SecAgg+ protocol is built on these).

Fixed-point ring encoding, Shamir secret sharing, X25519/HKDF/AES-CTR/AEAD
primitives from the ``cryptography`` package, the communication graph (complete, or
SecAgg+'s sparse Harary graph with Bell et al.'s parameters) and the per-round cost
counters (:class:`SecAggCost`).
"""

from __future__ import annotations

from privacy.secagg._rounds import SecAggCost
from privacy.secagg.fixed_point import FixedPoint
from privacy.secagg.graph import GraphChoice, GraphPlan, harary_parameters
from privacy.secagg.primitives import (
    ShareRejected,
    derive_key,
    expand_mask,
    generate_private_key,
    open_share,
    public_bytes,
    seal_share,
)
from privacy.secagg.shamir import Share, combine_shares, split_secret

__all__ = [
    "FixedPoint",
    "GraphChoice",
    "GraphPlan",
    "SecAggCost",
    "Share",
    "ShareRejected",
    "combine_shares",
    "derive_key",
    "expand_mask",
    "generate_private_key",
    "harary_parameters",
    "open_share",
    "public_bytes",
    "seal_share",
    "split_secret",
]
