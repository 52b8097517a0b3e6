"""The partition schemes fedcredit takes from Flower's ``flwr-datasets``.

``flwr-datasets`` partitioners work on a Hugging Face ``datasets.Dataset``. Each scheme
here hands one an in-memory data set of one column, ``by`` (an integer code of the
row's value where the scheme splits by a column), whose row i is row ``order[i]`` of
the source frame, and maps the partitioner's indices back through ``order``. Nothing
else of the frame is copied. The indices are read from the partitioner's index map,
not through ``load_partition`` (:func:`index_map` says why); the version is pinned
(``flwr-datasets==0.6.1``) and ``tests/simulations/test_flower_partitions.py`` checks
the maps against ``load_partition``.

* ``natural-id``: :class:`~flwr_datasets.partitioner.NaturalIdPartitioner`, one bank
  per value of the column, none merged; missing values are the value ``missing``.
* ``pathological``: :class:`~flwr_datasets.partitioner.PathologicalPartitioner`
  (Li, Diao, Chen and He 2022, "Federated learning on non-IID data silos: an
  experimental study", the "#C = k" split) over the *values of a column*, not the
  label: each bank holds exactly ``classes_per_bank`` of the column's values (rare
  values merged into ``other`` as in the ``column`` scheme), and each value's rows are
  shared evenly among the banks holding it. With a binary default label the label
  version is degenerate: one class per bank leaves every bank without defaulters or
  without non-defaulters, two give every bank both classes in equal shares (an IID
  label split). Label skew is the ``dirichlet`` scheme's job.
* ``size``: :class:`~flwr_datasets.partitioner.IdToSizeFncPartitioner` with bank i
  of N (1-based) holding rows in proportion to ``i ** size_skew`` (``LinearPartitioner``
  is ``size_skew = 1``, ``SquarePartitioner`` 2); rounding down leaves the remainder to
  the last bank.

Where a partitioner takes rows in the data set's order, the rows come in a random
order drawn from the seed, so the rows a bank gets are a random sample. The library
runs offline: Hugging Face's hub and datasets switches are set to offline (unless
already set) before it is imported, and the data set lives in memory, so nothing is
downloaded and nothing is written to the Hugging Face cache.
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from credit.errors import ConfigError
from simulations.partition_groups import Partition, value_codes, value_groups

if TYPE_CHECKING:
    from datasets import Dataset  # type: ignore[import-untyped]

__all__ = ["HF_OFFLINE_ENV", "index_map", "natural_id", "pathological", "size_skewed"]

HF_OFFLINE_ENV: Mapping[str, str] = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
"""Hugging Face's hub and ``datasets`` without network access."""


def natural_id(frame: pd.DataFrame, column: str | None) -> list[Partition]:
    """One bank per value of ``column`` (none merged), in ascending order of the value.

    Raises
    ------
    ConfigError
        ``column`` is missing from the frame.
    """
    codes, names = value_codes(frame, column)
    partitioner = _partitioners().NaturalIdPartitioner(partition_by="by")
    partitioner.dataset = _dataset(codes)
    indices = index_map(partitioner)
    natural_ids = partitioner.partition_id_to_natural_id
    return [
        Partition(f"{column}={names[int(natural_ids[index])]}", np.sort(part))
        for index, part in enumerate(indices)
    ]


def pathological(
    frame: pd.DataFrame, *, column: str | None, classes_per_bank: int, n_banks: int, seed: int
) -> list[Partition]:
    """Each bank holds ``classes_per_bank`` values of ``column`` (rare values merged).

    Bank i takes value ``i mod V`` first (``class_assignment_mode="first-deterministic"``,
    the paper's), so with at least as many banks as values every value is used; the
    rest of its values are drawn from the seed.

    Raises
    ------
    ConfigError
        ``classes_per_bank`` exceeds the column's values, or the draw leaves a value in
        no bank (every row must be in a bank), or a value has fewer rows than banks
        sharing it.
    """
    groups = value_groups(frame, column, merge_rare=True)
    names = ", ".join(group.name.split("=", 1)[1] for group in groups)
    if classes_per_bank > len(groups):
        raise ConfigError(
            f"must be at most the {len(groups)} values of --partition-column {column} "
            f"({names}); got {classes_per_bank}",
            source="--classes-per-bank",
        )
    codes = np.empty(len(frame), dtype=np.int64)
    for code, group in enumerate(groups):
        codes[group.rows] = code
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(frame)).astype(np.int64)
    partitioner = _partitioners().PathologicalPartitioner(
        num_partitions=n_banks,
        partition_by="by",
        num_classes_per_partition=classes_per_bank,
        class_assignment_mode="first-deterministic",
        shuffle=False,
        seed=int(rng.integers(2**32)),
    )
    partitioner.dataset = _dataset(codes[order])
    try:
        indices = index_map(partitioner)  # unused values: refused below, by name
    except ValueError as exc:
        raise ConfigError(
            f"{n_banks} banks with {classes_per_bank} values each ask more of a value of "
            f"{column} than it has rows ({exc}); use fewer --banks",
            source="--banks",
        ) from exc
    rows = [np.sort(order[part]) for part in indices]
    _check_every_value_used(groups, rows, n_banks, classes_per_bank)
    return [Partition(f"bank-{index + 1}", part) for index, part in enumerate(rows)]


def size_skewed(
    frame: pd.DataFrame, *, n_banks: int, size_skew: float, seed: int
) -> list[Partition]:
    """Bank i of ``n_banks`` (1-based) holds a random ``i ** size_skew / sum`` share of rows."""
    order = np.random.default_rng(seed).permutation(len(frame)).astype(np.int64)
    partitioner = _partitioners().IdToSizeFncPartitioner(
        num_partitions=n_banks, partition_id_to_size_fn=lambda ids: ids**size_skew
    )
    partitioner.dataset = _dataset(np.zeros(len(frame), dtype=np.int64))
    try:
        indices = index_map(partitioner)
    except ValueError as exc:
        raise ConfigError(
            f"{size_skew:g} over {n_banks} banks leaves a bank no rows; "
            "lower --size-skew or use fewer --banks",
            source="--size-skew",
        ) from exc
    return [
        Partition(f"bank-{index + 1}", np.sort(order[part])) for index, part in enumerate(indices)
    ]


def _check_every_value_used(
    groups: list[Partition], rows: list[NDArray[np.int64]], n_banks: int, per_bank: int
) -> None:
    assigned = np.zeros(sum(group.rows.size for group in groups), dtype=bool)
    for part in rows:
        assigned[part] = True
    unused = [group.name for group in groups if not assigned[group.rows].any()]
    if unused:
        raise ConfigError(
            f"{n_banks} banks with {per_bank} values each leave {', '.join(unused)} in no "
            f"bank; use at least {len(groups)} banks or raise --classes-per-bank",
            source="--banks",
        )


def index_map(partitioner: Any) -> list[NDArray[np.int64]]:
    """Each partition's data-set indices, read from the partitioner's index map.

    Not through ``load_partition``, whose ``Dataset.select`` fingerprints the index list
    (seconds per bank at 30,000 rows). ``_partition_id_to_indices`` is where
    ``NaturalIdPartitioner``, ``PathologicalPartitioner`` and ``IdToSizeFncPartitioner``
    of flwr-datasets 0.6.1 (pinned) keep it; ``num_partitions`` fills it in the last
    two, ``_create_partition_id_to_indices`` in the first. Their progress bar (stderr)
    and warnings are silenced: callers check the cover themselves.

    Raises
    ------
    ValueError
        The partitioner cannot split the data set as asked.
    """
    with _quiet(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        count = int(partitioner.num_partitions)
        if hasattr(partitioner, "_create_partition_id_to_indices"):
            partitioner._create_partition_id_to_indices()
    mapping = partitioner._partition_id_to_indices
    return [np.asarray(mapping[index], dtype=np.int64) for index in range(count)]


def _partitioners() -> Any:
    """``flwr_datasets.partitioner``, imported offline (slow: seconds, on first use)."""
    for key, value in HF_OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
    import flwr_datasets.partitioner as partitioner  # type: ignore[import-untyped]

    return partitioner


def _dataset(by: NDArray[np.int64]) -> Dataset:
    """The in-memory data set a partitioner reads: one column ``by``, pandas-formatted.

    Row i of the data set is row i of the order the scheme hands the partitioner.
    """
    for key, value in HF_OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
    from datasets import Dataset

    frame = pd.DataFrame({"by": by})
    # pandas format: `dataset["by"]` is then a Series, not datasets 4's lazy Column,
    # which the partitioners' np.asarray would read row by row (seconds at 30,000 rows).
    return Dataset.from_pandas(frame, preserve_index=False).with_format("pandas")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    with contextlib.redirect_stderr(io.StringIO()):
        yield
