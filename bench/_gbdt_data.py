"""One seed's rows for ``bench/gbdt.py``: the held-out customers, the shared bins, the banks.

Everything the benchmark's systems share: the embedded rows, ``bench/quality.py``'s
held-out customers at the seed (``HoldOut.for_simulation(fraction=0.2, seed=seed)``),
bin edges from the feature statistics of the training rows (what the banks' summed
statistics give, ``grid-bins`` 1024, up to ``max_bins`` quantile bins), the splits of
``bench/quality.py`` (the banks ``fedcredit simulate`` makes at the seed, training rows
only) and the test metrics (:mod:`credit.metrics`, exact score bins).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from _flower_xgb_bagging import BankRows
from numpy.typing import NDArray

from credit.datasets import embedded_data_path
from credit.encoding import FeatureEncoder, fit_encoder
from credit.feature_stats import compute_feature_stats
from credit.gbdt import FeatureBins, base_score_from_counts, bins_from_encoder, raw_matrix
from credit.loading import load_bank_csv
from credit.metrics import credit_metrics, summarize_scores
from credit.schema import DatasetSchema, load_schema
from participant.guard.bank import held_out_rows
from participant.guard.settings import HoldOut
from simulations.exact import EXACT_SCORE_BINS
from simulations.partition import partition_data
from simulations.settings import PartitionScheme, PartitionSettings

SPLITS: dict[str, tuple[PartitionSettings, int]] = {
    # bench/quality.py's splits: (partition settings, banks for iid and dirichlet).
    "iid-5": (PartitionSettings(partition=PartitionScheme.IID), 5),
    "dirichlet-0.5-5": (PartitionSettings(partition=PartitionScheme.DIRICHLET, alpha=0.5), 5),
    "education": (
        PartitionSettings(partition=PartitionScheme.COLUMN, partition_column="EDUCATION"),
        5,
    ),
}


@dataclass(frozen=True, eq=False)
class SeedData:
    """One seed's rows, hold-out, bins and matrices, shared by every system."""

    seed: int
    frame: pd.DataFrame
    schema: DatasetSchema
    train: NDArray[np.bool_]
    encoder: FeatureEncoder
    bins: FeatureBins
    raw: NDArray[np.float32]
    codes: NDArray[np.uint8]
    labels: NDArray[np.int64]
    base_score: float


def seed_data(seed: int, max_bins: int) -> SeedData:
    """The embedded rows, ``bench/quality.py``'s held-out customers at ``seed``, the bins."""
    schema = load_schema()
    frame = load_bank_csv(embedded_data_path(), schema).frame
    train = ~held_out_rows(frame, schema, HoldOut.for_simulation(fraction=0.2, seed=seed))
    stats = compute_feature_stats(frame.loc[train], schema)
    encoder = fit_encoder(schema, stats=stats, quantile_bins=max_bins)
    bins = bins_from_encoder(encoder)
    raw = raw_matrix(frame, encoder)
    labels = frame[schema.target].to_numpy(dtype=np.int64)
    return SeedData(
        seed=seed,
        frame=frame,
        schema=schema,
        train=train,
        encoder=encoder,
        bins=bins,
        raw=raw,
        codes=bins.codes(raw),
        labels=labels,
        base_score=base_score_from_counts(int(labels[train].sum()), int(train.sum())),
    )


def metrics(labels: NDArray[np.int64], probabilities: NDArray[np.floating]) -> dict[str, float]:
    """Test AUC and KS of default probabilities, by :mod:`credit.metrics` (exact bins)."""
    scores = credit_metrics(summarize_scores(probabilities, labels, EXACT_SCORE_BINS))
    return {"auc": scores.auc, "ks": scores.ks}


def probabilities(margins: NDArray[np.float64]) -> NDArray[np.float64]:
    """The logistic of ``margins``."""
    result: NDArray[np.float64] = 1.0 / (1.0 + np.exp(-margins))
    return result


def bank_indices(
    data: SeedData, split: str, *, banks: int | None = None
) -> list[tuple[str, NDArray[np.intp]]]:
    """The banks of ``split`` at the seed (as ``fedcredit simulate`` splits): each bank's
    name and training row numbers (``banks`` overrides the split's count of IID or
    Dirichlet banks)."""
    settings, n_banks = SPLITS[split]
    partitions = partition_data(settings, n_banks=banks or n_banks, schema_file="", seed=data.seed)
    if len(partitions.frame) != len(data.frame):
        raise RuntimeError(
            f"split '{split}' read {len(partitions.frame)} rows, not {len(data.frame)}"
        )
    return [(part.name, part.rows[data.train[part.rows]]) for part in partitions.partitions]


def bank_rows(data: SeedData, split: str) -> list[BankRows]:
    """The banks of ``split`` at the seed, training rows only, as raw matrices."""
    return [
        BankRows(name=name, features=data.raw[rows], labels=data.labels[rows])
        for name, rows in bank_indices(data, split)
    ]
