"""Hyperparameter validation: an error names the parameter and the value."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from credit.gbdt import MAX_BINS, BoostingParams


def test_defaults_are_xgboost_like() -> None:
    params = BoostingParams()
    assert (params.max_depth, params.reg_lambda, params.max_bins) == (6, 1.0, MAX_BINS)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("n_trees", 0),
        ("max_depth", 13),
        ("learning_rate", 0.0),
        ("learning_rate", 1.5),
        ("reg_lambda", -1.0),
        ("gamma", float("inf")),
        ("min_child_weight", -0.5),
        ("subsample", 0.0),
        ("colsample_bytree", 1.01),
        ("max_bins", 256),
        ("max_bins", 1),
        ("base_score", 1.0),
    ],
)
def test_invalid_value_names_parameter_and_value(field: str, value: float) -> None:
    with pytest.raises(ValidationError, match=rf"{field}[\s\S]*input_value={value}"):
        BoostingParams(**{field: value})


def test_unknown_parameter_is_refused() -> None:
    with pytest.raises(ValidationError, match="max_leaves"):
        BoostingParams(max_leaves=31)  # type: ignore[call-arg]
