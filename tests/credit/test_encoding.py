"""Feature encoders: federated fits equal pooled fits; encoded matrices are well formed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from numpy.typing import NDArray

from credit.datasets import embedded_data_path
from credit.encoding import (
    Z_CLIP,
    EncodingKind,
    FeatureEncoder,
    StatsSource,
    fit_encoder,
)
from credit.feature_stats import (
    FeatureStats,
    combine_feature_stats,
    compute_feature_stats,
    transform_values,
)
from credit.loading import load_bank_csv
from credit.schema import DatasetSchema
from tests.support.woe import FITTED_KINDS, encoder_of

BANK_CUTS = [1_000, 4_000, 11_000, 19_000]


@pytest.fixture(scope="module")
def frame(schema: DatasetSchema) -> pd.DataFrame:
    """The embedded data set, validated and typed."""
    return load_bank_csv(embedded_data_path(), schema).frame


@pytest.fixture(scope="module")
def bank_stats(frame: pd.DataFrame, schema: DatasetSchema) -> list[FeatureStats]:
    """Statistics of five banks of unequal size cut from the embedded data."""
    rows = np.random.default_rng(0).permutation(len(frame))
    return [compute_feature_stats(frame.iloc[p], schema) for p in np.split(rows, BANK_CUTS)]


@pytest.fixture(scope="module")
def pooled_stats(frame: pd.DataFrame, schema: DatasetSchema) -> FeatureStats:
    return compute_feature_stats(frame, schema)


def _blocks(encoder: FeatureEncoder) -> list[tuple[str, int, int]]:
    """(column, first, stop) of each column's block in the encoded matrix."""
    blocks, start = [], 0
    for encoding in (*encoder.numeric, *encoder.categorical):
        blocks.append((encoding.name, start, start + encoding.width))
        start += encoding.width
    return blocks


def _transformed(frame: pd.DataFrame, schema: DatasetSchema, name: str) -> NDArray[np.float64]:
    feature = next(f for f in schema.numeric if f.name == name)
    return transform_values(frame[name].to_numpy(np.float64), feature.transform)


def _assert_numeric_equal(actual: FeatureEncoder, expected: FeatureEncoder) -> None:
    """Column-by-column comparison with a readable message on failure."""
    for got, want in zip(actual.numeric, expected.numeric, strict=True):
        assert got.edges == want.edges, got.name
        assert got == want, (
            f"{got.name}: mean {got.mean!r} vs {want.mean!r}, std {got.std!r} vs {want.std!r}"
        )


# -- federated == pooled --------------------------------------------------------------


def test_binned_encoder_from_combined_stats_equals_pooled_encoder(
    bank_stats: list[FeatureStats],
    pooled_stats: FeatureStats,
    frame: pd.DataFrame,
    schema: DatasetSchema,
) -> None:
    federated = fit_encoder(schema, stats=combine_feature_stats(bank_stats))
    pooled = fit_encoder(schema, stats=pooled_stats)

    _assert_numeric_equal(federated, pooled)
    assert federated == pooled
    np.testing.assert_array_equal(federated.transform(frame), pooled.transform(frame))


def test_binned_encoder_does_not_depend_on_bank_order(
    bank_stats: list[FeatureStats], schema: DatasetSchema
) -> None:
    forward = fit_encoder(schema, stats=combine_feature_stats(bank_stats))
    backward = fit_encoder(schema, stats=combine_feature_stats(bank_stats[::-1]))

    _assert_numeric_equal(forward, backward)
    assert forward == backward
    assert forward.model_dump_json() == backward.model_dump_json()


def test_standardized_encoder_from_combined_stats_matches_pooled_encoder(
    bank_stats: list[FeatureStats],
    pooled_stats: FeatureStats,
    frame: pd.DataFrame,
    schema: DatasetSchema,
) -> None:
    """Moments are float sums, so they agree to rounding; everything else is identical."""
    kind = EncodingKind.STANDARDIZED
    federated = fit_encoder(schema, kind=kind, stats=combine_feature_stats(bank_stats))
    pooled = fit_encoder(schema, kind=kind, stats=pooled_stats)

    assert federated.categorical == pooled.categorical
    assert (federated.kind, federated.source, federated.schema_hash) == (
        pooled.kind,
        pooled.source,
        pooled.schema_hash,
    )
    for got, expected in zip(federated.numeric, pooled.numeric, strict=True):
        assert (got.name, got.transform, got.edges) == (expected.name, expected.transform, ())
        assert got.mean == pytest.approx(expected.mean, rel=1e-12)
        assert got.std == pytest.approx(expected.std, rel=1e-12)
    np.testing.assert_array_equal(federated.transform(frame), pooled.transform(frame))


# -- binned ---------------------------------------------------------------------------


@pytest.mark.parametrize("source", list(StatsSource))
def test_binned_rows_have_one_hot_per_column_block(
    source: StatsSource, pooled_stats: FeatureStats, frame: pd.DataFrame, schema: DatasetSchema
) -> None:
    encoder = fit_encoder(schema, source=source, stats=pooled_stats)
    matrix = encoder.transform(frame)

    assert matrix.dtype == np.float32
    assert matrix.shape == (len(frame), encoder.n_inputs)
    assert len(encoder.input_names) == encoder.n_inputs
    assert len(set(encoder.input_names)) == encoder.n_inputs
    assert set(np.unique(matrix)) == {0.0, 1.0}
    blocks = _blocks(encoder)
    assert blocks[-1][2] == encoder.n_inputs
    for name, first, stop in blocks:
        np.testing.assert_array_equal(matrix[:, first:stop].sum(axis=1), 1.0, err_msg=name)
    numeric_names = [e.name for e in encoder.numeric]
    assert numeric_names == [f.name for f in schema.numeric if f.name in schema.input_features]
    assert [e.name for e in encoder.categorical] == [
        f.name for f in schema.categorical if f.name in schema.input_features
    ]


def test_binned_categorical_block_marks_the_declared_level(
    pooled_stats: FeatureStats, frame: pd.DataFrame, schema: DatasetSchema
) -> None:
    encoder = fit_encoder(schema, stats=pooled_stats)
    matrix = encoder.transform(frame)
    name, first, stop = next(b for b in _blocks(encoder) if b[0] == "PAY_0")
    levels = next(e.levels for e in encoder.categorical if e.name == "PAY_0")

    chosen = np.asarray(levels)[matrix[:, first:stop].argmax(axis=1)]
    np.testing.assert_array_equal(chosen, frame[name].to_numpy())
    assert encoder.input_names[first : first + 2] == ["PAY_0=-2", "PAY_0=-1"]


def test_quantile_bins_of_limit_bal_are_roughly_deciles(
    pooled_stats: FeatureStats, frame: pd.DataFrame, schema: DatasetSchema
) -> None:
    encoder = fit_encoder(schema, stats=pooled_stats, quantile_bins=10)
    _, first, stop = next(b for b in _blocks(encoder) if b[0] == "LIMIT_BAL")
    shares = encoder.transform(frame)[:, first:stop].mean(axis=0)

    assert 5 <= stop - first <= 10
    assert np.all(shares >= 0.02), shares
    assert np.all(shares <= 0.25), shares
    assert encoder.input_names[first] == "LIMIT_BAL[bin 0]"


def test_binned_rows_land_in_the_bin_between_their_edges(
    pooled_stats: FeatureStats, frame: pd.DataFrame, schema: DatasetSchema
) -> None:
    encoder = fit_encoder(schema, stats=pooled_stats)
    matrix = encoder.transform(frame)
    for (name, first, stop), encoding in zip(_blocks(encoder), encoder.numeric, strict=False):
        values = _transformed(frame, schema, name)
        edges = np.concatenate([[-np.inf], encoding.edges, [np.inf]])
        index = matrix[:, first:stop].argmax(axis=1)
        assert np.all(edges[index] <= values), name
        assert np.all(values < edges[index + 1]), name


# -- standardized ---------------------------------------------------------------------


def test_standardized_numeric_columns_have_zero_mean_unit_std(
    pooled_stats: FeatureStats, frame: pd.DataFrame, schema: DatasetSchema
) -> None:
    encoder = fit_encoder(schema, kind=EncodingKind.STANDARDIZED, stats=pooled_stats)
    matrix = encoder.transform(frame)
    n_numeric = len(encoder.numeric)

    assert matrix.shape == (len(frame), encoder.n_inputs)
    assert len(encoder.input_names) == encoder.n_inputs
    assert encoder.input_names[:n_numeric] == [e.name for e in encoder.numeric]
    z = matrix[:, :n_numeric].astype(np.float64)
    assert np.all(np.abs(z) <= Z_CLIP)
    # Clipping at +-5 touches under 0.1 % of rows: it can only shrink the spread.
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=0.01)
    assert np.all(z.std(axis=0) <= 1.0 + 1e-6)
    assert np.all(z.std(axis=0) >= 0.99)
    for column, encoding in enumerate(encoder.numeric):
        exact = (_transformed(frame, schema, encoding.name) - encoding.mean) / encoding.std
        inside = np.abs(exact) < Z_CLIP
        assert inside.mean() > 0.999
        np.testing.assert_array_equal(z[inside, column], exact[inside].astype(np.float32))
        np.testing.assert_array_equal(z[~inside, column], np.sign(exact[~inside]) * Z_CLIP)
    categorical = matrix[:, n_numeric:]
    assert categorical.sum() == len(frame) * len(encoder.categorical)


# -- public source --------------------------------------------------------------------


@pytest.mark.parametrize("kind", FITTED_KINDS)
def test_public_encoder_needs_no_stats_and_stays_within_bounds(
    kind: EncodingKind, pooled_stats: FeatureStats, schema: DatasetSchema
) -> None:
    encoder = fit_encoder(schema, kind=kind, source=StatsSource.PUBLIC, quantile_bins=8)

    assert encoder.source is StatsSource.PUBLIC
    assert encoder.schema_hash == schema.schema_hash()
    # Public parameters ignore any data statistics that happen to be passed.
    with_stats = fit_encoder(
        schema, kind=kind, source=StatsSource.PUBLIC, stats=pooled_stats, quantile_bins=8
    )
    assert with_stats == encoder
    for encoding in encoder.numeric:
        feature = next(f for f in schema.numeric if f.name == encoding.name)
        low, high = transform_values(np.array([feature.min, feature.max]), feature.transform)
        if kind is EncodingKind.STANDARDIZED:
            assert encoding.edges == ()
            # The public bounds map to z = -2 and z = +2.
            assert (low - encoding.mean) / encoding.std == pytest.approx(-2.0)
            assert (high - encoding.mean) / encoding.std == pytest.approx(2.0)
            continue
        edges = np.asarray(encoding.edges)
        assert edges.size == 7  # no public bins declared: 8 equal-width bins
        assert np.all((edges > low) & (edges < high))
        widths = np.diff(np.concatenate([[low], edges, [high]]))
        np.testing.assert_allclose(widths, (high - low) / 8, rtol=1e-9)


def test_a_woe_encoder_is_not_fitted_from_moments_and_histograms(schema: DatasetSchema) -> None:
    with pytest.raises(ValueError, match=r"use credit\.woe_binning\.fit_woe_encoder"):
        fit_encoder(schema, kind=EncodingKind.WOE, source=StatsSource.PUBLIC)


def test_federated_encoder_without_stats_is_rejected(schema: DatasetSchema) -> None:
    with pytest.raises(ValueError, match="federated encoder needs combined feature statistics"):
        fit_encoder(schema, source=StatsSource.FEDERATED)


@pytest.mark.parametrize("quantile_bins", [-1, 0, 1])
def test_fewer_than_two_quantile_bins_are_rejected(
    quantile_bins: int, schema: DatasetSchema
) -> None:
    with pytest.raises(ValueError, match="quantile_bins must be >= 2"):
        fit_encoder(schema, source=StatsSource.PUBLIC, quantile_bins=quantile_bins)


# -- serialisation --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "source"),
    [*((kind, source) for kind in FITTED_KINDS for source in StatsSource),
     (EncodingKind.WOE, StatsSource.FEDERATED)],
)  # fmt: skip
def test_encoder_json_round_trip_gives_an_equal_encoder(
    kind: EncodingKind,
    source: StatsSource,
    pooled_stats: FeatureStats,
    frame: pd.DataFrame,
    schema: DatasetSchema,
) -> None:
    if kind is EncodingKind.WOE:
        encoder = encoder_of(kind, schema, pooled_stats)
    else:
        encoder = fit_encoder(schema, kind=kind, source=source, stats=pooled_stats)
    restored = FeatureEncoder.model_validate_json(encoder.model_dump_json())

    assert restored == encoder
    assert restored.input_names == encoder.input_names
    sample = frame.iloc[:500]
    np.testing.assert_array_equal(restored.transform(sample), encoder.transform(sample))
