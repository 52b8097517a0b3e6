"""Federated boosting in this process: lossless against central training, and what the
coordinator sees (secure aggregation: only sums)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from coordinator.app.boosting import BoostingRun, LevelRecord, train_federated
from coordinator.app.boosting_checkpoint import (
    CHECKPOINT_FILE,
    load_boosting_checkpoint,
    save_boosting_checkpoint,
)
from credit.errors import ConfigError
from credit.gbdt import (
    BoostingParams,
    FeatureBins,
    base_score_from_counts,
    train_central,
)
from participant.guard.gbdt_bank import GbdtBank
from privacy.budget import PrivacyBudget
from privacy.ledger import PrivacyLedger
from privacy.verify import verify_ledger
from simulations.gbdt_consortium import PlainLevelSum, SecureLevelSum
from tests.support.secagg import consortium, node_ids

BANKS = 3
PARAMS = BoostingParams(n_trees=3, max_depth=3, learning_rate=0.3, min_child_weight=0.5, max_bins=8)
BINS = FeatureBins(
    names=("income", "age", "limit", "utilisation"),
    edges=((1.0, 2.0, 3.0), (30.0, 40.0, 50.0, 60.0), (0.5,), (0.25, 0.5, 0.75, 0.875)),
)


def _rows(seed: int = 11, rows: int = 300) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)  # test data only
    raw = np.column_stack(
        [
            rng.uniform(0, 4, rows),
            rng.uniform(20, 70, rows),
            rng.uniform(0, 1, rows),
            rng.uniform(0, 1, rows),
        ]
    ).astype(np.float32)
    raw[rng.uniform(size=raw.shape) < 0.1] = np.nan  # missing values: learned directions
    logit = 1.5 * (np.nan_to_num(raw[:, 3], nan=0.5) - 0.5) - 0.6 * (raw[:, 0] > 2)
    labels = (rng.uniform(size=rows) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return BINS.codes(raw), labels


def _banks(
    codes: np.ndarray, labels: np.ndarray, ledgers: list[PrivacyLedger] | None = None
) -> dict[int, GbdtBank]:
    """The rows split over the banks, each keyed by its participant's node id."""
    parts = np.array_split(np.arange(len(labels)), BANKS)
    return {
        node: GbdtBank(
            codes=codes[rows],
            labels=labels[rows],
            n_bins=BINS.n_bins,
            run="boost-1",
            ledger=ledgers[index] if ledgers else None,
        )
        for index, (node, rows) in enumerate(zip(node_ids(BANKS), parts, strict=True))
    }


def _federated(
    banks: dict[int, GbdtBank], labels: np.ndarray, *, secure: bool
) -> tuple[BoostingRun, PlainLevelSum | SecureLevelSum, list[LevelRecord]]:
    level_sum: PlainLevelSum | SecureLevelSum = (
        SecureLevelSum(banks, consortium(BANKS, run=7).participants, run=7, keep_aggregators=True)
        if secure
        else PlainLevelSum(banks)
    )
    records: list[LevelRecord] = []
    run = train_federated(
        params=PARAMS,
        bins=BINS,
        base_score=base_score_from_counts(int(labels.sum()), len(labels)),
        level_sum=level_sum,
        rng=np.random.default_rng(0),
        on_level=records.append,
    )
    return run, level_sum, records


@pytest.mark.parametrize("secure", [True, False])
def test_federated_training_grows_exactly_the_central_trees(secure: bool) -> None:
    """Acceptance: same rows and bins, federated (3 banks) and central: identical split
    features, thresholds, default directions and leaf values, tree by tree."""
    codes, labels = _rows()
    central = train_central(codes, labels, PARAMS, np.random.default_rng(0), bins=BINS)

    run, _, records = _federated(_banks(codes, labels), labels, secure=secure)

    ensemble = run.ensemble()
    assert len(ensemble.trees) == PARAMS.n_trees
    assert any(tree.n_nodes > 1 for tree in ensemble.trees)  # the trees did split
    assert ensemble.trees == central.trees
    assert ensemble.base_score == central.base_score
    np.testing.assert_array_equal(
        ensemble.margin_from_codes(codes), central.margin_from_codes(codes)
    )
    assert len(records) == len(run.levels) >= PARAMS.n_trees


class _Spy:
    """Records every histogram a bank releases (what must never reach the coordinator)."""

    def __init__(self, bank: GbdtBank) -> None:
        self.released: list[np.ndarray] = []
        level = bank.level

        def spying(orders):  # type: ignore[no-untyped-def]
            release = level(orders)
            self.released.append(release.histograms.copy())
            return release

        bank.level = spying  # type: ignore[method-assign]


def _arrays(value: object, seen: set[int] | None = None) -> Iterator[np.ndarray]:
    """Every NumPy array reachable from ``value`` (attributes, containers), once each."""
    seen = set() if seen is None else seen
    if id(value) in seen or isinstance(value, str | bytes | int | float | bool | type(None)):
        return
    seen.add(id(value))
    if isinstance(value, np.ndarray):
        yield value
    elif isinstance(value, dict):
        for item in (*value.keys(), *value.values()):
            yield from _arrays(item, seen)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from _arrays(item, seen)
    elif hasattr(value, "__dict__") or hasattr(value, "__slots__"):
        names = list(getattr(value, "__dict__", {})) + list(getattr(value, "__slots__", ()))
        for name in names:
            yield from _arrays(getattr(value, name, None), seen)


def _holds(state: object, histogram: np.ndarray) -> bool:
    """Whether an array in ``state`` carries ``histogram`` (as int64 or ring words)."""
    words = histogram.ravel().view(np.uint64)
    for array in _arrays(state):
        flat = array.ravel()
        if flat.size < words.size or flat.dtype.itemsize != 8:
            continue
        as_words = flat.view(np.uint64)
        for start in range(as_words.size - words.size + 1):
            if np.array_equal(as_words[start : start + words.size], words):
                return True
    return False


def test_under_secure_aggregation_the_coordinator_holds_only_sums(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Acceptance: no bank's histogram anywhere in the coordinator's state or logs, while
    the sums it holds are the pooled histograms."""
    codes, labels = _rows()
    banks = _banks(codes, labels)
    spies = [_Spy(bank) for bank in banks.values()]
    caplog.set_level(logging.DEBUG)

    run, level_sum, records = _federated(banks, labels, secure=True)

    released = [h for spy in spies for h in spy.released if h.any()]
    assert len(released) == BANKS * len(run.levels)
    assert _holds({"planted": released[0]}, released[0])  # the search finds a histogram
    coordinator = {"run": run, "aggregation": level_sum.aggregators, "records": records}
    assert not any(_holds(coordinator, histogram) for histogram in released)
    for histogram in released:
        assert np.array2string(histogram.ravel()[:8])[1:-1].strip() not in caplog.text


def test_a_private_secure_run_charges_every_level_and_verifies(tmp_path: Path) -> None:
    codes, labels = _rows()
    ledgers = [
        PrivacyLedger(
            tmp_path / f"bank-{i}.jsonl",
            bank=f"bank-{i}",
            budget=PrivacyBudget(max_epsilon=8.0, delta=1e-4),
        )
        for i in range(BANKS)
    ]

    run, _, _ = _federated(_banks(codes, labels, ledgers), labels, secure=True)

    assert len(run.trees) == PARAMS.n_trees
    for ledger in ledgers:
        assert [event.round for event in ledger.events] == [
            record.tree * PARAMS.max_depth + record.depth + 1 for record in run.levels
        ]
        check = verify_ledger(ledger.path)
        assert check.ok, check.problems
        assert ledger.epsilon <= 8.0


class _Crash(RuntimeError):
    """The coordinator stops after a tree (its checkpoint written)."""


def test_a_coordinator_resumed_from_its_checkpoint_grows_the_central_trees(
    tmp_path: Path,
) -> None:
    """The coordinator stops after tree 2 of 4; a new one resumes from the checkpoint with
    the same banks (column subsampling on: its draws stay aligned)."""
    params = PARAMS.model_copy(update={"n_trees": 4, "colsample_bytree": 0.75})
    codes, labels = _rows()
    central = train_central(codes, labels, params, np.random.default_rng(0), bins=BINS)
    banks = _banks(codes, labels)
    level_sum = SecureLevelSum(
        banks, consortium(BANKS, run=7).participants, run=7, keep_aggregators=True
    )
    path = tmp_path / CHECKPOINT_FILE
    base_score = base_score_from_counts(int(labels.sum()), len(labels))

    def stop_after_two(run: BoostingRun) -> None:
        save_boosting_checkpoint(path, run)
        if len(run.trees) == 2:
            raise _Crash

    common = {"params": params, "bins": BINS, "base_score": base_score, "level_sum": level_sum}
    with pytest.raises(_Crash):
        train_federated(**common, rng=np.random.default_rng(0), on_tree=stop_after_two)  # type: ignore[arg-type]
    saved = load_boosting_checkpoint(path, params=params, bins=BINS)
    resumed = train_federated(**common, rng=np.random.default_rng(0), resume=saved)  # type: ignore[arg-type]

    assert len(saved.trees) == 2
    assert resumed.ensemble().trees == central.trees


def test_a_checkpoint_of_other_hyperparameters_is_refused(tmp_path: Path) -> None:
    path = tmp_path / CHECKPOINT_FILE
    save_boosting_checkpoint(path, BoostingRun(PARAMS, BINS, 0.25, trees=[], levels=[]))

    with pytest.raises(ConfigError, match="resume with the same hyperparameters"):
        load_boosting_checkpoint(path, params=PARAMS.model_copy(update={"gamma": 1.0}), bins=BINS)
