"""Shared bins: codes agree with XGBoost's float32 threshold test."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from credit.encoding import (
    CategoricalEncoding,
    EncodingKind,
    FeatureEncoder,
    NumericEncoding,
    StatsSource,
    fit_encoder,
)
from credit.gbdt import FeatureBins, bins_from_encoder, matrix_card, raw_matrix
from credit.schema import DatasetSchema


def test_code_below_split_bin_is_value_below_threshold() -> None:
    edges = (-1.5, 0.0, 0.125, 7.25)
    bins = FeatureBins(names=("x",), edges=(edges,))
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(size=500), edges, np.nextafter(edges, -np.inf)])
    values32 = values.astype(np.float32).reshape(-1, 1)
    codes = bins.codes(values32)[:, 0]
    for split_bin in range(1, len(edges) + 1):
        below = values32[:, 0] < np.float32(bins.threshold(0, split_bin))
        np.testing.assert_array_equal(codes < split_bin, below)


def test_missing_values_take_the_last_code() -> None:
    bins = FeatureBins(names=("x", "y"), edges=((0.0,), (1.0, 2.0, 3.0)))
    codes = bins.codes(np.array([[np.nan, 5.0], [-1.0, np.nan]]))
    assert bins.n_bins == 5 and bins.missing_code == 4
    np.testing.assert_array_equal(codes, [[4, 3], [0, 4]])


def test_all_regular_left_threshold_is_largest_float32() -> None:
    bins = FeatureBins(names=("x",), edges=((0.0, 1.0),))
    assert bins.threshold(0, 3) == float(np.finfo(np.float32).max)


@pytest.mark.parametrize(
    ("edges", "problem"),
    [((1.0, 1.0), "strictly increasing"), ((0.1,), "float32"), ((np.inf,), "finite")],
)
def test_bad_edges_are_refused_naming_the_feature(edges: tuple[float, ...], problem: str) -> None:
    with pytest.raises(ValueError, match=f"feature 'x'.*{problem}"):
        FeatureBins(names=("x",), edges=(edges,))


def test_codes_need_one_column_per_feature() -> None:
    bins = FeatureBins(names=("x", "y"), edges=((0.0,), (0.0,)))
    with pytest.raises(ValueError, match=r"2 columns \(x, y\); got shape \(3, 1\)"):
        bins.codes(np.zeros((3, 1)))


def test_encoder_bins_give_each_level_its_own_bin(schema: DatasetSchema) -> None:
    bins = bins_from_encoder(fit_encoder(schema, source="public"))
    pay_0 = bins.names.index("PAY_0")
    levels = next(f.levels for f in schema.categorical if f.name == "PAY_0")
    assert bins.edges[pay_0] == tuple(float(level) for level in sorted(levels)[1:])
    codes = bins.codes(
        np.tile(np.array(sorted(levels), dtype=np.float32)[:, None], bins.n_features)
    )
    np.testing.assert_array_equal(codes[:, pay_0], np.arange(len(levels)))


def test_a_standardized_encoder_is_refused(schema: DatasetSchema) -> None:
    encoder = fit_encoder(schema, kind=EncodingKind.STANDARDIZED, source="public")
    with pytest.raises(ValueError, match=r"binned encoder.*'standardized'"):
        bins_from_encoder(encoder)


def test_the_matrix_card_rebuilds_the_raw_matrix(
    schema: DatasetSchema, embedded_frame: pd.DataFrame
) -> None:
    frame = embedded_frame.iloc[:50]
    encoder = fit_encoder(schema, source="public")
    card = json.loads(json.dumps(matrix_card(encoder)))
    columns = [frame[c["name"]].to_numpy(dtype=np.float32) for c in card["columns"]]
    np.testing.assert_array_equal(np.column_stack(columns), raw_matrix(frame, encoder))
    bins = bins_from_encoder(encoder)
    assert [c["index"] for c in card["columns"]] == list(range(bins.n_features))
    assert [tuple(c["edges"]) for c in card["columns"]] == list(bins.edges)
    assert str(bins.missing_code) in card["bin_code_rule"]


def test_text_levels_are_their_positions() -> None:
    encoder = FeatureEncoder(
        kind=EncodingKind.BINNED,
        source=StatsSource.PUBLIC,
        schema_hash="test",
        numeric=(NumericEncoding(name="amount", transform="none", edges=(10.0, 20.0)),),
        categorical=(CategoricalEncoding(name="grade", levels=("A", "B", "C"), missing=True),),
    )
    frame = pd.DataFrame({"amount": [5.0, 15.0, np.nan], "grade": ["C", None, "A"]})
    values = raw_matrix(frame, encoder)
    np.testing.assert_array_equal(values, [[5.0, 2.0], [15.0, np.nan], [np.nan, 0.0]])
    bins = bins_from_encoder(encoder)
    assert bins.edges == ((10.0, 20.0), (1.0, 2.0))
    np.testing.assert_array_equal(bins.codes(values), [[0, 2], [1, 3], [3, 0]])
    assert matrix_card(encoder)["columns"][1]["value"] == "the level's position in 'levels'"
