"""fedcredit's federated boosting for ``bench/gbdt.py``: accuracy, lossless check, speed, DP.

Real federated code in this process (:mod:`simulations.gbdt_consortium`): each bank is
a :class:`~participant.guard.gbdt_bank.GbdtBank` (the guard's boosting state: its
policy, its ledger and noise under a budget) with its own secure-aggregation
:class:`~privacy.secagg.protocol.Participant` (a signing key on the consortium's member
list), and the coordinator's :func:`~coordinator.app.boosting.train_federated` asks
for one level at a time through :class:`~simulations.gbdt_consortium.SecureLevelSum`:
one round of the malicious-secure protocol per level (signed keys, sealed shares,
masked int64 histograms, the consistency check, unmasking). Only Flower's transport is
left out (``fedcredit simulate --model gbdt`` adds it; ``bench/gbdt.py`` reads one such
run's level timings separately).

* :func:`fedcredit_gbdt`: the split's banks at the seed, secure aggregation on; the
  ensemble compared tree by tree with :func:`credit.gbdt.train_central` on the split's
  pooled training rows with the same bins and column draws (lossless check);
* :func:`speed`: seconds per tree, secure and plain sums, by banks and by depth;
* :func:`private`: test AUC under a per-bank budget (ε, δ = 1e-5) on a split, for
  small ensembles fixed in advance (:data:`DP_CONFIGS`, every one reported).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from _gbdt_data import SeedData, bank_indices, metrics, probabilities
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from numpy.typing import NDArray

from coordinator.app.boosting import BoostingRun, train_federated
from credit.gbdt import BoostingParams, Ensemble, base_score_from_counts, train_central
from credit.messages.gbdt import LevelOrders
from participant.guard.gbdt_bank import GbdtBank
from participant.guard.settings import SecAggPolicy
from privacy.budget import PrivacyBudget
from privacy.ledger import PrivacyLedger
from privacy.secagg.members import Member, MemberList
from privacy.secagg.protocol import Participant
from privacy.secagg.signed import Identity
from simulations.gbdt_consortium import PlainLevelSum, SecureLevelSum

RUN_ID = 1
DP_DELTA = 1e-5
DP_EPSILONS: tuple[float | None, ...] = (1.0, 4.0, None)  # None: no budget (ε = ∞)
DP_CONFIGS: dict[str, BoostingParams] = {
    # Fixed before any DP run, never chosen on the held-out customers; all reported.
    "5 trees, depth 2, 8 bins, lr 0.5": BoostingParams(
        n_trees=5, max_depth=2, learning_rate=0.5, min_child_weight=100.0, max_bins=8
    ),
    "10 trees, depth 2, 8 bins, lr 0.3": BoostingParams(
        n_trees=10, max_depth=2, learning_rate=0.3, min_child_weight=100.0, max_bins=8
    ),
    "10 trees, depth 3, 16 bins, lr 0.3": BoostingParams(
        n_trees=10, max_depth=3, learning_rate=0.3, min_child_weight=100.0, max_bins=16
    ),
}


def participants(count: int) -> dict[int, Participant]:
    """One secure-aggregation participant per bank (``bank-1`` ...), by node id, on a
    fresh member list."""
    names = [f"bank-{index}" for index in range(1, count + 1)]
    keys = {name: Ed25519PrivateKey.generate() for name in names}
    members = MemberList(
        consortium="bench-gbdt",
        members=tuple(
            Member(name=name, signing_key=key.public_key().public_bytes_raw())
            for name, key in keys.items()
        ),
    )
    return {
        2**62 + 7919 * index: Participant(
            2**62 + 7919 * index,
            RUN_ID,
            Identity(members=members, member=name, signing_key=keys[name], policy=SecAggPolicy()),
        )
        for index, name in enumerate(names)
    }


PARTICIPANT_STEPS = ("advertise", "receive", "mask", "sign_survivors", "unmask")
"""A bank's secure-aggregation steps in a level (timed as the bank's work)."""


class BankClock:
    """Each bank's seconds of work (its histograms and its protocol steps), per level.

    The banks run one after the other in this process; deployed, they work at once, so
    a level's critical path is the coordinator's part plus the slowest bank's.
    """

    def __init__(self) -> None:
        self.level: dict[int, float] = {}
        self.banks_total = 0.0
        self.slowest_total = 0.0

    def timed(self, node: int, method: Callable[..., Any]) -> Callable[..., Any]:
        """``method`` with its seconds added to bank ``node``'s share of this level."""

        def timing(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - started
                self.level[node] = self.level.get(node, 0.0) + elapsed

        return timing

    def close_level(self) -> None:
        """Book this level's banks' seconds (total and slowest) and start the next."""
        self.banks_total += sum(self.level.values())
        self.slowest_total += max(self.level.values(), default=0.0)
        self.level = {}


class _ClockedSum:
    def __init__(self, inner: PlainLevelSum | SecureLevelSum, clock: BankClock) -> None:
        self.inner, self.clock = inner, clock

    def __call__(self, orders: LevelOrders) -> NDArray[np.int64]:
        summed = self.inner(orders)
        self.clock.close_level()
        return summed


def _clocked(
    states: list[GbdtBank], members: dict[int, Participant], clock: BankClock, *, secure: bool
) -> PlainLevelSum | SecureLevelSum:
    by_node = dict(zip(members, states, strict=True))
    for node, bank in by_node.items():
        bank.level = clock.timed(node, bank.level)  # type: ignore[method-assign]
        for step in PARTICIPANT_STEPS if secure else ():
            setattr(members[node], step, clock.timed(node, getattr(members[node], step)))
    return SecureLevelSum(by_node, members, run=RUN_ID) if secure else PlainLevelSum(by_node)


def train_banks(
    data: SeedData,
    banks: list[tuple[str, NDArray[np.intp]]],
    params: BoostingParams,
    *,
    secure: bool,
    ledgers: dict[str, PrivacyLedger] | None = None,
) -> tuple[BoostingRun, dict[str, float]]:
    """Federated training over ``banks`` (name, training row numbers): the run and its
    seconds (wall, the banks' work summed, the coordinator's: wall minus the banks', and
    the critical path if the banks worked at once: the coordinator's plus each level's
    slowest bank's). Secure aggregation's keys are made before the clock starts."""
    pool = np.concatenate([rows for _, rows in banks])
    states = [
        GbdtBank(
            codes=data.codes[rows],
            labels=data.labels[rows],
            n_bins=data.bins.n_bins,
            run="bench-gbdt",
            ledger=None if ledgers is None else ledgers[name],
        )
        for name, rows in banks
    ]
    clock = BankClock()
    level_sum = _clocked(states, participants(len(banks)), clock, secure=secure)
    started = time.perf_counter()
    run = train_federated(
        params=params,
        bins=data.bins,
        base_score=base_score_from_counts(int(data.labels[pool].sum()), len(pool)),
        level_sum=_ClockedSum(level_sum, clock),
        rng=np.random.default_rng(data.seed),
    )
    wall = time.perf_counter() - started
    coordinator = wall - clock.banks_total
    return run, {
        "wall": wall,
        "banks": clock.banks_total,
        "coordinator": coordinator,
        "critical_path": coordinator + clock.slowest_total,
    }


def _test_metrics(data: SeedData, ensemble: Ensemble) -> dict[str, float]:
    margins = ensemble.margin_from_codes(data.codes[~data.train])
    return metrics(data.labels[~data.train], probabilities(margins))


def fedcredit_gbdt(data: SeedData, split: str, params: BoostingParams) -> dict[str, object]:
    """The split's banks, secure aggregation on, against central training on their rows."""
    banks = bank_indices(data, split)
    run, seconds = train_banks(data, banks, params, secure=True)
    trees = len(run.trees)
    pool = np.concatenate([rows for _, rows in banks])
    central = train_central(
        data.codes[pool],
        data.labels[pool],
        params,
        np.random.default_rng(data.seed),
        bins=data.bins,
    )
    federated, reference = _test_metrics(data, run.ensemble()), _test_metrics(data, central)
    return {
        **federated,
        "banks": len(banks),
        "trees": len(run.trees),
        "identical_trees": run.ensemble() == central,
        "central_on_pooled_rows_auc": reference["auc"],
        "auc_difference_central": abs(federated["auc"] - reference["auc"]),
        "pooled_rows_are_the_training_rows": bool(
            np.array_equal(np.sort(pool), np.flatnonzero(data.train))
        ),
        "levels": len(run.levels),
        "seconds_per_tree": seconds["wall"] / trees,
        "seconds_per_tree_if_banks_in_parallel": seconds["critical_path"] / trees,
        "wall_seconds": seconds["wall"],
    }


def _speed_row(
    data: SeedData, params: BoostingParams, banks: int, *, secure: bool
) -> dict[str, object]:
    rows = bank_indices(data, "iid-5", banks=banks)
    load_before = os.getloadavg()[0]
    run, seconds = train_banks(data, rows, params, secure=secure)
    return {
        "banks": banks,
        "depth": params.max_depth,
        "bins": params.max_bins,
        "secure_aggregation": secure,
        "trees": len(run.trees),
        "levels": len(run.levels),
        "seconds_per_tree": seconds["wall"] / len(run.trees),
        "seconds_per_level": seconds["wall"] / len(run.levels),
        **{
            f"{part}_seconds_per_tree": seconds[part] / len(run.trees)
            for part in ("banks", "coordinator", "critical_path")
        },
        "load_average_1min": [load_before, os.getloadavg()[0]],
    }


def speed(
    data: SeedData, params: BoostingParams, *, banks: list[int], depths: list[int]
) -> list[dict[str, object]]:
    """Seconds per tree on IID banks of the training rows: by banks at the deepest
    depth, by depth at the fewest banks; secure aggregation on and off."""
    deepest, fewest = max(depths), min(banks)
    points = [(n, deepest) for n in banks] + [(fewest, d) for d in depths if d != deepest]
    return [
        _speed_row(data, params.model_copy(update={"max_depth": depth}), n, secure=secure)
        for n, depth in points
        for secure in (True, False)
    ]


def private(
    data_for: dict[int, SeedData], split: str, *, repeats: int = 1
) -> list[dict[str, object]]:
    """Test AUC of each :data:`DP_CONFIGS` ensemble at each ε of :data:`DP_EPSILONS`
    per bank (δ = 1e-5), on ``split``'s banks with secure aggregation on, ``repeats``
    times each (fresh noise).

    ``data_for`` maps each config's ``max_bins`` to the seed's data on those bins.
    """
    return [
        _private_run(data_for[params.max_bins], split, name, params, epsilon)
        for name, params in DP_CONFIGS.items()
        for epsilon in DP_EPSILONS
        for _ in range(repeats if epsilon is not None else 1)
    ]


def _private_run(
    data: SeedData, split: str, name: str, params: BoostingParams, epsilon: float | None
) -> dict[str, object]:
    banks = bank_indices(data, split)
    with tempfile.TemporaryDirectory() as folder:
        ledgers = None
        if epsilon is not None:
            budget = PrivacyBudget(max_epsilon=epsilon, delta=DP_DELTA)
            ledgers = {
                bank: PrivacyLedger(Path(folder) / f"{bank}.jsonl", bank=bank, budget=budget)
                for bank, _ in banks
            }
        run, _ = train_banks(data, banks, params, secure=True, ledgers=ledgers)
        spent = None if ledgers is None else max(ledger.epsilon for ledger in ledgers.values())
    return {
        "config": name,
        "epsilon": epsilon,
        "max_epsilon_spent": spent,
        "banks": len(banks),
        "trees": len(run.trees),
        **_test_metrics(data, run.ensemble()),
    }
