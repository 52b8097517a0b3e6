"""Protected groups: levels, public bands closed on the left, and a group for missing values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from credit.governance.groups import MISSING_GROUP, Grouping, protected_groupings
from credit.schema import DatasetSchema


def test_bands_are_closed_on_the_left_and_missing_values_form_their_own_group() -> None:
    grouping = Grouping(column="AGE", edges=(25.0, 35.0, 55.5))

    index = grouping.indices(np.array([18, 24.999, 25, 34, 35, 55.5, 99, np.nan]))

    assert grouping.labels == ("(-inf, 25)", "[25, 35)", "[35, 55.5)", "[55.5, inf)", "missing")
    np.testing.assert_array_equal(index, [0, 0, 1, 1, 2, 3, 3, 4])
    incomes = Grouping(column="INCOME", edges=(1_000_000.0,))
    assert incomes.labels == ("(-inf, 1000000)", "[1000000, inf)", MISSING_GROUP)


def test_levels_map_to_their_position_and_unknown_levels_are_refused() -> None:
    grouping = Grouping(column="SEX", levels=(1, 2))

    index = grouping.indices(pd.Series([2.0, 1.0, None]))

    assert grouping.labels == ("1", "2", MISSING_GROUP)
    np.testing.assert_array_equal(index, [1, 0, 2])
    with pytest.raises(ValueError, match="protected column 'SEX': 3 is not one of its levels"):
        grouping.indices(pd.Series([1, 3]))
    text = Grouping(column="REGION", levels=("north", "south"))
    np.testing.assert_array_equal(text.indices(pd.Series(["south", None])), [1, 2])


@pytest.mark.parametrize(
    ("levels", "edges", "message"),
    [
        ((), (), "either its levels or its band edges"),
        ((1,), (2.0,), "either its levels or its band edges"),
        ((), (30.0, 20.0), "strictly increasing"),
        ((), (20.0, float("nan")), "finite and strictly increasing"),
        ((1, 1), (), "levels must be distinct"),
        (("a", "missing"), (), "not 'missing'"),
    ],
)
def test_bad_groupings_are_refused(
    levels: tuple[int, ...], edges: tuple[float, ...], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Grouping(column="X", levels=levels, edges=edges)


def test_groupings_come_from_the_schema_and_numeric_columns_need_bands(
    schema: DatasetSchema,
) -> None:
    groupings = protected_groupings(schema, {"AGE": [30, 50]})

    assert [g.column for g in groupings] == ["SEX", "EDUCATION", "MARRIAGE", "AGE"]
    assert groupings[1].levels == (0, 1, 2, 3, 4, 5, 6)
    assert groupings[3].edges == (30.0, 50.0)
    with pytest.raises(ValueError, match="numeric protected column 'AGE' needs public band"):
        protected_groupings(schema, {})
