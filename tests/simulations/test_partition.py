"""Simulated bank partitions: every row in exactly one bank, deterministic per seed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from credit.datasets import embedded_data_path
from credit.errors import ConfigError
from credit.loading import load_bank_csv
from credit.schema import DatasetSchema
from simulations.partition import Partition, partition_rows
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


def _default_rates(frame: pd.DataFrame, partitions: list[Partition]) -> list[float]:
    labels = frame[TARGET].to_numpy()
    return [float(labels[p.rows].mean()) for p in partitions]


# -- iid ------------------------------------------------------------------------------


def test_iid_gives_five_disjoint_near_equal_banks(frame: pd.DataFrame) -> None:
    partitions = partition_rows(frame, target=TARGET, scheme=PartitionScheme.IID, n_banks=5)

    assert [p.name for p in partitions] == [f"bank-{i}" for i in range(1, 6)]
    _assert_disjoint_cover(partitions, len(frame))
    sizes = [p.rows.size for p in partitions]
    assert max(sizes) - min(sizes) <= 1


def test_iid_is_deterministic_per_seed_and_shuffled(frame: pd.DataFrame) -> None:
    def split(seed: int) -> list[Partition]:
        return partition_rows(frame, target=TARGET, scheme=PartitionScheme.IID, seed=seed)

    first, again, other = split(3), split(3), split(4)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a.rows, b.rows)
    assert any(not np.array_equal(a.rows, c.rows) for a, c in zip(first, other, strict=True))
    # A random permutation, not contiguous blocks of the file.
    assert first[0].rows[-1] - first[0].rows[0] > first[0].rows.size


@settings(max_examples=25, deadline=None)
@given(n_rows=st.integers(1, 400), n_banks=st.integers(1, 12), seed=st.integers(0, 2**32 - 1))
def test_iid_covers_any_frame(n_rows: int, n_banks: int, seed: int) -> None:
    frame = pd.DataFrame({TARGET: np.zeros(n_rows, dtype=np.int64)})
    if n_banks > n_rows:
        with pytest.raises(ConfigError, match="would get 0 rows"):
            partition_rows(
                frame,
                target=TARGET,
                scheme=PartitionScheme.IID,
                n_banks=n_banks,
                seed=seed,
                min_rows=1,
            )
        return
    partitions = partition_rows(
        frame, target=TARGET, scheme=PartitionScheme.IID, n_banks=n_banks, seed=seed, min_rows=1
    )

    assert len(partitions) == n_banks
    _assert_disjoint_cover(partitions, n_rows)
    sizes = [p.rows.size for p in partitions]
    assert max(sizes) - min(sizes) <= 1


# -- dirichlet ------------------------------------------------------------------------


def _dirichlet(
    frame: pd.DataFrame, *, seed: int = 0, n_banks: int = 5, alpha: float = 0.5, min_rows: int = 50
) -> list[Partition]:
    return partition_rows(
        frame,
        target=TARGET,
        scheme=PartitionScheme.DIRICHLET,
        n_banks=n_banks,
        seed=seed,
        alpha=alpha,
        min_rows=min_rows,
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dirichlet_is_disjoint_covering_and_skewed(frame: pd.DataFrame, seed: int) -> None:
    partitions = _dirichlet(frame, seed=seed, n_banks=5, alpha=0.5, min_rows=50)

    assert [p.name for p in partitions] == [f"bank-{i}" for i in range(1, 6)]
    _assert_disjoint_cover(partitions, len(frame))
    assert min(p.rows.size for p in partitions) >= 50
    rates = _default_rates(frame, partitions)
    assert max(rates) - min(rates) > 0.1, rates


def test_dirichlet_is_deterministic_per_seed(frame: pd.DataFrame) -> None:
    first, again = _dirichlet(frame, seed=7), _dirichlet(frame, seed=7)
    other = _dirichlet(frame, seed=8)

    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a.rows, b.rows)
    assert [p.rows.size for p in first] != [p.rows.size for p in other]


def test_dirichlet_respects_a_large_min_rows(frame: pd.DataFrame) -> None:
    partitions = _dirichlet(frame, seed=0, n_banks=3, alpha=2.0, min_rows=2_000)

    _assert_disjoint_cover(partitions, len(frame))
    assert min(p.rows.size for p in partitions) >= 2_000


def test_large_alpha_gives_near_iid_default_rates(frame: pd.DataFrame) -> None:
    rates = _default_rates(frame, _dirichlet(frame, n_banks=5, alpha=1_000.0))

    assert max(rates) - min(rates) < 0.02, rates


# -- column ---------------------------------------------------------------------------


def test_education_column_gives_four_banks_with_minor_values_merged(
    frame: pd.DataFrame,
) -> None:
    partitions = partition_rows(
        frame, target=TARGET, scheme=PartitionScheme.COLUMN, column="EDUCATION"
    )

    assert [p.name for p in partitions] == [
        "EDUCATION=1",
        "EDUCATION=2",
        "EDUCATION=3",
        "EDUCATION=other",
    ]
    _assert_disjoint_cover(partitions, len(frame))
    education = frame["EDUCATION"].to_numpy()
    for level, part in zip([1, 2, 3], partitions, strict=False):
        assert np.all(education[part.rows] == level)
        np.testing.assert_array_equal(part.rows, np.flatnonzero(education == level))
    other = partitions[-1]
    assert set(np.unique(education[other.rows])) == {0, 4, 5, 6}
    for value in (0, 4, 5, 6):
        assert np.mean(education == value) < 0.02


def test_column_partition_ignores_n_banks_and_seed(frame: pd.DataFrame) -> None:
    def split(n_banks: int, seed: int) -> list[Partition]:
        return partition_rows(
            frame,
            target=TARGET,
            scheme=PartitionScheme.COLUMN,
            column="MARRIAGE",
            n_banks=n_banks,
            seed=seed,
        )

    first, second = split(5, 0), split(2, 9)
    assert [p.name for p in first] == [p.name for p in second]
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a.rows, b.rows)
    _assert_disjoint_cover(first, len(frame))


# -- errors ---------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", list(PartitionScheme))
@pytest.mark.parametrize("n_banks", [0, -3])
def test_fewer_than_one_bank_is_rejected(
    frame: pd.DataFrame, scheme: PartitionScheme, n_banks: int
) -> None:
    with pytest.raises(ConfigError, match=r"--banks: must be >= 1"):
        partition_rows(frame, target=TARGET, scheme=scheme, n_banks=n_banks, column="EDUCATION")


def test_unknown_column_is_rejected(frame: pd.DataFrame) -> None:
    with pytest.raises(ConfigError, match="no column 'INCOME' in the data"):
        partition_rows(frame, target=TARGET, scheme=PartitionScheme.COLUMN, column="INCOME")


def test_column_scheme_without_column_is_rejected(frame: pd.DataFrame) -> None:
    with pytest.raises(ConfigError, match="--partition-column"):
        partition_rows(frame, target=TARGET, scheme=PartitionScheme.COLUMN)


@pytest.mark.parametrize("alpha", [0.0, -0.5, float("nan")])
def test_non_positive_alpha_is_rejected(frame: pd.DataFrame, alpha: float) -> None:
    with pytest.raises(ConfigError, match="--alpha: must be > 0"):
        _dirichlet(frame, alpha=alpha)


@pytest.mark.parametrize(
    ("scheme", "message"),
    [
        (PartitionScheme.IID, r"--banks: bank 'bank-\d+' would get 4[23] rows, fewer than"),
        (PartitionScheme.DIRICHLET, r"--alpha: no Dirichlet\(alpha=0.5\) split in 1000 draws"),
    ],
)
def test_too_many_banks_for_min_rows_is_rejected(
    frame: pd.DataFrame, scheme: PartitionScheme, message: str
) -> None:
    # 30,000 rows over 700 banks leaves some bank at most 42 rows.
    with pytest.raises(ConfigError, match=message):
        partition_rows(frame, target=TARGET, scheme=scheme, n_banks=700, min_rows=50)


def test_column_bank_below_min_rows_is_rejected(frame: pd.DataFrame) -> None:
    # The merged EDUCATION=other bank holds 468 rows.
    with pytest.raises(ConfigError, match="bank 'EDUCATION=other' would get 468 rows"):
        partition_rows(
            frame, target=TARGET, scheme=PartitionScheme.COLUMN, column="EDUCATION", min_rows=500
        )


def test_column_with_missing_values_gives_them_a_bank_of_their_own(
    frame: pd.DataFrame,
) -> None:
    """Missing values are one more value, ``missing``: before, NaN matched no level and
    the NaN rows fell into ``other`` (or a bank of 0 rows when NaN was a major value)."""
    values = frame["EDUCATION"].to_numpy(dtype=float)
    missing = np.random.default_rng(0).random(values.size) < 0.1
    values[missing] = np.nan
    blanked = frame.assign(EDUCATION=values)  # float64 with NaN, as the loader gives it

    partitions = partition_rows(
        blanked, target=TARGET, scheme=PartitionScheme.COLUMN, column="EDUCATION"
    )

    assert [p.name for p in partitions] == [
        "EDUCATION=1",
        "EDUCATION=2",
        "EDUCATION=3",
        "EDUCATION=missing",
        "EDUCATION=other",
    ]
    _assert_disjoint_cover(partitions, len(frame))
    np.testing.assert_array_equal(partitions[3].rows, np.flatnonzero(missing))
    np.testing.assert_array_equal(partitions[0].rows, np.flatnonzero(values == 1))
    assert not np.isnan(values[partitions[-1].rows]).any()


def test_rare_missing_values_merge_into_other(frame: pd.DataFrame) -> None:
    values = frame["MARRIAGE"].to_numpy(dtype=float)
    values[[5, 50, 500]] = np.nan
    blanked = frame.assign(MARRIAGE=values)

    partitions = partition_rows(
        blanked, target=TARGET, scheme=PartitionScheme.COLUMN, column="MARRIAGE"
    )

    assert [p.name for p in partitions] == ["MARRIAGE=1", "MARRIAGE=2", "MARRIAGE=other"]
    assert {5, 50, 500} <= set(partitions[-1].rows.tolist())
    _assert_disjoint_cover(partitions, len(frame))


# -- both classes at every bank --------------------------------------------------------


def test_a_bank_without_one_class_is_refused_naming_the_flag() -> None:
    # Rows 0-99 are the only defaulters: an IID split into 5 banks at seed 0 gives
    # every bank some, but the column split by GROUP gives bank GROUP=b none.
    labels = np.r_[np.ones(100, dtype=np.int64), np.zeros(300, dtype=np.int64)]
    frame = pd.DataFrame({TARGET: labels, "GROUP": ["a"] * 200 + ["b"] * 200})

    iid = partition_rows(frame, target=TARGET, scheme=PartitionScheme.IID, min_rows=10)
    assert all(0 < labels[p.rows].sum() < p.rows.size for p in iid)
    with pytest.raises(
        ConfigError,
        match=(
            rf"^--partition-column: bank 'GROUP=b' would have no rows with {TARGET}=1 among "
            r"its 200 rows; split by another --partition-column \(or try another --seed\)$"
        ),
    ):
        partition_rows(
            frame, target=TARGET, scheme=PartitionScheme.COLUMN, column="GROUP", min_rows=10
        )


def test_both_classes_are_required_on_each_side_of_the_hold_out() -> None:
    labels = np.r_[np.ones(50, dtype=np.int64), np.zeros(350, dtype=np.int64)]
    frame = pd.DataFrame({TARGET: labels, "GROUP": ["a"] * 200 + ["b"] * 200})
    # Bank GROUP=a holds out every defaulter: none left to train on.
    held_out = np.zeros(400, dtype=bool)
    held_out[:50] = True
    held_out[200:250] = True

    with pytest.raises(
        ConfigError,
        match=rf"bank 'GROUP=a' would have no rows with {TARGET}=1 among its 150 training rows",
    ):
        partition_rows(
            frame,
            target=TARGET,
            scheme=PartitionScheme.COLUMN,
            column="GROUP",
            min_rows=10,
            held_out=[np.zeros(400, dtype=bool) | (np.arange(400) % 5 == 0), held_out],
        )


def test_dirichlet_redraws_until_every_bank_has_both_classes(frame: pd.DataFrame) -> None:
    """At alpha 0.1 the first draws leave banks without defaulters; the split redraws."""
    labels = frame[TARGET].to_numpy()
    first = _old_dirichlet(labels, 5, 0.1, np.random.default_rng(0), 50)
    assert any(labels[p.rows].min() == labels[p.rows].max() for p in first)

    partitions = _dirichlet(frame, seed=0, alpha=0.1)

    _assert_disjoint_cover(partitions, len(frame))
    assert all(0 < labels[p.rows].sum() < p.rows.size for p in partitions)


# -- the same partitions as before flwr-datasets ----------------------------------------
#
# The README's benchmark tables were measured with these splits. Below is the
# implementation as it was (commit e8eb757): the current one must give the same rows.


def _old_dirichlet(
    labels: np.ndarray, n_banks: int, alpha: float, rng: np.random.Generator, min_rows: int
) -> list[Partition]:
    for _ in range(100):
        assigned: list[list[np.ndarray]] = [[] for _ in range(n_banks)]
        for value in np.unique(labels):
            rows = rng.permutation(np.flatnonzero(labels == value))
            shares = rng.dirichlet(np.full(n_banks, alpha))
            cuts = (np.cumsum(shares)[:-1] * rows.size).astype(np.int64)
            for bank, part in enumerate(np.split(rows, cuts)):
                assigned[bank].append(part)
        if min(sum(p.size for p in parts) for parts in assigned) >= min_rows:
            return [
                Partition(f"bank-{i + 1}", np.sort(np.concatenate(parts)))
                for i, parts in enumerate(assigned)
            ]
    raise AssertionError("the old implementation found no split")


def _old_iid(n_rows: int, n_banks: int, seed: int) -> list[Partition]:
    parts = np.array_split(np.random.default_rng(seed).permutation(n_rows), n_banks)
    return [Partition(f"bank-{i + 1}", np.sort(p)) for i, p in enumerate(parts)]


def _old_column(frame: pd.DataFrame, column: str) -> list[Partition]:
    values = frame[column].to_numpy()
    missing = np.asarray(pd.isna(values), dtype=bool)
    groups = [(str(v), ~missing & (values == v)) for v in np.unique(values[~missing])]
    groups.append(("missing", missing))
    partitions, minor = [], np.zeros(values.size, dtype=bool)
    for name, rows in groups:
        if rows.sum() / values.size >= 0.02:
            partitions.append(Partition(f"{column}={name}", np.flatnonzero(rows)))
        else:
            minor |= rows
    if minor.any():
        partitions.append(Partition(f"{column}=other", np.flatnonzero(minor)))
    return partitions


def _assert_same(new: list[Partition], old: list[Partition]) -> None:
    assert [p.name for p in new] == [p.name for p in old]
    for a, b in zip(new, old, strict=True):
        np.testing.assert_array_equal(a.rows, b.rows)


@pytest.fixture(scope="module")
def held_out(frame: pd.DataFrame, schema: DatasetSchema) -> dict[int, np.ndarray]:
    """Per seed, the rows a default simulation holds out (the engine's rule)."""
    from participant.guard.bank import held_out_rows
    from participant.guard.settings import HoldOut

    return {
        seed: held_out_rows(frame, schema, HoldOut.for_simulation(fraction=0.2, seed=seed))
        for seed in (0, 1, 2)
    }


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("n_banks", [1, 5, 10])
def test_iid_rows_are_unchanged(
    frame: pd.DataFrame, held_out: dict[int, np.ndarray], seed: int, n_banks: int
) -> None:
    new = partition_rows(
        frame,
        target=TARGET,
        scheme=PartitionScheme.IID,
        n_banks=n_banks,
        seed=seed,
        held_out=[held_out[seed]],
    )

    _assert_same(new, _old_iid(len(frame), n_banks, seed))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dirichlet_rows_of_the_benchmarks_are_unchanged(
    frame: pd.DataFrame, held_out: dict[int, np.ndarray], seed: int
) -> None:
    """bench/quality.py and bench/privacy_utility.py: alpha 0.5, 5 banks, seeds 0-2."""
    new = partition_rows(
        frame,
        target=TARGET,
        scheme=PartitionScheme.DIRICHLET,
        n_banks=5,
        alpha=0.5,
        seed=seed,
        held_out=[held_out[seed]],
    )
    old = _old_dirichlet(frame[TARGET].to_numpy(), 5, 0.5, np.random.default_rng(seed), 50)

    _assert_same(new, old)


@pytest.mark.parametrize("column", ["EDUCATION", "MARRIAGE", "SEX"])
def test_column_rows_are_unchanged(
    frame: pd.DataFrame, held_out: dict[int, np.ndarray], column: str
) -> None:
    new = partition_rows(
        frame, target=TARGET, scheme=PartitionScheme.COLUMN, column=column, held_out=[held_out[0]]
    )

    _assert_same(new, _old_column(frame, column))
