"""Shamir sharing: any threshold of shares recovers the secret, fewer do not."""

from __future__ import annotations

import itertools
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privacy.secagg.shamir import (
    PRIME,
    Share,
    combine_shares,
    interpolate_at_zero,
    split_secret,
)


@settings(max_examples=40, deadline=None)
@given(
    secret=st.binary(min_size=32, max_size=32),
    n_holders=st.integers(2, 9),
    data=st.data(),
)
def test_any_threshold_subset_recovers(secret: bytes, n_holders: int, data: st.DataObject) -> None:
    threshold = data.draw(st.integers(1, n_holders))
    shares = split_secret(secret, xs=list(range(1, n_holders + 1)), threshold=threshold)
    subset = data.draw(st.permutations(list(shares.values())))[:threshold]
    assert combine_shares(subset, length=32) == secret


def test_every_subset_of_exactly_threshold_works_and_fewer_do_not() -> None:
    secret = os.urandom(32)
    shares = split_secret(secret, xs=[1, 2, 3, 4, 5], threshold=3)
    for subset in itertools.combinations(shares.values(), 3):
        assert combine_shares(list(subset), length=32) == secret
    for subset in itertools.combinations(shares.values(), 2):
        assert interpolate_at_zero(list(subset)) != int.from_bytes(secret, "big")


def test_share_bytes_round_trip_and_validation() -> None:
    share = split_secret(b"\x01" * 32, xs=[7], threshold=1)[7]
    assert Share.from_bytes(share.to_bytes()) == share
    with pytest.raises(ValueError, match="outside the field"):
        Share.from_bytes((7).to_bytes(4, "big") + PRIME.to_bytes(66, "big"))
    with pytest.raises(ValueError, match="bytes"):
        Share.from_bytes(b"short")


@pytest.mark.parametrize(
    ("xs", "threshold", "message"),
    [([1, 1], 1, "distinct"), ([0, 1], 1, "non-zero"), ([1, 2], 3, "threshold")],
)
def test_invalid_sharing_is_refused(xs: list[int], threshold: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        split_secret(b"x" * 32, xs=xs, threshold=threshold)
