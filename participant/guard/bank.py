"""A bank's view of its own data during a run: validated rows split into train and test.

Each bank holds out a fraction of its own rows as its test split, fixed by the bank
(:class:`~participant.guard.settings.HoldOut`): a record is held out by a rule on that
record alone, keyed with the bank's secret salt (see :func:`held_out_rows`), so that
every message of every run sees the same split, adding or removing a record never
moves another one between train and test, and nobody without the salt can tell which
records are held out. (A simulation's K-fold cross-validation holds out one fold of
the same values instead: :class:`~participant.guard.settings.Fold`.) The split's
digest (:func:`split_digest`) commits to it in the bank's privacy ledger. The same salt,
under another HMAC domain, keeps a ``validation_fraction`` of the remaining rows apart
as the bank's validation part: never trained on, scored for model selection, and
likewise fixed and committed to in the digest. The guard
loads and splits the rows once; splits and encoded matrices are also cached per
process, so that a simulation's worker process, which serves many banks, loads each
bank once.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from credit.encoding import FeatureEncoder
from credit.errors import ConfigError
from credit.loading import load_bank_csv
from credit.schema import DatasetSchema, load_schema
from privacy.budget import PrivacyBudget

__all__ = [
    "BankSource",
    "EncodedSplit",
    "HoldOutRule",
    "PreparedBank",
    "encoded_split",
    "held_out_rows",
    "prepare_bank",
    "record_keys",
    "split_digest",
]

_DIGEST_DOMAIN = b"fedcredit-holdout-split/1\n"
_VALIDATION_DOMAIN = b"fedcredit-validation-part/1\n"
"""Prefix of a record key in the HMAC that decides the validation part (apart from the
hold-out's HMAC of the bare key, so the two draws are independent)."""


class HoldOutRule(Protocol):
    """What the split needs of a bank's :class:`~participant.guard.settings.HoldOut`."""

    @property
    def fraction(self) -> float:
        """Share of the records held out, in (0, 1)."""
        ...

    @property
    def key(self) -> bytes:
        """The bank's secret salt, the HMAC key of the rule."""
        ...

    @property
    def bounds(self) -> tuple[float, float]:
        """The held-out interval ``[lower, upper)`` of the records' HMAC values."""
        ...

    @property
    def validation_fraction(self) -> float:
        """Share of the remaining records kept as the validation part, in [0, 1)."""
        ...


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
    rows : tuple of int, optional
        The bank's rows in ``data_path`` (0-based positions among its data rows), when
        the file holds other banks' rows too (a simulation's source data set); None:
        every row of the file is the bank's.
    """

    name: str
    data_path: Path
    schema_path: Path | None = None
    budget: PrivacyBudget | None = None
    ledger_path: Path | None = None
    rows: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.budget is not None and self.ledger_path is None:
            raise ValueError(f"bank '{self.name}' has a privacy budget but no ledger_path")


@dataclass(frozen=True, eq=False)
class PreparedBank:
    """Validated rows of one bank, split into train, validation and test.

    Attributes
    ----------
    train : pandas.DataFrame
        The rows the bank trains on (and its set-up aggregates describe).
    test : pandas.DataFrame
        The held-out rows.
    validation : pandas.DataFrame
        The validation part (no rows when the bank keeps none).
    split_digest : str
        SHA-256 commitment to the split (:func:`split_digest`), hex; the bank's ledger
        records it at first use and refuses another one.
    """

    name: str
    schema: DatasetSchema
    train: pd.DataFrame
    test: pd.DataFrame
    split_digest: str
    validation: pd.DataFrame


@dataclass(frozen=True)
class EncodedSplit:
    """Encoded train, test and validation matrices with their labels."""

    train_x: NDArray[np.float32]
    train_y: NDArray[np.int64]
    test_x: NDArray[np.float32]
    test_y: NDArray[np.int64]
    validation_x: NDArray[np.float32]
    validation_y: NDArray[np.int64]


MAX_BANKS_PER_PROCESS = 2048
"""Banks whose prepared rows and encoded matrices a process keeps (a simulation's worker
serves every bank of the consortium: a smaller cache would reload a bank at each of its
messages)."""


@functools.lru_cache(maxsize=MAX_BANKS_PER_PROCESS)
def prepare_bank(source: BankSource, holdout: HoldOutRule) -> PreparedBank:
    """Load, validate and split a bank's data (cached per process).

    Parameters
    ----------
    source : BankSource
        The bank's file and schema.
    holdout : HoldOutRule
        The bank's hold-out fraction and secret salt (its
        :class:`~participant.guard.settings.HoldOut`).
    """
    schema = load_schema(source.schema_path)
    frame = _bank_rows(source, schema)
    keys = record_keys(frame, schema)
    tags = _record_tags(keys, holdout.key)
    is_test = _held_out(tags, holdout.bounds)
    validation_tags = _record_tags([_VALIDATION_DOMAIN + key for key in keys], holdout.key)
    is_validation = ~is_test & _held_out(validation_tags, (0.0, holdout.validation_fraction))
    digest = split_digest(
        [tag for tag, out in zip(tags, is_test, strict=True) if out], holdout.fraction
    )
    if holdout.validation_fraction > 0:
        digest = _with_validation(
            digest,
            [tag for tag, kept in zip(validation_tags, is_validation, strict=True) if kept],
            holdout.validation_fraction,
        )
    return PreparedBank(
        name=source.name,
        schema=schema,
        train=frame[~is_test & ~is_validation].reset_index(drop=True),
        test=frame[is_test].reset_index(drop=True),
        split_digest=digest,
        validation=frame[is_validation].reset_index(drop=True),
    )


def _bank_rows(source: BankSource, schema: DatasetSchema) -> pd.DataFrame:
    """The bank's validated rows: its whole file, or its ``rows`` of a shared file."""
    if source.rows is None:
        return load_bank_csv(source.data_path, schema).frame
    stat = source.data_path.stat()
    shared = _shared_frame(source.data_path, stat.st_mtime_ns, stat.st_size, source.schema_path)
    if source.rows and not 0 <= min(source.rows) <= max(source.rows) < len(shared):
        raise ConfigError(
            f"bank '{source.name}' names rows {min(source.rows)}..{max(source.rows)}; the "
            f"file has {len(shared)}: plan the simulation again from this file",
            source=str(source.data_path),
        )
    return shared.iloc[list(source.rows)].reset_index(drop=True)


@functools.lru_cache(maxsize=2)
def _shared_frame(
    path: Path, modified_ns: int, size: int, schema_path: Path | None
) -> pd.DataFrame:
    """A file several banks of a simulation read their rows from, validated once per process.

    Keyed by the file's modification time and size too, so an edited file is read again.
    """
    return load_bank_csv(path, load_schema(schema_path)).frame


@functools.lru_cache(maxsize=MAX_BANKS_PER_PROCESS)
def encoded_split(bank: PreparedBank, encoder: FeatureEncoder) -> EncodedSplit:
    """Encode a prepared bank's splits with the run's encoder (cached per process)."""
    target = bank.schema.target
    return EncodedSplit(
        train_x=encoder.transform(bank.train),
        train_y=bank.train[target].to_numpy(dtype=np.int64),
        test_x=encoder.transform(bank.test),
        test_y=bank.test[target].to_numpy(dtype=np.int64),
        validation_x=encoder.transform(bank.validation),
        validation_y=bank.validation[target].to_numpy(dtype=np.int64),
    )


def held_out_rows(
    frame: pd.DataFrame, schema: DatasetSchema, holdout: HoldOutRule
) -> NDArray[np.bool_]:
    """Which rows a bank holds out for testing.

    A record is held out when HMAC-SHA256 of its key (:func:`record_keys`) under the
    bank's salt, read as a number in [0, 1), falls below the hold-out fraction. The
    rule looks at one record only: adding or removing a record changes exactly one side
    of the split and never moves another record. With ids, the same customer is a test
    record whichever bank holds it and however the data is partitioned, so federated
    and centralised runs with one salt are scored on the same customers; without ids the
    same holds for identical rows. Without the salt the split cannot be predicted.
    A cross-validation's fold (:class:`~participant.guard.settings.Fold`) holds out the
    records whose value falls in the fold's interval instead.
    """
    return _held_out(_record_tags(record_keys(frame, schema), holdout.key), holdout.bounds)


def record_keys(frame: pd.DataFrame, schema: DatasetSchema) -> list[bytes]:
    """Each row's record key: its id, or without an id column its canonical content.

    The canonical content is the JSON object of every schema column in schema order,
    each value in the type the schema gives it (numbers as Python's shortest float or
    integer text, levels as text, a missing value as ``null``): it depends on the row
    alone, not on the other rows.
    """
    if schema.id_column:
        return [str(record_id).encode() for record_id in frame[schema.id_column].tolist()]
    columns = schema.columns
    values = ([_json_value(v) for v in frame[column].tolist()] for column in columns)
    return [
        json.dumps(
            dict(zip(columns, row, strict=True)), separators=(",", ":"), allow_nan=False
        ).encode()
        for row in zip(*values, strict=True)
    ]


def _json_value(value: object) -> object:
    """A cell as standard JSON holds it: a missing value (NaN) as None (``null``)."""
    return None if isinstance(value, float) and math.isnan(value) else value


def split_digest(held_out_tags: Iterable[bytes], fraction: float) -> str:
    """SHA-256 commitment to a split: the fraction and the held-out records' sorted tags.

    A tag is HMAC-SHA256 of a record key under the bank's salt, so the digest changes
    with the salt, the fraction or any held-out record, and without the salt it tells
    nothing about which records are held out.
    """
    digest = hashlib.sha256(_DIGEST_DOMAIN)
    digest.update(f"{fraction!r}\n".encode())
    for tag in sorted(held_out_tags):
        digest.update(tag)
    return digest.hexdigest()


def _with_validation(digest: str, validation_tags: Iterable[bytes], fraction: float) -> str:
    """The split's digest extended with its validation part (fraction and sorted tags).

    Only a bank that keeps a validation part has it, so the digest of a split without
    one (and the ledgers bound to it) stays as it was.
    """
    extended = hashlib.sha256(_DIGEST_DOMAIN + _VALIDATION_DOMAIN)
    extended.update(f"{digest}\n{fraction!r}\n".encode())
    for tag in sorted(validation_tags):
        extended.update(tag)
    return extended.hexdigest()


def _record_tags(keys: Sequence[bytes], salt: bytes) -> list[bytes]:
    """HMAC-SHA256 of each record key under the bank's salt."""
    return [hmac.digest(salt, key, "sha256") for key in keys]


def _held_out(tags: Sequence[bytes], bounds: tuple[float, float]) -> NDArray[np.bool_]:
    """Records whose tag, read as a number in [0, 1) (top 53 bits), is in ``[lower, upper)``."""
    draws = np.fromiter(
        ((int.from_bytes(tag[:8], "big") >> 11) / 2.0**53 for tag in tags),
        dtype=np.float64,
        count=len(tags),
    )
    lower, upper = bounds
    held_out: NDArray[np.bool_] = (draws >= lower) & (draws < upper)
    return held_out
