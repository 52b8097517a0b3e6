"""Key agreement, mask expansion and share transport."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from privacy.secagg.primitives import (
    ShareRejected,
    derive_key,
    expand_mask,
    generate_private_key,
    open_share,
    public_bytes,
    seal_share,
)

CONTEXT = {"purpose": "mask", "run": 7, "server_round": 3, "pair": (1, 2)}


def test_both_ends_derive_the_same_key_and_contexts_separate_it() -> None:
    alice, bob = generate_private_key(), generate_private_key()
    publics = (public_bytes(alice), public_bytes(bob))
    context = {**CONTEXT, "publics": publics}
    key = derive_key(alice, public_bytes(bob), **context)  # type: ignore[arg-type]
    assert key == derive_key(bob, public_bytes(alice), **context)  # type: ignore[arg-type]
    for change in ({"server_round": 4}, {"run": 8}, {"purpose": "channel"}, {"pair": (1, 3)}):
        assert derive_key(alice, public_bytes(bob), **{**context, **change}) != key  # type: ignore[arg-type]


def test_the_derived_key_binds_both_public_keys() -> None:
    alice, bob, mallory = generate_private_key(), generate_private_key(), generate_private_key()
    key = derive_key(
        alice, public_bytes(bob), **CONTEXT, publics=(public_bytes(alice), public_bytes(bob))
    )  # type: ignore[arg-type]
    # The same shared secret under another pair of public keys (e.g. a substituted own
    # key in the info) derives another key; a peer key outside the pair is refused.
    other = derive_key(
        alice, public_bytes(bob), **CONTEXT, publics=(public_bytes(mallory), public_bytes(bob))
    )  # type: ignore[arg-type]
    assert other != key
    with pytest.raises(ValueError, match="publics must be the pair's two"):
        derive_key(
            alice,
            public_bytes(bob),
            **CONTEXT,  # type: ignore[arg-type]
            publics=(public_bytes(alice), public_bytes(mallory)),
        )


def test_masks_are_uniform_over_the_ring() -> None:
    mask = expand_mask(bytes(range(32)), 200_000)
    # Chi-square over 256 buckets of the top byte and of the bottom byte.
    for shift in (56, 0):
        buckets = np.bincount(
            ((mask >> np.uint64(shift)) & np.uint64(255)).astype(np.int64), minlength=256
        )
        assert stats.chisquare(buckets).pvalue > 1e-4
    # Masked values carry no trace of the input: masking a constant gives uniform output.
    masked = np.full(200_000, 12345, dtype=np.uint64) + mask
    assert (
        stats.chisquare(
            np.bincount((masked >> np.uint64(56)).astype(np.int64), minlength=256)
        ).pvalue
        > 1e-4
    )


def test_one_bit_of_key_changes_the_whole_mask() -> None:
    key = bytearray(range(32))
    first = expand_mask(bytes(key), 4_096)
    key[31] ^= 1
    second = expand_mask(bytes(key), 4_096)
    differing_bits = np.unpackbits((first ^ second).view(np.uint8)).mean()
    assert 0.48 < differing_bits < 0.52
    assert not np.any(first == second)


def test_sealed_share_opens_only_in_its_context() -> None:
    key = bytes(32)
    sealed = seal_share(key, b"share", sender=1, receiver=2, run=7, server_round=3)
    assert open_share(key, sealed, sender=1, receiver=2, run=7, server_round=3) == b"share"
    for context in (
        {"sender": 3, "receiver": 2, "run": 7, "server_round": 3},
        {"sender": 1, "receiver": 4, "run": 7, "server_round": 3},
        {"sender": 1, "receiver": 2, "run": 8, "server_round": 3},
        {"sender": 1, "receiver": 2, "run": 7, "server_round": 4},  # replayed next round
    ):
        with pytest.raises(ShareRejected):
            open_share(key, sealed, **context)


def test_tampered_share_is_rejected() -> None:
    key = bytes(32)
    sealed = bytearray(seal_share(key, b"share", sender=1, receiver=2, run=7, server_round=3))
    sealed[-1] ^= 0x01
    with pytest.raises(ShareRejected, match="failed authentication"):
        open_share(key, bytes(sealed), sender=1, receiver=2, run=7, server_round=3)
    with pytest.raises(ShareRejected, match="too short"):
        open_share(key, b"x", sender=1, receiver=2, run=7, server_round=3)
