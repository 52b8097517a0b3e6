"""Split one data set into simulated banks.

Six schemes, each deterministic given its seed. fedcredit's own (unchanged since
before it used ``flwr-datasets``, so that published figures keep their partitions):

* ``iid``: a random permutation cut into equal parts (the same banks as
  ``flwr-datasets``' ``IidPartitioner`` over that permutation: a test checks it);
* ``dirichlet``: label skew; for each class, bank shares are drawn from
  Dirichlet(alpha), so small ``alpha`` gives banks very different default rates and
  sizes (Hsu, Qi and Brown 2019, "Measuring the effects of non-identical data
  distribution for federated visual classification"); a draw that leaves a bank
  short (:class:`~simulations.bank_requirement.BankRequirement`) is drawn again;
* ``column``: one bank per value of a column (e.g. ``EDUCATION``; missing values are
  the value ``missing``), values holding under 2 % of rows merged into one ``other``
  bank (the same banks as ``NaturalIdPartitioner`` over the merged values: a test
  checks it).

From ``flwr-datasets`` (:mod:`simulations.flower_partitions`): ``natural-id`` (one
bank per value, none merged), ``pathological`` (each bank holds ``classes_per_bank``
values of a column) and ``size`` (bank sizes in proportion to ``i ** size_skew``).

Every bank must then hold what :class:`~simulations.bank_requirement.BankRequirement`
asks (enough rows, both classes in its training and held-out rows), or the split is
refused with one line naming the flag to change.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from credit.datasets import embedded_data_path
from credit.errors import ConfigError
from credit.loading import load_bank_csv
from credit.schema import load_schema
from participant.guard.bank import HoldOutRule, held_out_rows
from simulations.bank_requirement import BankRequirement
from simulations.partition_groups import MINOR_VALUE_SHARE, Partition, value_groups
from simulations.settings import PartitionScheme, PartitionSettings

__all__ = [
    "MINOR_VALUE_SHARE",
    "Partition",
    "PartitionScheme",
    "PartitionedData",
    "partition_data",
    "partition_rows",
]

_DIRICHLET_ATTEMPTS = 1000

_REMEDY = {
    PartitionScheme.IID: ("--banks", "use fewer --banks"),
    PartitionScheme.DIRICHLET: ("--alpha", "raise --alpha or use fewer --banks"),
    PartitionScheme.COLUMN: ("--partition-column", "split by another --partition-column"),
    PartitionScheme.NATURAL_ID: (
        "--partition-column",
        "use --partition column (rare values merged) or another --partition-column",
    ),
    PartitionScheme.PATHOLOGICAL: (
        "--classes-per-bank",
        "raise --classes-per-bank, use fewer --banks or another --partition-column",
    ),
    PartitionScheme.SIZE: ("--size-skew", "lower --size-skew or use fewer --banks"),
}
"""Per scheme: the flag a refused split names, and what to change."""


@dataclass(frozen=True, eq=False)
class PartitionedData:
    """A validated data set and its split into simulated banks."""

    frame: pd.DataFrame
    data_path: Path
    schema_path: Path | None
    partitions: list[Partition]


@dataclass(frozen=True)
class _Split:
    """One request to :func:`partition_rows`, as its scheme's function reads it."""

    frame: pd.DataFrame
    requirement: BankRequirement
    n_banks: int
    seed: int
    alpha: float
    column: str | None
    classes_per_bank: int
    size_skew: float


def partition_data(
    settings: PartitionSettings,
    *,
    n_banks: int,
    schema_file: str,
    seed: int,
    holdouts: Sequence[HoldOutRule] = (),
) -> PartitionedData:
    """Validate the data file against its schema and split it as ``settings`` say.

    Parameters
    ----------
    settings : PartitionSettings
        The data file and the split.
    n_banks : int
        Banks for ``iid``, ``dirichlet``, ``pathological`` and ``size``.
    schema_file : str
        The dataset schema ('' = the embedded one).
    seed : int
        Seeds the split.
    holdouts : sequence of HoldOutRule, default ()
        The hold-out rules the run's banks apply (one per cross-validation fold):
        every bank must have both classes on each side of each.

    Raises
    ------
    credit.errors.SchemaError
        The data file breaks the schema (names file, column and row).
    ConfigError
        The partition settings cannot be met.
    """
    schema_path = Path(schema_file) if schema_file else None
    schema = load_schema(schema_path)
    data_path = Path(settings.data) if settings.data else embedded_data_path()
    frame = load_bank_csv(data_path, schema).frame
    partitions = partition_rows(
        frame,
        target=schema.target,
        scheme=settings.partition,
        n_banks=n_banks,
        seed=seed,
        alpha=settings.alpha,
        column=settings.partition_column,
        classes_per_bank=settings.classes_per_bank,
        size_skew=settings.size_skew,
        min_rows=schema.min_rows,
        held_out=[held_out_rows(frame, schema, holdout) for holdout in holdouts],
    )
    return PartitionedData(
        frame=frame, data_path=data_path, schema_path=schema_path, partitions=partitions
    )


def partition_rows(
    frame: pd.DataFrame,
    *,
    target: str,
    scheme: PartitionScheme,
    n_banks: int = 5,
    seed: int = 0,
    alpha: float = 0.5,
    column: str | None = None,
    classes_per_bank: int = 2,
    size_skew: float = 1.0,
    min_rows: int = 50,
    held_out: Sequence[NDArray[np.bool_]] = (),
) -> list[Partition]:
    """Assign every row of ``frame`` to exactly one simulated bank.

    Parameters
    ----------
    frame : pandas.DataFrame
        Validated rows.
    target : str
        Target column (Dirichlet label skew; both classes at every bank).
    scheme : PartitionScheme
        See the module's docstring.
    n_banks : int, default 5
        Number of banks for ``iid``, ``dirichlet``, ``pathological`` and ``size``;
        ``column`` and ``natural-id`` derive it.
    seed : int, default 0
        Seed of the permutation / Dirichlet draws / value assignment.
    alpha : float, default 0.5
        Dirichlet concentration, > 0; smaller is more skewed.
    column : str, optional
        Column to split by, required for ``column``, ``natural-id`` and ``pathological``.
    classes_per_bank : int, default 2
        ``pathological``: values of ``column`` per bank, >= 1.
    size_skew : float, default 1.0
        ``size``: bank i holds rows in proportion to ``i ** size_skew``, >= 0.
    min_rows : int, default 50
        Every bank must receive at least this many rows.
    held_out : sequence of numpy.ndarray of bool, default ()
        Per row, whether the run holds it out (one mask per split, e.g. per fold):
        every bank needs both classes in its training and its held-out rows of each.
        Empty: both classes anywhere in the bank.

    Raises
    ------
    ConfigError
        A parameter is out of range or no split meets ``min_rows`` and both classes
        (one line, naming the flag to change).
    """
    if n_banks < 1:
        raise ConfigError(f"must be >= 1; got {n_banks}", source="--banks")
    requirement = BankRequirement(
        labels=frame[target].to_numpy(), target=target, min_rows=min_rows, held_out=held_out
    )
    split = _Split(frame, requirement, n_banks, seed, alpha, column, classes_per_bank, size_skew)
    partitions = _SCHEMES[scheme](split)
    _check(partitions, requirement, scheme)
    return partitions


def _check(
    partitions: list[Partition], requirement: BankRequirement, scheme: PartitionScheme
) -> None:
    """Refuse a split that leaves a bank short, naming the flag to change."""
    small = requirement.too_small(partitions)
    flag, remedy = _REMEDY[scheme]
    if small is not None:
        raise ConfigError(
            f"bank '{small.name}' would get {small.rows.size} rows, fewer than the "
            f"schema's minimum of {requirement.min_rows}; {remedy}",
            source=flag,
        )
    problem = requirement.class_problem(partitions)
    if problem is not None:
        raise ConfigError(f"{problem}; {remedy} (or try another --seed)", source=flag)


def _iid(split: _Split) -> list[Partition]:
    rng = np.random.default_rng(split.seed)
    parts = np.array_split(rng.permutation(len(split.frame)), split.n_banks)
    return [Partition(f"bank-{i + 1}", np.sort(p)) for i, p in enumerate(parts)]


def _dirichlet(split: _Split) -> list[Partition]:
    """Per class, bank shares from Dirichlet(alpha); redrawn until every bank suffices."""
    alpha, n_banks, requirement = split.alpha, split.n_banks, split.requirement
    if not alpha > 0:
        raise ConfigError(f"must be > 0; got {alpha}", source="--alpha")
    labels, rng = requirement.labels, np.random.default_rng(split.seed)
    for _ in range(_DIRICHLET_ATTEMPTS):
        assigned: list[list[NDArray[np.int64]]] = [[] for _ in range(n_banks)]
        for value in np.unique(labels):
            rows = rng.permutation(np.flatnonzero(labels == value))
            shares = rng.dirichlet(np.full(n_banks, alpha))
            cuts = (np.cumsum(shares)[:-1] * rows.size).astype(np.int64)
            for bank, part in enumerate(np.split(rows, cuts)):
                assigned[bank].append(part)
        sizes = [sum(p.size for p in parts) for parts in assigned]
        if min(sizes) < requirement.min_rows:
            continue
        partitions = [
            Partition(f"bank-{i + 1}", np.sort(np.concatenate(parts)))
            for i, parts in enumerate(assigned)
        ]
        if requirement.class_problem(partitions) is None:
            return partitions
    raise ConfigError(
        f"no Dirichlet(alpha={alpha}) split in {_DIRICHLET_ATTEMPTS} draws gave every bank "
        f"{requirement.min_rows} rows and both classes in its training and held-out rows; "
        "raise --alpha or use fewer banks",
        source="--alpha",
    )


def _column(split: _Split) -> list[Partition]:
    """One bank per value of the column; values under 2 % of the rows merge into ``other``."""
    return value_groups(split.frame, split.column, merge_rare=True)


def _natural_id(split: _Split) -> list[Partition]:
    from simulations.flower_partitions import natural_id

    return natural_id(split.frame, split.column)


def _pathological(split: _Split) -> list[Partition]:
    from simulations.flower_partitions import pathological

    return pathological(
        split.frame,
        column=split.column,
        classes_per_bank=split.classes_per_bank,
        n_banks=split.n_banks,
        seed=split.seed,
    )


def _size(split: _Split) -> list[Partition]:
    from simulations.flower_partitions import size_skewed

    return size_skewed(
        split.frame, n_banks=split.n_banks, size_skew=split.size_skew, seed=split.seed
    )


_SCHEMES: dict[PartitionScheme, Callable[[_Split], list[Partition]]] = {
    PartitionScheme.IID: _iid,
    PartitionScheme.DIRICHLET: _dirichlet,
    PartitionScheme.COLUMN: _column,
    PartitionScheme.NATURAL_ID: _natural_id,
    PartitionScheme.PATHOLOGICAL: _pathological,
    PartitionScheme.SIZE: _size,
}
"""Each scheme's function (the flwr-datasets ones import the library on first use)."""
