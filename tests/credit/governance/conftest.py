"""Pooled rows of the embedded data, three banks, and features binned on fixed edges.

Three numeric features cover the bin layout: ``LIMIT_BAL`` with a missing bin (10 %
of its cells blanked at random), ``PAY_AMT1`` with a special code (0, "no payment")
and a missing bin (5 % blanked), ``AGE`` with regular bins only. Regular edges are
the deciles of each feature's regular values (special codes and blanks left out).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from numpy.typing import NDArray

from credit.datasets import embedded_data_path
from credit.governance import BinCounts, BinLayout, combine_counts, count_bins
from credit.loading import load_bank_csv
from credit.schema import DatasetSchema

# Three banks of unequal size: 4,000 / 10,000 / 16,000 rows.
BANK_CUTS = [4_000, 14_000]
BLANKED = {"LIMIT_BAL": 0.10, "PAY_AMT1": 0.05}
SPECIAL_CODES = {"PAY_AMT1": {"no payment": 0.0}}
FEATURES = ("LIMIT_BAL", "PAY_AMT1", "AGE")


@dataclass(frozen=True)
class BinnedFeature:
    """One feature's values, its layout and every pooled row's bin."""

    name: str
    values: NDArray[np.float64]
    edges: NDArray[np.float64]
    special_codes: dict[str, float]
    layout: BinLayout
    indices: NDArray[np.int64]


def bin_values(
    values: NDArray[np.float64],
    edges: NDArray[np.float64],
    special_codes: dict[str, float],
    has_missing: bool,
) -> NDArray[np.int64]:
    """Each value's bin in the layout order: regular, special codes, missing."""
    indices = np.searchsorted(edges, values, side="right").astype(np.int64)
    n_regular = edges.size + 1
    for offset, code in enumerate(special_codes.values()):
        indices[values == code] = n_regular + offset
    if has_missing:
        indices[np.isnan(values)] = n_regular + len(special_codes)
    return indices


@pytest.fixture(scope="package")
def pooled(schema: DatasetSchema) -> pd.DataFrame:
    """The embedded data set with some cells blanked (fixed seed)."""
    frame = load_bank_csv(embedded_data_path(), schema).frame.copy()
    rng = np.random.default_rng(14)
    for name, share in BLANKED.items():
        frame.loc[rng.random(len(frame)) < share, name] = np.nan
    return frame


@pytest.fixture(scope="package")
def labels(pooled: pd.DataFrame, schema: DatasetSchema) -> NDArray[np.int64]:
    return pooled[schema.target].to_numpy(dtype=np.int64)


@pytest.fixture(scope="package")
def binned(pooled: pd.DataFrame) -> dict[str, BinnedFeature]:
    """The three features binned on their deciles (computed on the pooled rows)."""
    features = {}
    for name in FEATURES:
        values = pooled[name].to_numpy(dtype=np.float64)
        codes = SPECIAL_CODES.get(name, {})
        regular = values[~np.isnan(values) & ~np.isin(values, list(codes.values()))]
        edges = np.unique(np.quantile(regular, np.linspace(0.1, 0.9, 9)))
        has_missing = name in BLANKED
        layout = BinLayout.numeric(name, edges, special_labels=list(codes), has_missing=has_missing)
        features[name] = BinnedFeature(
            name=name,
            values=values,
            edges=edges,
            special_codes=codes,
            layout=layout,
            indices=bin_values(values, edges, codes, has_missing),
        )
    return features


@pytest.fixture(scope="package")
def bank_rows(pooled: pd.DataFrame) -> list[NDArray[np.int64]]:
    """Each bank's row positions in the pooled frame."""
    return np.split(np.random.default_rng(0).permutation(len(pooled)), BANK_CUTS)


@pytest.fixture(scope="package")
def summed(
    binned: dict[str, BinnedFeature],
    labels: NDArray[np.int64],
    bank_rows: list[NDArray[np.int64]],
) -> dict[str, BinCounts]:
    """Per feature, the sum of the three banks' counts (what a secure sum yields)."""
    return {
        name: combine_counts(
            [count_bins(feature.indices[rows], labels[rows], feature.layout) for rows in bank_rows]
        )
        for name, feature in binned.items()
    }
