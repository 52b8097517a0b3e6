"""Fixtures for the boosting core: a small slice of the embedded data on shared bins,
and synthetic rows with missing values."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from numpy.typing import NDArray

from credit.encoding import fit_encoder
from credit.feature_stats import compute_feature_stats
from credit.gbdt import FeatureBins, bins_from_encoder, raw_matrix
from credit.schema import DatasetSchema


@dataclass(frozen=True)
class BinnedRows:
    """Rows as the raw matrix, their codes, labels, and the bins behind the codes."""

    bins: FeatureBins
    values: NDArray[np.float32]
    codes: NDArray[np.uint8]
    labels: NDArray[np.int64]


@pytest.fixture(scope="session")
def credit_rows(schema: DatasetSchema, embedded_frame: pd.DataFrame) -> BinnedRows:
    """2,000 embedded rows on 32 federated quantile bins per numeric column."""
    frame = embedded_frame.iloc[:2000]
    encoder = fit_encoder(schema, stats=compute_feature_stats(frame, schema), quantile_bins=32)
    bins = bins_from_encoder(encoder)
    values = raw_matrix(frame, encoder)
    labels = frame[schema.target].to_numpy(dtype=np.int64)
    return BinnedRows(bins=bins, values=values, codes=bins.codes(values), labels=labels)


@pytest.fixture(scope="session")
def missing_rows() -> BinnedRows:
    """600 synthetic rows, 4 features, missing values that carry signal in feature 1."""
    rng = np.random.default_rng(7)
    values = rng.normal(size=(600, 4)).astype(np.float32)
    missing = rng.random(600) < 0.25
    values[missing, 1] = np.nan
    values[rng.random(600) < 0.1, 3] = np.nan
    logit = 1.5 * values[:, 0] - np.nan_to_num(values[:, 1]) + 2.0 * missing - 0.5
    labels = (rng.random(600) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
    edges = tuple(
        tuple(float(e) for e in np.unique(np.float32(np.linspace(-2.0, 2.0, 15 + f))))
        for f in range(4)
    )
    bins = FeatureBins(names=("a", "b", "c", "d"), edges=edges)
    return BinnedRows(bins=bins, values=values, codes=bins.codes(values), labels=labels)
