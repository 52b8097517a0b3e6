"""Contribution tables: the TreeSHAP values of :func:`credit.gbdt.contributions`, by look-up."""

from __future__ import annotations

import numpy as np
import pytest

from credit.gbdt import (
    BoostingParams,
    ContributionTables,
    Ensemble,
    contribution_tables,
    contributions,
    shap_tables,
    train_central,
)
from tests.credit.gbdt.conftest import BinnedRows


def _train(rows: BinnedRows, params: BoostingParams) -> Ensemble:
    return train_central(rows.codes, rows.labels, params, np.random.default_rng(0), bins=rows.bins)


@pytest.mark.parametrize(
    ("which", "params"),
    [
        ("credit", BoostingParams(n_trees=8, max_depth=4, learning_rate=0.3)),
        # 4 features at depth 6: paths split on one feature again (the unwinding)
        ("missing", BoostingParams(n_trees=5, max_depth=6, learning_rate=0.3)),
        # gamma stops every split: single-leaf trees, no feature contributes
        ("missing", BoostingParams(n_trees=2, max_depth=3, gamma=1e9)),
    ],
)
def test_tables_give_the_recursions_contributions(
    credit_rows: BinnedRows,
    missing_rows: BinnedRows,
    which: str,
    params: BoostingParams,
) -> None:
    rows = credit_rows if which == "credit" else missing_rows
    ensemble = _train(rows, params)
    expected = contributions(ensemble, rows.values)
    found = ContributionTables(ensemble).contributions(rows.values)
    np.testing.assert_allclose(found, expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(found.sum(axis=1), ensemble.margin(rows.values), atol=1e-9)
    if params.gamma < 1e9:
        assert np.abs(found[:, :-1]).max() > 0.01


def test_a_row_alone_gets_what_it_gets_in_any_batch(
    credit_rows: BinnedRows, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Across chunks of rows too: each row's values come from that row alone."""
    monkeypatch.setattr(shap_tables, "ROW_CHUNK", 512)
    ensemble = _train(credit_rows, BoostingParams(n_trees=4, max_depth=5, learning_rate=0.3))
    tables = ContributionTables(ensemble)
    assert len(credit_rows.values) > 3 * shap_tables.ROW_CHUNK
    batch = tables.contributions(credit_rows.values)
    for row in (0, 5, shap_tables.ROW_CHUNK, len(credit_rows.values) - 1):
        alone = tables.contributions(credit_rows.values[row : row + 1])
        assert np.array_equal(alone[0], batch[row])


def test_an_ensemble_beyond_the_budget_gets_no_tables(
    missing_rows: BinnedRows, monkeypatch: pytest.MonkeyPatch
) -> None:
    ensemble = _train(missing_rows, BoostingParams(n_trees=3, max_depth=4, learning_rate=0.3))
    size = shap_tables.table_values(ensemble)
    assert contribution_tables(ensemble) is not None
    monkeypatch.setattr(shap_tables, "MAX_TABLE_VALUES", size - 1)
    assert contribution_tables(ensemble) is None
