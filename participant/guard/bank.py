"""A bank's view of its own data during a run: validated rows split into train and test.

Each bank holds out a fraction of its own rows as its test split, fixed by the bank
(:class:`~participant.guard.settings.HoldOut`) and chosen by record id (see
:func:`held_out_rows`) so that every message of every run sees the same split and a
centralised run is scored on the same customers as a federated one. The guard loads
and splits the rows once; splits and encoded matrices are also cached per process, so
that a simulation's worker process, which serves many banks, loads each bank once.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from credit.encoding import FeatureEncoder
from credit.loading import load_bank_csv
from credit.schema import DatasetSchema, load_schema
from privacy.budget import PrivacyBudget

__all__ = [
    "BankSource",
    "EncodedSplit",
    "PreparedBank",
    "encoded_split",
    "held_out_rows",
    "prepare_bank",
]


@dataclass(frozen=True)
class BankSource:
    """Where a bank's rows come from.

    Attributes
    ----------
    name : str
        The bank's display name (e.g. ``bank-1``, ``EDUCATION=2``).
    data_path : pathlib.Path
        Its CSV file (plain or gzip).
    schema_path : pathlib.Path or None
        Its copy of the dataset schema; the embedded schema when None.
    budget : PrivacyBudget, optional
        The bank's differential-privacy budget; training is not private without one.
    ledger_path : pathlib.Path, optional
        The bank's privacy ledger file; required with ``budget``.
    """

    name: str
    data_path: Path
    schema_path: Path | None = None
    budget: PrivacyBudget | None = None
    ledger_path: Path | None = None

    def __post_init__(self) -> None:
        if self.budget is not None and self.ledger_path is None:
            raise ValueError(f"bank '{self.name}' has a privacy budget but no ledger_path")


@dataclass(frozen=True, eq=False)
class PreparedBank:
    """Validated rows of one bank, split into train and test."""

    name: str
    schema: DatasetSchema
    train: pd.DataFrame
    test: pd.DataFrame


@dataclass(frozen=True)
class EncodedSplit:
    """Encoded train and test matrices with their labels."""

    train_x: NDArray[np.float32]
    train_y: NDArray[np.int64]
    test_x: NDArray[np.float32]
    test_y: NDArray[np.int64]


@functools.lru_cache(maxsize=32)
def prepare_bank(source: BankSource, test_fraction: float, seed: int) -> PreparedBank:
    """Load, validate and split a bank's data (cached per process).

    Parameters
    ----------
    source : BankSource
        The bank's file and schema.
    test_fraction : float
        Share of rows held out for testing, in (0, 1).
    seed : int
        Seed of the split permutation.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1); got {test_fraction}")
    schema = load_schema(source.schema_path)
    frame = load_bank_csv(source.data_path, schema).frame
    is_test = held_out_rows(frame, schema, test_fraction=test_fraction, seed=seed, salt=source.name)
    test = frame[is_test].reset_index(drop=True)
    train = frame[~is_test].reset_index(drop=True)
    return PreparedBank(name=source.name, schema=schema, train=train, test=test)


@functools.lru_cache(maxsize=32)
def encoded_split(bank: PreparedBank, encoder: FeatureEncoder) -> EncodedSplit:
    """Encode a prepared bank's splits with the run's encoder (cached per process)."""
    target = bank.schema.target
    return EncodedSplit(
        train_x=encoder.transform(bank.train),
        train_y=bank.train[target].to_numpy(dtype=np.int64),
        test_x=encoder.transform(bank.test),
        test_y=bank.test[target].to_numpy(dtype=np.int64),
    )


def held_out_rows(
    frame: pd.DataFrame, schema: DatasetSchema, *, test_fraction: float, seed: int, salt: str
) -> NDArray[np.bool_]:
    """Which rows a bank holds out for testing.

    With an id column, a record is held out when SHA-256 of ``seed:id`` falls below
    ``test_fraction``: the same customer is a test record whichever bank holds it and
    however the data is partitioned, so federated and centralised runs are scored on
    the same records. Without ids, a seeded permutation (salted with the bank name)
    holds out exactly ``round(test_fraction * n)`` rows.
    """
    if schema.id_column:
        ids = frame[schema.id_column].astype(str)
        draws = np.fromiter(
            (_unit_interval(f"{seed}:{record_id}") for record_id in ids),
            dtype=np.float64,
            count=len(ids),
        )
        held_out: NDArray[np.bool_] = draws < test_fraction
        return held_out
    order = np.random.default_rng([seed, _stable_hash(salt)]).permutation(len(frame))
    mask = np.zeros(len(frame), dtype=bool)
    mask[order[: max(1, round(test_fraction * len(frame)))]] = True
    return mask


def _unit_interval(text: str) -> float:
    """A uniform number in [0, 1) from the SHA-256 of a string."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") / 2.0**64


def _stable_hash(text: str) -> int:
    """A process-independent integer from a string (Python's hash() is salted)."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
