"""The partition schemes taken from ``flwr-datasets``: natural-id, pathological, size.

Each is deterministic per seed, puts every row in exactly one bank and skews what it
says it skews. The two fedcredit schemes the library also offers (``iid``, ``column``)
are checked against its partitioners here, and the index maps these schemes read
against the library's own ``load_partition``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from credit.datasets import embedded_data_path
from credit.errors import ConfigError
from credit.loading import load_bank_csv
from credit.schema import DatasetSchema
from simulations.flower_partitions import _dataset, _partitioners, index_map
from simulations.partition import Partition, partition_rows
from simulations.partition_groups import value_groups
from simulations.settings import PartitionScheme

TARGET = "default_payment_next_month"


@pytest.fixture(scope="module")
def frame(schema: DatasetSchema) -> pd.DataFrame:
    """The embedded data set, validated and typed."""
    return load_bank_csv(embedded_data_path(), schema).frame


def _assert_disjoint_cover(partitions: list[Partition], n_rows: int) -> None:
    for part in partitions:
        assert part.rows.dtype == np.int64, part.name
        assert np.all(np.diff(part.rows) > 0), f"{part.name}: rows not sorted and unique"
    everything = np.sort(np.concatenate([p.rows for p in partitions]))
    np.testing.assert_array_equal(everything, np.arange(n_rows))


def _split(frame: pd.DataFrame, scheme: PartitionScheme, **options: object) -> list[Partition]:
    return partition_rows(frame, target=TARGET, scheme=scheme, **options)  # type: ignore[arg-type]


def _same(first: list[Partition], second: list[Partition]) -> bool:
    return [p.name for p in first] == [p.name for p in second] and all(
        np.array_equal(a.rows, b.rows) for a, b in zip(first, second, strict=True)
    )


# -- natural-id -------------------------------------------------------------------------


def test_natural_id_gives_one_bank_per_value_none_merged(frame: pd.DataFrame) -> None:
    partitions = _split(frame, PartitionScheme.NATURAL_ID, column="MARRIAGE", min_rows=1)

    marriage = frame["MARRIAGE"].to_numpy()
    assert [p.name for p in partitions] == [f"MARRIAGE={v}" for v in (0, 1, 2, 3)]
    _assert_disjoint_cover(partitions, len(frame))
    for value, part in zip((0, 1, 2, 3), partitions, strict=True):
        np.testing.assert_array_equal(part.rows, np.flatnonzero(marriage == value))
    assert partitions[0].rows.size == 54  # a value the column split merges into 'other'


def test_natural_id_gives_missing_values_a_bank(frame: pd.DataFrame) -> None:
    values = frame["SEX"].to_numpy(dtype=float)
    values[::7] = np.nan
    partitions = _split(frame.assign(SEX=values), PartitionScheme.NATURAL_ID, column="SEX")

    assert [p.name for p in partitions] == ["SEX=1", "SEX=2", "SEX=missing"]
    np.testing.assert_array_equal(partitions[2].rows, np.arange(0, len(frame), 7))
    _assert_disjoint_cover(partitions, len(frame))


def test_natural_id_refuses_a_value_below_the_minimum_rows(frame: pd.DataFrame) -> None:
    with pytest.raises(
        ConfigError,
        match=(
            r"^--partition-column: bank 'EDUCATION=0' would get 14 rows, fewer than the "
            r"schema's minimum of 50; use --partition column \(rare values merged\)"
        ),
    ):
        _split(frame, PartitionScheme.NATURAL_ID, column="EDUCATION")


# -- pathological -----------------------------------------------------------------------


@pytest.mark.parametrize("per_bank", [1, 2, 3])
def test_pathological_gives_each_bank_exactly_its_values(
    frame: pd.DataFrame, per_bank: int
) -> None:
    partitions = _split(
        frame, PartitionScheme.PATHOLOGICAL, column="EDUCATION", classes_per_bank=per_bank
    )

    _assert_disjoint_cover(partitions, len(frame))
    groups = value_groups(frame, "EDUCATION", merge_rare=True)  # 1, 2, 3, other
    group_of = np.empty(len(frame), dtype=np.int64)
    for code, group in enumerate(groups):
        group_of[group.rows] = code
    held = [set(np.unique(group_of[p.rows]).tolist()) for p in partitions]
    assert [len(values) for values in held] == [per_bank] * 5
    # first-deterministic: bank i holds value i mod 4 (all four used with 5 banks).
    assert all(index % 4 in values for index, values in enumerate(held))
    # A value's rows are shared evenly by the banks holding it.
    for code, group in enumerate(groups):
        shares = [
            int(np.sum(group_of[part.rows] == code))
            for part, values in zip(partitions, held, strict=True)
            if code in values
        ]
        assert max(shares) - min(shares) <= 1, (group.name, shares)


def test_pathological_is_deterministic_per_seed_and_random_within_a_value(
    frame: pd.DataFrame,
) -> None:
    def split(seed: int) -> list[Partition]:
        return _split(frame, PartitionScheme.PATHOLOGICAL, column="EDUCATION", seed=seed)

    first, again, other = split(3), split(3), split(4)

    assert _same(first, again)
    assert not _same(first, other)
    # Bank 1 shares a value with other banks: its rows are a random part of the value's,
    # not the first rows in the file.
    assert first[0].rows[-1] - first[0].rows[0] > 2 * first[0].rows.size


def test_pathological_with_too_many_values_per_bank_is_refused(frame: pd.DataFrame) -> None:
    with pytest.raises(
        ConfigError,
        match=(
            r"^--classes-per-bank: must be at most the 4 values of --partition-column "
            r"EDUCATION \(1, 2, 3, other\); got 5$"
        ),
    ):
        _split(frame, PartitionScheme.PATHOLOGICAL, column="EDUCATION", classes_per_bank=5)


def test_pathological_leaving_a_value_in_no_bank_is_refused(frame: pd.DataFrame) -> None:
    with pytest.raises(
        ConfigError, match=r"^--banks: 2 banks with 1 values each leave EDUCATION=3, EDUCATION"
    ):
        _split(
            frame,
            PartitionScheme.PATHOLOGICAL,
            column="EDUCATION",
            classes_per_bank=1,
            n_banks=2,
        )


def test_pathological_by_the_binary_label_with_one_class_per_bank_is_refused(
    frame: pd.DataFrame,
) -> None:
    """The degenerate label version: one class per bank leaves banks without defaulters."""
    with pytest.raises(
        ConfigError,
        match=rf"^--classes-per-bank: bank 'bank-1' would have no rows with {TARGET}=1",
    ):
        _split(frame, PartitionScheme.PATHOLOGICAL, column=TARGET, classes_per_bank=1)


# -- size ---------------------------------------------------------------------------------


@pytest.mark.parametrize("skew", [0.0, 0.5, 1.0, 2.0])
def test_size_gives_bank_i_rows_in_proportion_to_i_to_the_skew(
    frame: pd.DataFrame, skew: float
) -> None:
    partitions = _split(frame, PartitionScheme.SIZE, size_skew=skew, n_banks=6)

    _assert_disjoint_cover(partitions, len(frame))
    weights = np.arange(1, 7, dtype=float) ** skew
    expected = np.floor(weights / weights.sum() * len(frame)).astype(int)
    expected[-1] += len(frame) - expected.sum()  # the rounding remainder goes last
    assert [p.rows.size for p in partitions] == expected.tolist()


def test_size_banks_are_random_samples_deterministic_per_seed(frame: pd.DataFrame) -> None:
    def split(seed: int) -> list[Partition]:
        return _split(frame, PartitionScheme.SIZE, size_skew=1.0, seed=seed)

    first, again, other = split(0), split(0), split(1)

    assert _same(first, again)
    assert not _same(first, other)
    labels = frame[TARGET].to_numpy()
    rates = [labels[p.rows].mean() for p in first]
    assert max(rates) - min(rates) < 0.05, rates  # sizes skewed, labels not
    assert first[0].rows[-1] - first[0].rows[0] > first[0].rows.size


@pytest.mark.parametrize(
    ("skew", "message"),
    [
        (2.0, r"bank 'bank-1' would get 10 rows, fewer than the schema's minimum of 50"),
        (4.0, r"4 over 20 banks leaves a bank no rows"),
    ],
)
def test_a_size_skew_that_starves_a_bank_is_refused(
    frame: pd.DataFrame, skew: float, message: str
) -> None:
    with pytest.raises(
        ConfigError, match=rf"^--size-skew: {message}; lower --size-skew or use fewer --banks$"
    ):
        _split(frame, PartitionScheme.SIZE, size_skew=skew, n_banks=20)


# -- against the library ------------------------------------------------------------------


@pytest.mark.parametrize(("seed", "n_banks"), [(0, 5), (7, 13)])
def test_iid_equals_flwr_datasets_iid_partitioner_over_its_permutation(
    frame: pd.DataFrame, seed: int, n_banks: int
) -> None:
    order = np.random.default_rng(seed).permutation(len(frame))
    partitioner = _partitioners().IidPartitioner(num_partitions=n_banks)
    partitioner.dataset = _dataset(order)

    ours = _split(frame, PartitionScheme.IID, n_banks=n_banks, seed=seed)
    for index, part in enumerate(ours):
        theirs = np.sort(np.asarray(partitioner.load_partition(index)["by"]))
        np.testing.assert_array_equal(part.rows, theirs)


@pytest.mark.parametrize("column", ["EDUCATION", "MARRIAGE"])
def test_column_equals_flwr_datasets_natural_id_over_the_merged_values(
    frame: pd.DataFrame, column: str
) -> None:
    groups = value_groups(frame, column, merge_rare=True)
    codes = np.empty(len(frame), dtype=np.int64)
    for code, group in enumerate(groups):
        codes[group.rows] = code
    partitioner = _partitioners().NaturalIdPartitioner(partition_by="by")
    partitioner.dataset = _dataset(codes)

    ours = _split(frame, PartitionScheme.COLUMN, column=column)
    assert partitioner.num_partitions == len(ours)
    for index, part in enumerate(ours):
        natural = partitioner.partition_id_to_natural_id[index]
        assert groups[int(natural)].name == part.name
        rows = partitioner.load_partition(index).with_format(None)
        np.testing.assert_array_equal(part.rows, np.flatnonzero(codes == natural))
        assert len(rows) == part.rows.size


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("NaturalIdPartitioner", {"partition_by": "by"}),
        (
            "PathologicalPartitioner",
            {
                "num_partitions": 4,
                "partition_by": "by",
                "num_classes_per_partition": 2,
                "class_assignment_mode": "first-deterministic",
                "shuffle": False,
                "seed": 3,
            },
        ),
        (
            "IdToSizeFncPartitioner",
            {"num_partitions": 4, "partition_id_to_size_fn": lambda ids: ids**1.5},
        ),
    ],
)
def test_index_map_equals_the_librarys_load_partition(
    name: str, options: dict[str, object]
) -> None:
    """The schemes read the partitioners' index maps (private in two of them); the
    library's own ``load_partition`` must select exactly those rows."""
    from datasets import Dataset

    rng = np.random.default_rng(5)
    table = pd.DataFrame({"by": rng.integers(0, 3, 600), "position": np.arange(600)})
    partitioner = getattr(_partitioners(), name)(**options)
    partitioner.dataset = Dataset.from_pandas(table, preserve_index=False).with_format("pandas")

    indices = index_map(partitioner)

    assert len(indices) == partitioner.num_partitions
    for index, part in enumerate(indices):
        selected = partitioner.load_partition(index)["position"].to_numpy()
        np.testing.assert_array_equal(part, selected)
    np.testing.assert_array_equal(np.sort(np.concatenate(indices)), np.arange(600))
