"""WoE/IV tables, the WoE encoder and the scorecard from the summed set-up release.

The banks' per-class counts, summed, give every feature's per-bin counts on the
encoder's bins exactly (its quantile edges are grid edges); the tables then equal the
pooled rows' tables. Data: the blanked embedded rows (missing values in a numeric and a
categorical input, special codes in another: :mod:`tests.support.missing_data`) split
into four banks of unequal size.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from credit.encoding import EncodingKind, FeatureEncoder, fit_encoder
from credit.feature_stats import (
    ClassCells,
    FeatureStats,
    combine_feature_stats,
    compute_feature_stats,
    grid_edges,
)
from credit.governance import MonotonicTrend, ScoreScaling, count_bins, woe_table
from credit.governance.woe import WoeTable
from credit.loading import load_bank_csv
from credit.schema import DatasetSchema, load_schema
from credit.woe_binning import (
    DEFAULT_MIN_BIN_SHARE,
    bin_counts,
    fit_woe_encoder,
    layout_of,
    scorecard_of,
    tables_from_document,
    woe_iv_document,
    woe_tables,
)
from tests.support.missing_data import Blanked, write_blanked

N_ROWS = 8_000
CUTS = [900, 3_000, 5_500]


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
def summed(frame: pd.DataFrame, blanked_schema: DatasetSchema) -> FeatureStats:
    """Four banks' statistics, summed as the coordinator sums them."""
    parts = np.split(np.arange(len(frame)), CUTS)
    return combine_feature_stats(
        [compute_feature_stats(frame.iloc[p], blanked_schema) for p in parts]
    )


@pytest.fixture(scope="module")
def binned(summed: FeatureStats, blanked_schema: DatasetSchema) -> FeatureEncoder:
    return fit_encoder(blanked_schema, stats=summed)


def _pooled_tables(
    encoder: FeatureEncoder, frame: pd.DataFrame, target: str
) -> dict[str, WoeTable]:
    """The tables of the pooled rows on ``encoder``'s bins (credit.governance.woe)."""
    labels = frame[target].to_numpy()
    encodings = (*encoder.numeric, *encoder.categorical)
    indices = encoder.bin_indices(frame)
    return {e.name: woe_table(count_bins(indices[e.name], labels, layout_of(e))) for e in encodings}


def _assert_same_tables(
    actual: dict[str, WoeTable], expected: dict[str, WoeTable], tolerance: float = 1e-12
) -> None:
    assert list(actual) == list(expected)
    for name, table in expected.items():
        got = actual[name]
        assert got.labels == table.labels, name
        np.testing.assert_array_equal(got.counts.events, table.counts.events, err_msg=name)
        np.testing.assert_array_equal(got.counts.non_events, table.counts.non_events, err_msg=name)
        np.testing.assert_allclose(got.woe, table.woe, rtol=0, atol=tolerance, err_msg=name)
        assert got.iv == pytest.approx(table.iv, abs=tolerance)


# -- per-bin counts from the grid -------------------------------------------------------


def test_quantile_edges_are_grid_edges(
    binned: FeatureEncoder, summed: FeatureStats, blanked_schema: DatasetSchema
) -> None:
    by_name = {feature.name: feature for feature in blanked_schema.numeric}
    for encoding in binned.numeric:
        grid = grid_edges(by_name[encoding.name], summed.grid_bins)
        assert len(encoding.edges) >= 1
        assert set(encoding.edges) <= set(grid[1:-1].tolist()), encoding.name


def test_summed_counts_give_the_pooled_tables_on_the_encoder_s_bins(
    summed: FeatureStats,
    binned: FeatureEncoder,
    frame: pd.DataFrame,
    blanked_schema: DatasetSchema,
) -> None:
    """Federated WoE/IV equals pooled, missing, special and categorical bins included."""
    tables = woe_tables(bin_counts(summed, binned, blanked_schema))

    _assert_same_tables(tables, _pooled_tables(binned, frame, blanked_schema.target))
    assert tables["LIMIT_BAL"].labels[-1] == "missing"
    assert tables["PAY_AMT1"].labels[-2:] == ("special 96", "special 98")
    assert tables["PAY_2"].labels[-1] == "missing" and len(tables["PAY_2"].labels) == 12
    assert list(tables) == list(binned.features)


def test_an_edge_off_the_grid_is_refused(
    summed: FeatureStats, binned: FeatureEncoder, blanked_schema: DatasetSchema
) -> None:
    limit = binned.numeric[0]
    moved = limit.model_copy(update={"edges": (limit.edges[0] + 1e-9, *limit.edges[1:])})
    encoder = binned.model_copy(update={"numeric": (moved, *binned.numeric[1:])})
    with pytest.raises(ValueError, match=r"'LIMIT_BAL': the encoder's edges .* are not all"):
        bin_counts(summed, encoder, blanked_schema)


def test_noisy_cells_are_summed_per_bin_before_settling(
    summed: FeatureStats, binned: FeatureEncoder, blanked_schema: DatasetSchema
) -> None:
    """Zero-mean noise of +-0.4 on every cell: clipping each cell at zero first would add
    0.2 rows per cell on average (hundreds per bin); settling each bin's sum keeps the
    exact counts where the noise cancels out within the bin."""
    cells = summed.numeric["BILL_AMT1"].cells
    noise = np.tile([0.4, -0.4], cells.events.size // 2)
    noisy = ClassCells(
        events=cells.events + noise, non_events=cells.non_events - noise, regular=cells.regular
    )

    def table_of(bill: ClassCells) -> WoeTable:
        numeric = {**summed.numeric, "BILL_AMT1": replace(summed.numeric["BILL_AMT1"], cells=bill)}
        stats = replace(summed, numeric=numeric)
        return woe_tables(bin_counts(stats, binned, blanked_schema))["BILL_AMT1"]

    exact, settled, clipped_first = table_of(cells), table_of(noisy), table_of(noisy.clipped())

    np.testing.assert_array_equal(settled.counts.events, exact.counts.events)
    np.testing.assert_array_equal(settled.counts.non_events, exact.counts.non_events)
    assert clipped_first.counts.counts.sum() > exact.counts.counts.sum() + 100  # the bias


# -- the WoE encoder ----------------------------------------------------------------------


def test_the_woe_encoder_merges_numeric_bins_and_keeps_special_missing_and_levels(
    summed: FeatureStats,
    binned: FeatureEncoder,
    frame: pd.DataFrame,
    blanked_schema: DatasetSchema,
) -> None:
    tables = woe_tables(bin_counts(summed, binned, blanked_schema))
    fit = fit_woe_encoder(binned, tables)
    encoder = fit.encoder

    assert encoder.kind is EncodingKind.WOE and encoder.n_inputs == len(encoder.features) == 19
    assert encoder.input_names[0] == "LIMIT_BAL[woe]"
    rows = len(frame)
    for before, after in zip(binned.numeric, encoder.numeric, strict=True):
        table = fit.tables[after.name]
        assert set(after.edges) <= set(before.edges)
        assert (after.special, after.missing) == (before.special, before.missing)
        assert after.woe == tuple(float(w) for w in table.woe.astype(np.float32))
        regular = table.event_rate[: after.regular_bins]
        steps = np.diff(regular)
        assert np.all(steps > 0) or np.all(steps < 0) or regular.size == 1  # trend auto
        shares = table.counts.counts[: after.regular_bins] / rows
        assert np.all(shares >= DEFAULT_MIN_BIN_SHARE) or after.regular_bins == 1
    for before_levels, after_levels in zip(binned.categorical, encoder.categorical, strict=True):
        assert after_levels.levels == before_levels.levels  # never merged
        np.testing.assert_array_equal(
            after_levels.woe, tables[after_levels.name].woe.astype(np.float32)
        )
    # Every row's input is its (merged) bin's WoE, as float32.
    matrix = encoder.transform(frame)
    indices = encoder.bin_indices(frame)
    assert matrix.shape == (rows, 19) and matrix.dtype == np.float32
    for column, name in enumerate(encoder.features):
        woe = np.asarray(fit.tables[name].woe, dtype=np.float32)
        np.testing.assert_array_equal(matrix[:, column], woe[indices[name]])
    # The merged tables are the pooled rows' tables on the merged bins.
    _assert_same_tables(fit.tables, _pooled_tables(encoder, frame, blanked_schema.target))


def test_a_woe_encoder_travels_as_json_and_refuses_nonsense_values(
    summed: FeatureStats, binned: FeatureEncoder, blanked_schema: DatasetSchema
) -> None:
    encoder = fit_woe_encoder(
        binned, woe_tables(bin_counts(summed, binned, blanked_schema))
    ).encoder
    assert FeatureEncoder.model_validate_json(encoder.model_dump_json()) == encoder
    document = json.loads(encoder.model_dump_json())
    for wrong, problem in (
        ([float("nan")] * 3, "one value per bin"),
        (["NaN"] * len(document["numeric"][0]["woe"]), "must be finite and within ±100"),
        ([1e6] * len(document["numeric"][0]["woe"]), "must be finite and within ±100"),
    ):
        changed = json.loads(json.dumps(document))
        changed["numeric"][0]["woe"] = wrong
        with pytest.raises(ValueError, match=problem):
            FeatureEncoder.model_validate(changed)
    without = json.loads(json.dumps(document))
    without["categorical"][0]["woe"] = []
    with pytest.raises(ValueError, match="needs woe values on column"):
        FeatureEncoder.model_validate(without)
    stray = json.loads(binned.model_dump_json())
    stray["numeric"][0]["woe"] = [0.0] * (len(stray["numeric"][0]["edges"]) + 2)
    with pytest.raises(ValueError, match="carries woe values only with kind 'woe'"):
        FeatureEncoder.model_validate(stray)


@pytest.mark.parametrize("trend", [MonotonicTrend.NONE, MonotonicTrend.ASCENDING])
def test_other_trends_merge_as_asked(
    summed: FeatureStats,
    binned: FeatureEncoder,
    blanked_schema: DatasetSchema,
    trend: MonotonicTrend,
) -> None:
    tables = woe_tables(bin_counts(summed, binned, blanked_schema))
    fit = fit_woe_encoder(binned, tables, trend=trend, min_bin_share=0.0)
    for encoding in fit.encoder.numeric:
        rates = fit.tables[encoding.name].event_rate[: encoding.regular_bins]
        if trend is MonotonicTrend.NONE:
            assert (
                encoding.edges == next(e for e in binned.numeric if e.name == encoding.name).edges
            )
        else:
            assert np.all(np.diff(rates) > 0)


# -- the document in metrics.json and the checkpoint --------------------------------------


def test_the_woe_iv_document_is_json_and_round_trips(
    summed: FeatureStats, binned: FeatureEncoder, blanked_schema: DatasetSchema
) -> None:
    tables = woe_tables(bin_counts(summed, binned, blanked_schema))
    document = json.loads(json.dumps(woe_iv_document(tables)))
    assert set(document["PAY_AMT1"]) == {"iv", "bins"}
    first = document["PAY_AMT1"]["bins"][0]
    assert set(first) == {"bin", "kind", "events", "non_events", "count", "event_rate", "woe", "iv"}
    assert [row["kind"] for row in document["PAY_AMT1"]["bins"][-2:]] == ["special", "special"]

    back = tables_from_document(document)
    for name, table in tables.items():
        assert back[name].labels == table.labels
        assert back[name].counts.layout.kinds == table.counts.layout.kinds
        np.testing.assert_array_equal(back[name].woe, table.woe)
        assert back[name].iv == table.iv


# -- the scorecard --------------------------------------------------------------------


def test_the_scorecard_reproduces_a_logistic_regression_on_woe_inputs(
    summed: FeatureStats,
    binned: FeatureEncoder,
    frame: pd.DataFrame,
    blanked_schema: DatasetSchema,
) -> None:
    fit = fit_woe_encoder(binned, woe_tables(bin_counts(summed, binned, blanked_schema)))
    encoder = fit.encoder
    rng = np.random.default_rng(5)
    weights = rng.normal(-0.6, 0.3, size=(1, encoder.n_inputs)).astype(np.float32)
    bias = np.float32(-1.3)
    scaling = ScoreScaling(pdo=20, base_score=600, base_odds=50)
    scorecard = scorecard_of(
        encoder, fit.tables, weights=weights, bias=float(bias), scaling=scaling
    )

    inputs = encoder.transform(frame).astype(np.float64)
    log_odds = inputs @ weights.astype(np.float64)[0] + float(bias)
    indices = encoder.bin_indices(frame)
    columns = np.column_stack([indices[name] for name in encoder.features])
    np.testing.assert_allclose(scorecard.log_odds(columns), log_odds, rtol=0, atol=1e-12)
    expected_score = scaling.offset - scaling.factor * log_odds
    np.testing.assert_allclose(scorecard.score(columns), expected_score, rtol=0, atol=1e-9)
    frame_out = scorecard.to_frame()
    assert list(frame_out.columns) == ["feature", "bin", "woe", "coefficient", "points"]
    assert len(frame_out) == sum(len(fit.tables[name].labels) for name in encoder.features)
    with pytest.raises(ValueError, match="coefficients for 19 WoE inputs"):
        scorecard_of(encoder, fit.tables, weights=weights[:, :5], bias=0.0, scaling=scaling)
    with pytest.raises(ValueError, match="needs a woe encoder"):
        scorecard_of(binned, fit.tables, weights=weights, bias=0.0, scaling=scaling)
