"""Scorecard points, scores equal to the model's probabilities, the CSV, and reason codes."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray
from sklearn.linear_model import LogisticRegression

from credit.errors import ConfigError
from credit.governance import (
    SCORECARD_COLUMNS,
    BinCounts,
    BinLayout,
    Characteristic,
    ReasonCode,
    Scorecard,
    ScoreScaling,
    WoeTable,
    build_scorecard,
    reason_codes,
    woe_table,
    write_scorecard_csv,
)
from tests.credit.governance.conftest import BinnedFeature


@pytest.fixture(scope="module")
def tables(summed: dict[str, BinCounts]) -> list[WoeTable]:
    return [woe_table(counts) for counts in summed.values()]


@pytest.fixture(scope="module")
def applicants(binned: dict[str, BinnedFeature]) -> NDArray[np.int64]:
    """Every pooled row's bins, one column per feature (the tables' order)."""
    return np.column_stack([feature.indices for feature in binned.values()])


@pytest.fixture(scope="module")
def model(
    tables: list[WoeTable], applicants: NDArray[np.int64], labels: NDArray[np.int64]
) -> LogisticRegression:
    """A logistic regression on the WoE-encoded pooled rows (scikit-learn)."""
    woe = np.column_stack([table.woe[applicants[:, j]] for j, table in enumerate(tables)])
    return LogisticRegression().fit(woe, labels)


@pytest.fixture(scope="module")
def scorecard(tables: list[WoeTable], model: LogisticRegression) -> Scorecard:
    features = [table.feature for table in tables]
    return build_scorecard(
        tables,
        coefficients=dict(zip(features, model.coef_[0].tolist(), strict=True)),
        intercept=float(model.intercept_[0]),
    )


def test_scaling_defaults_put_odds_of_50_at_600_and_double_them_every_20_points() -> None:
    scaling = ScoreScaling()
    assert scaling.factor == pytest.approx(20 / math.log(2), abs=1e-12)
    assert scaling.offset == pytest.approx(600 - 20 / math.log(2) * math.log(50), abs=1e-12)
    scores = scaling.score_from_probability(np.array([1 / 51, 1 / 101, 0.5]))
    np.testing.assert_allclose(scores, [600.0, 620.0, scaling.offset], rtol=0, atol=1e-9)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"pdo": 0.0}, "pdo must be a finite number > 0; got 0.0"),
        ({"pdo": -20.0}, "pdo must be a finite number > 0; got -20.0"),
        ({"base_odds": 0.0}, "base_odds must be a finite number > 0; got 0.0"),
        ({"base_odds": math.inf}, "base_odds must be a finite number > 0; got inf"),
        ({"base_score": math.nan}, "base_score must be a finite number; got nan"),
    ],
)
def test_scaling_parameters_are_checked(arguments: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ScoreScaling(**arguments)


def test_points_of_a_hand_computed_card() -> None:
    layout = BinLayout.categorical("A", [1, 2])
    # E = 100, N = 300: WoE = ln((180/300)/(20/100)) = ln 3 and ln((120/300)/(80/100)) = -ln 2.
    table = woe_table(BinCounts(layout=layout, events=[20, 80], non_events=[180, 120]))
    np.testing.assert_allclose(table.woe, [math.log(3), -math.log(2)], rtol=0, atol=1e-12)
    card = build_scorecard([table], coefficients={"A": -0.8}, intercept=-1.0)
    factor = 20 / math.log(2)
    offset = 600 - factor * math.log(50)
    expected = [
        (0.8 * math.log(3) + 1.0) * factor + offset,
        (-0.8 * math.log(2) + 1.0) * factor + offset,
    ]
    np.testing.assert_allclose(card.characteristics[0].raw_points, expected, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(card.characteristics[0].points, [541, 500])  # 541.34, 499.98
    frame = card.to_frame()
    assert list(frame.columns) == list(SCORECARD_COLUMNS)
    assert frame.to_dict(orient="list") == {
        "feature": ["A", "A"],
        "bin": ["1", "2"],
        "woe": table.woe.tolist(),
        "coefficient": [-0.8, -0.8],
        "points": [541, 500],
    }


def test_scores_are_the_models_probabilities_on_the_score_scale(
    scorecard: Scorecard,
    model: LogisticRegression,
    applicants: NDArray[np.int64],
    tables: list[WoeTable],
) -> None:
    woe = np.column_stack([table.woe[applicants[:, j]] for j, table in enumerate(tables)])
    probability = model.predict_proba(woe)[:, 1]
    scaling = scorecard.scaling
    expected = scaling.offset + scaling.factor * np.log((1 - probability) / probability)
    np.testing.assert_allclose(scorecard.score(applicants), expected, rtol=0, atol=1e-9)
    np.testing.assert_allclose(
        scorecard.probability_of_default(applicants), probability, rtol=0, atol=1e-12
    )
    # Higher score, lower risk.
    order = np.argsort(scorecard.score(applicants))
    assert np.all(np.diff(probability[order]) <= 1e-12)


def test_integer_scores_sum_integer_points_within_half_a_point_per_characteristic(
    scorecard: Scorecard, applicants: NDArray[np.int64]
) -> None:
    integer = scorecard.integer_score(applicants)
    assert integer.dtype == np.int64
    np.testing.assert_array_equal(integer, scorecard.points_matrix(applicants).sum(axis=1))
    gap = np.abs(integer - scorecard.score(applicants))
    assert gap.max() <= len(scorecard.characteristics) / 2
    assert gap.max() > 0  # rounding does move some scores


def test_scorecard_csv(scorecard: Scorecard, tmp_path: Path, tables: list[WoeTable]) -> None:
    path = write_scorecard_csv(scorecard, tmp_path / "scorecard.csv")
    frame = pd.read_csv(path)
    assert tuple(frame.columns) == SCORECARD_COLUMNS
    assert len(frame) == sum(table.counts.layout.n_bins for table in tables)
    assert frame["points"].dtype == np.int64
    pay = frame[frame["feature"] == "PAY_AMT1"]
    assert list(pay["bin"].iloc[-2:]) == ["no payment", "missing"]
    np.testing.assert_array_equal(pay["woe"], tables[1].woe)  # written at full precision


def test_scoring_and_building_refuse_bad_input(
    scorecard: Scorecard, tables: list[WoeTable]
) -> None:
    with pytest.raises(ValueError, match=r"shape \(n_applicants, 3\).*LIMIT_BAL, PAY_AMT1, AGE"):
        scorecard.score(np.zeros((2, 2), dtype=np.int64))
    with pytest.raises(
        ValueError, match=r"feature 'AGE': bin index 10 of applicant 1 is outside 0..9"
    ):
        scorecard.score(np.array([[0, 0, 0], [0, 0, 10]]))
    with pytest.raises(ValueError, match=r"missing \['AGE'\], unexpected \['age'\]"):
        build_scorecard(
            tables, coefficients={"LIMIT_BAL": 1.0, "PAY_AMT1": 1.0, "age": 1.0}, intercept=0.0
        )
    with pytest.raises(ValueError, match="coefficient of 'AGE' must be finite; got nan"):
        build_scorecard(
            tables,
            coefficients={"LIMIT_BAL": 1.0, "PAY_AMT1": 1.0, "AGE": math.nan},
            intercept=0.0,
        )


def _card(points: list[list[int]]) -> Scorecard:
    """A scorecard with the given integer points (features A, B, C, ...)."""
    characteristics = []
    for j, column in enumerate(points):
        n = len(column)
        layout = BinLayout.categorical(chr(ord("A") + j), [f"level {k}" for k in range(n)])
        table = woe_table(BinCounts(layout=layout, events=[1] * n, non_events=[2] * n))
        characteristics.append(
            Characteristic(
                table=table,
                coefficient=1.0,
                raw_points=np.asarray(column, dtype=np.float64),
                points=np.asarray(column, dtype=np.int64),
            )
        )
    return Scorecard(intercept=0.0, scaling=ScoreScaling(), characteristics=tuple(characteristics))


def test_reason_codes_of_a_hand_computed_example() -> None:
    card = _card([[10, 15, 40], [30, 5], [15, 15]])  # baselines 40, 30, 15
    reasons = reason_codes(
        card,
        np.array([[0, 1, 0], [1, 1, 1], [2, 0, 0]]),
        top_k=4,
        descriptions={"A": "Credit limit"},
    )
    assert reasons == (
        # A loses 30, B 25, C nothing (and is no reason).
        (ReasonCode("A", 30, "Credit limit: level 0"), ReasonCode("B", 25, "B: level 1")),
        # A and B both lose 25: the scorecard's order breaks the tie.
        (ReasonCode("A", 25, "Credit limit: level 1"), ReasonCode("B", 25, "B: level 1")),
        # The best bin of every characteristic: no reason at all.
        (),
    )
    top_one = reason_codes(card, np.array([[1, 1, 1]]), top_k=1)
    assert top_one == ((ReasonCode("A", 25, "A: level 1"),),)
    with pytest.raises(ConfigError, match="top_k must be an integer >= 1; got 0"):
        reason_codes(card, np.array([[0, 0, 0]]), top_k=0)


@st.composite
def _card_and_applicants(draw: st.DrawFn) -> tuple[Scorecard, NDArray[np.int64]]:
    n_features = draw(st.integers(1, 6))
    points = [
        draw(st.lists(st.integers(-20, 60), min_size=1, max_size=5)) for _ in range(n_features)
    ]
    n_rows = draw(st.integers(1, 8))
    rows = [[draw(st.integers(0, len(column) - 1)) for column in points] for _ in range(n_rows)]
    return _card(points), np.array(rows, dtype=np.int64)


@settings(max_examples=200, deadline=None)
@given(case=_card_and_applicants(), top_k=st.integers(1, 7))
def test_reason_codes_are_the_largest_losses(
    case: tuple[Scorecard, NDArray[np.int64]], top_k: int
) -> None:
    card, rows = case
    reasons = reason_codes(card, rows, top_k=top_k)
    assert len(reasons) == len(rows)
    for row, found in zip(rows, reasons, strict=True):
        losses = [
            int(item.points.max() - item.points[row[j]])
            for j, item in enumerate(card.characteristics)
        ]
        ranked = sorted(range(len(losses)), key=lambda j: (-losses[j], j))
        expected = [(card.features[j], losses[j]) for j in ranked if losses[j] > 0][:top_k]
        assert [(reason.code, reason.points_lost) for reason in found] == expected
    # Vectorised over rows: a batch gives each row's own answer.
    assert reasons == tuple(
        reason_codes(card, rows[i : i + 1], top_k=top_k)[0] for i in range(len(rows))
    )
