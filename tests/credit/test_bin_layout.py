"""The bin layout on blanked data: regular bins, then special codes, then a missing bin.

The data are the embedded rows with 20 % of ``LIMIT_BAL`` and 10 % of ``PAY_2``
blanked and some ``PAY_AMT1`` values set to the special codes 96 and 98
(:mod:`tests.support.missing_data`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from credit.encoding import (
    MISSING_LABEL,
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
from credit.schema import DatasetSchema, load_schema
from tests.support.missing_data import SPECIAL_CODES, Blanked, write_blanked
from tests.support.woe import FITTED_KINDS

N_ROWS = 6_000


@pytest.fixture(scope="module")
def blanked(tmp_path_factory: pytest.TempPathFactory, embedded_frame: pd.DataFrame) -> Blanked:
    return write_blanked(tmp_path_factory.mktemp("blanked"), embedded_frame, n_rows=N_ROWS)


@pytest.fixture(scope="module")
def blanked_schema(blanked: Blanked) -> DatasetSchema:
    return load_schema(blanked.schema)


@pytest.fixture(scope="module")
def frame(blanked: Blanked, blanked_schema: DatasetSchema) -> pd.DataFrame:
    return load_bank_csv(blanked.data, blanked_schema).frame


@pytest.fixture(scope="module")
def stats(frame: pd.DataFrame, blanked_schema: DatasetSchema) -> FeatureStats:
    return compute_feature_stats(frame, blanked_schema)


def _block(encoder: FeatureEncoder, name: str) -> slice:
    """The columns of feature ``name`` in the encoded matrix."""
    start = 0
    for encoding in (*encoder.numeric, *encoder.categorical):
        if encoding.name == name:
            return slice(start, start + encoding.width)
        start += encoding.width
    raise KeyError(name)


# -- feature statistics ---------------------------------------------------------------


def test_feature_stats_count_regular_values_only(
    stats: FeatureStats, frame: pd.DataFrame, blanked: Blanked, blanked_schema: DatasetSchema
) -> None:
    limit = stats.numeric["LIMIT_BAL"]
    assert limit.count == N_ROWS - blanked.missing_limit.sum()
    assert limit.histogram.sum() == limit.count
    regular = np.arcsinh(frame["LIMIT_BAL"].to_numpy()[~blanked.missing_limit])
    assert limit.total == pytest.approx(regular.sum(), rel=1e-12)
    assert limit.total_squares == pytest.approx(np.square(regular).sum(), rel=1e-12)
    assert np.isfinite(limit.mean) and np.isfinite(limit.std)

    special = blanked.special[96] | blanked.special[98]
    payment = stats.numeric["PAY_AMT1"]
    assert payment.count == N_ROWS - special.sum()
    # Exactly the statistics of the rows that hold a regular value.
    kept = frame[~special].reset_index(drop=True)
    alone = compute_feature_stats(kept, blanked_schema).numeric["PAY_AMT1"]
    np.testing.assert_array_equal(payment.histogram, alone.histogram)
    assert (payment.count, payment.total) == (alone.count, alone.total)
    # The other columns still count every row.
    assert stats.numeric["BILL_AMT1"].count == N_ROWS


def test_special_codes_and_missing_values_have_per_class_cells(
    stats: FeatureStats, frame: pd.DataFrame, blanked: Blanked, blanked_schema: DatasetSchema
) -> None:
    """After the grid: one cell per special code, then the missing cell, in each class."""
    defaulted = frame[blanked_schema.target].to_numpy() == 1
    grid_bins = stats.grid_bins
    payment = stats.numeric["PAY_AMT1"].cells
    assert payment.events.size == grid_bins + 2 and payment.regular == grid_bins
    for code, position in zip(SPECIAL_CODES, (grid_bins, grid_bins + 1), strict=True):
        assert payment.events[position] == (blanked.special[code] & defaulted).sum()
        assert payment.non_events[position] == (blanked.special[code] & ~defaulted).sum()
    limit = stats.numeric["LIMIT_BAL"].cells
    assert limit.events.size == grid_bins + 1
    assert limit.events[-1] == (blanked.missing_limit & defaulted).sum()
    assert limit.non_events[-1] == (blanked.missing_limit & ~defaulted).sum()
    pay_2 = stats.categorical["PAY_2"]
    assert (pay_2.regular, pay_2.events.size) == (11, 12)
    assert pay_2.events[-1] == (blanked.missing_pay_2 & defaulted).sum()
    assert pay_2.non_events[-1] == (blanked.missing_pay_2 & ~defaulted).sum()
    # Every row is counted once per feature, missing or special or not.
    for cells in [*(n.cells for n in stats.numeric.values()), *stats.categorical.values()]:
        assert cells.counts.sum() == N_ROWS


def test_a_record_with_missing_and_special_values_moves_one_count_per_feature(
    frame: pd.DataFrame, blanked: Blanked, blanked_schema: DatasetSchema
) -> None:
    """The sensitivity holds with missing and special cells: one count per feature."""
    both = np.flatnonzero(blanked.missing_limit & blanked.missing_pay_2 & blanked.special[96])
    row = int(both[0])
    full = compute_feature_stats(frame, blanked_schema, 16)
    less = compute_feature_stats(frame.drop(index=frame.index[row]), blanked_schema, 16)
    for name, numeric in full.numeric.items():
        moved = numeric.cells.to_vector() - less.numeric[name].cells.to_vector()
        assert sorted(moved.tolist()).count(1.0) == 1 and np.abs(moved).sum() == 1, name
    for name, cells in full.categorical.items():
        moved = cells.to_vector() - less.categorical[name].to_vector()
        assert np.abs(moved).sum() == 1 and moved.max() == 1, name
    assert full.features == 19


def test_bank_stats_on_blanked_data_combine_to_the_pooled_stats(
    stats: FeatureStats, frame: pd.DataFrame, blanked_schema: DatasetSchema
) -> None:
    parts = [
        compute_feature_stats(frame.iloc[rows], blanked_schema)
        for rows in np.array_split(np.arange(N_ROWS), [700, 2_500])
    ]
    combined = combine_feature_stats(parts)
    for name, pooled in stats.numeric.items():
        np.testing.assert_array_equal(combined.numeric[name].histogram, pooled.histogram)
        assert combined.numeric[name].count == pooled.count


def test_a_column_with_no_regular_value_has_zero_moments(blanked_schema: DatasetSchema) -> None:
    frame = pd.DataFrame({"LIMIT_BAL": [np.nan] * 4, "PAY_AMT1": [96.0, 98.0, 96.0, 96.0]})
    for name in ("BILL_AMT1", "BILL_AMT2", "BILL_AMT3", "BILL_AMT4", "BILL_AMT5", "BILL_AMT6"):
        frame[name] = 1.0
    for name in ("PAY_AMT2", "PAY_AMT3", "PAY_AMT4", "PAY_AMT5", "PAY_AMT6"):
        frame[name] = 1.0
    for name in ("PAY_0", "PAY_2", "PAY_3", "PAY_4", "PAY_5", "PAY_6"):
        frame[name] = 0
    frame[blanked_schema.target] = [0, 1, 0, 1]

    stats = compute_feature_stats(frame, blanked_schema)

    for name in ("LIMIT_BAL", "PAY_AMT1"):
        empty = stats.numeric[name]
        assert (empty.count, empty.mean, empty.std, empty.histogram.sum()) == (0, 0.0, 0.0, 0.0)
    encoder = fit_encoder(blanked_schema, kind=EncodingKind.STANDARDIZED, stats=stats)
    limit = next(e for e in encoder.numeric if e.name == "LIMIT_BAL")
    assert (limit.mean, limit.std) == (0.0, 1.0)


# -- widths, names and labels ---------------------------------------------------------


@pytest.mark.parametrize("kind", FITTED_KINDS)
def test_widths_and_names_follow_the_layout(
    kind: EncodingKind, stats: FeatureStats, blanked_schema: DatasetSchema
) -> None:
    encoder = fit_encoder(blanked_schema, kind=kind, stats=stats)
    limit = next(e for e in encoder.numeric if e.name == "LIMIT_BAL")
    payment = next(e for e in encoder.numeric if e.name == "PAY_AMT1")
    bill = next(e for e in encoder.numeric if e.name == "BILL_AMT1")
    pay_2 = next(e for e in encoder.categorical if e.name == "PAY_2")

    assert (limit.missing, limit.special) == (True, ())
    assert (payment.missing, payment.special) == (False, SPECIAL_CODES)
    regular = 1 if kind is EncodingKind.STANDARDIZED else len(limit.edges) + 1
    assert limit.width == regular + 1
    assert payment.width == (1 if kind is EncodingKind.STANDARDIZED else len(payment.edges) + 1) + 2
    assert bill.width == (1 if kind is EncodingKind.STANDARDIZED else len(bill.edges) + 1)
    assert pay_2.width == 11 + 1
    names = encoder.input_names
    assert (
        len(names)
        == encoder.n_inputs
        == sum(e.width for e in encoder.numeric) + sum(e.width for e in encoder.categorical)
    )
    assert names[_block(encoder, "LIMIT_BAL")][-1] == "LIMIT_BAL[missing]"
    specials = ["PAY_AMT1[special 96]", "PAY_AMT1[special 98]"]
    assert names[_block(encoder, "PAY_AMT1")][-2:] == specials
    assert names[_block(encoder, "PAY_2")][-2:] == ["PAY_2=8", "PAY_2[missing]"]
    first = names[_block(encoder, "LIMIT_BAL")][0]
    assert first == ("LIMIT_BAL" if kind is EncodingKind.STANDARDIZED else "LIMIT_BAL[bin 0]")


def test_bin_labels_read_in_raw_units(stats: FeatureStats, blanked_schema: DatasetSchema) -> None:
    encoder = fit_encoder(blanked_schema, stats=stats)
    limit = next(e for e in encoder.numeric if e.name == "LIMIT_BAL")
    labels = encoder.bin_labels("LIMIT_BAL")

    raw = np.sinh(np.asarray(limit.edges))
    assert len(labels) == limit.width == len(raw) + 2
    assert labels[-1] == MISSING_LABEL
    bounds = np.concatenate([[-np.inf], raw, [np.inf]])
    for position, label in enumerate(labels[:-1]):
        low_text, high_text = label[1:-1].split(", ")
        assert label[0] == ("(" if position == 0 else "[") and label[-1] == ")"
        assert float(low_text) == pytest.approx(bounds[position], rel=1e-5)
        assert float(high_text) == pytest.approx(bounds[position + 1], rel=1e-5)
        assert "e" not in label  # positional notation, as a reader writes amounts
    assert encoder.bin_labels("PAY_AMT1")[-2:] == ("special 96", "special 98")
    assert encoder.bin_labels("PAY_2") == (
        *(str(level) for level in range(-2, 9)),
        MISSING_LABEL,
    )
    assert encoder.bin_labels("PAY_0")[-1] == "8"  # refuses missing values: no missing bin
    with pytest.raises(KeyError, match="'AGE' is not a model input feature"):
        encoder.bin_labels("AGE")


def test_public_bins_declared_in_raw_units_label_as_declared(
    blanked_schema: DatasetSchema,
) -> None:
    document = blanked_schema.model_dump(by_alias=True)
    for entry in document["numeric"]:
        if entry["name"] == "LIMIT_BAL":
            entry["bins"] = [50_000, 100_000, 250_000]
    schema = DatasetSchema.model_validate(document)

    encoder = fit_encoder(schema, source=StatsSource.PUBLIC)

    assert encoder.bin_labels("LIMIT_BAL") == (
        "(-inf, 50000)",
        "[50000, 100000)",
        "[100000, 250000)",
        "[250000, inf)",
        "missing",
    )


# -- bin indices and the encoded matrix -----------------------------------------------


@pytest.mark.parametrize("source", list(StatsSource))
def test_bin_indices_agree_with_the_one_hot_matrix(
    source: StatsSource,
    stats: FeatureStats,
    frame: pd.DataFrame,
    blanked: Blanked,
    blanked_schema: DatasetSchema,
) -> None:
    encoder = fit_encoder(blanked_schema, source=source, stats=stats)
    matrix = encoder.transform(frame)
    bins = encoder.bin_indices(frame)

    assert list(bins) == list(encoder.features)
    assert matrix.shape == (N_ROWS, encoder.n_inputs)
    for name, index in bins.items():
        block = matrix[:, _block(encoder, name)]
        np.testing.assert_array_equal(block.sum(axis=1), 1.0, err_msg=name)
        np.testing.assert_array_equal(block.argmax(axis=1), index, err_msg=name)
        assert index.dtype == np.int64
    limit = next(e for e in encoder.numeric if e.name == "LIMIT_BAL")
    np.testing.assert_array_equal(bins["LIMIT_BAL"] == limit.width - 1, blanked.missing_limit)
    payment = next(e for e in encoder.numeric if e.name == "PAY_AMT1")
    for offset, code in enumerate(SPECIAL_CODES):
        on_code = bins["PAY_AMT1"] == payment.regular_bins + offset
        np.testing.assert_array_equal(on_code, blanked.special[code])
    np.testing.assert_array_equal(bins["PAY_2"] == 11, blanked.missing_pay_2)
    # Regular values land in the interval between their edges.
    regular = ~blanked.missing_limit
    values = np.arcsinh(frame["LIMIT_BAL"].to_numpy()[regular])
    edges = np.concatenate([[-np.inf], limit.edges, [np.inf]])
    index = bins["LIMIT_BAL"][regular]
    assert np.all(edges[index] <= values) and np.all(values < edges[index + 1])
    assert (bins["LIMIT_BAL"][regular] < limit.regular_bins).all()


def test_standardized_columns_are_a_z_score_and_indicators(
    stats: FeatureStats, frame: pd.DataFrame, blanked: Blanked, blanked_schema: DatasetSchema
) -> None:
    encoder = fit_encoder(blanked_schema, kind=EncodingKind.STANDARDIZED, stats=stats)
    matrix = encoder.transform(frame)

    limit = next(e for e in encoder.numeric if e.name == "LIMIT_BAL")
    block = matrix[:, _block(encoder, "LIMIT_BAL")]
    missing = blanked.missing_limit
    np.testing.assert_array_equal(block[:, 1], missing.astype(np.float32))
    assert (block[missing, 0] == 0.0).all()
    z = (np.arcsinh(frame["LIMIT_BAL"].to_numpy()[~missing]) - limit.mean) / limit.std
    clipped = np.clip(z, -Z_CLIP, Z_CLIP).astype(np.float32)
    np.testing.assert_array_equal(block[~missing, 0], clipped)
    assert limit.mean == pytest.approx(stats.numeric["LIMIT_BAL"].mean)

    encoding = next(e for e in encoder.numeric if e.name == "PAY_AMT1")
    payment = matrix[:, _block(encoder, "PAY_AMT1")]
    special = blanked.special[96] | blanked.special[98]
    assert (payment[special, 0] == 0.0).all()
    np.testing.assert_array_equal(payment[:, 1], blanked.special[96].astype(np.float32))
    np.testing.assert_array_equal(payment[:, 2], blanked.special[98].astype(np.float32))
    z = (np.arcsinh(frame["PAY_AMT1"].to_numpy()[~special]) - encoding.mean) / encoding.std
    np.testing.assert_array_equal(
        payment[~special, 0], np.clip(z, -Z_CLIP, Z_CLIP).astype(np.float32)
    )


def test_encoder_with_missing_and_special_round_trips_as_json(
    stats: FeatureStats, frame: pd.DataFrame, blanked_schema: DatasetSchema
) -> None:
    encoder = fit_encoder(blanked_schema, stats=stats)
    restored = FeatureEncoder.model_validate_json(encoder.model_dump_json())

    assert restored == encoder
    np.testing.assert_array_equal(restored.transform(frame), encoder.transform(frame))


def test_an_encoder_without_the_new_fields_still_reads(schema: DatasetSchema) -> None:
    """An encoder written before issue 14 (no ``special``/``missing``) reads as before."""
    encoder = fit_encoder(schema, source=StatsSource.PUBLIC)
    document = encoder.model_dump(mode="json")
    for entry in (*document["numeric"], *document["categorical"]):
        del entry["missing"]
        entry.pop("special", None)

    assert FeatureEncoder.model_validate(document) == encoder


# -- NaN safety: a frame the encoder has no bin for is refused, never mis-encoded ------


def test_missing_values_in_a_column_that_refuses_them_are_refused(
    frame: pd.DataFrame, schema: DatasetSchema
) -> None:
    """The embedded schema refuses missing values: NaN would have landed in the last bin."""
    encoder = fit_encoder(schema, source=StatsSource.PUBLIC)

    with pytest.raises(ValueError, match=r"column 'LIMIT_BAL' has \d+ missing values"):
        encoder.transform(frame)
    with pytest.raises(ValueError, match=r"column 'PAY_2' holds \d+ values that are not"):
        encoder.bin_indices(frame.assign(LIMIT_BAL=1000.0))


def test_special_codes_are_regular_values_for_an_encoder_that_does_not_declare_them(
    frame: pd.DataFrame, schema: DatasetSchema
) -> None:
    """Without ``special``, 96 is an amount like any other: it falls in a regular bin."""
    encoder = fit_encoder(schema, source=StatsSource.PUBLIC)
    raw = frame["PAY_AMT1"].to_numpy()
    payment = next(e for e in encoder.numeric if e.name == "PAY_AMT1")
    feature = next(f for f in schema.numeric if f.name == "PAY_AMT1")

    index = payment.bins(raw)

    expected = np.searchsorted(payment.edges, transform_values(raw, feature.transform), "right")
    np.testing.assert_array_equal(index, expected)
    assert (raw == 96).sum() > 30  # the blanked rows' codes are among them
