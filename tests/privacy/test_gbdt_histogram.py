"""DP for boosting histograms: sensitivity, rounded Gaussian noise, ledger and verify."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import dp_accounting
import numpy as np
import pytest

from credit.gbdt import GRADIENT_SCALE, histograms
from privacy._verify_checks import ledger_problems
from privacy.accounting import epsilon_spent
from privacy.budget import PrivacyBudget
from privacy.errors import LedgerError, PrivacyBudgetExceeded
from privacy.gbdt_histogram import (
    consistent_sum,
    histogram_sensitivity,
    is_histogram_sensitivity,
    level_event,
    noisy_histogram,
)
from privacy.ledger import PrivacyLedger, RunPlan
from privacy.noise import SecureGaussian
from privacy.verify import verify_ledger

DELTA = 1e-5
FEATURES = 5
BINS = 4  # three regular bins and the missing bin


def _plan(noise_multiplier: float = 2.0, levels: int = 6) -> RunPlan:
    return RunPlan(
        run="boost-1",
        kind="gbdt",
        noise_multiplier=noise_multiplier,
        sample_rate=1.0,
        steps_per_round=1,
        planned_rounds=levels,
        max_grad_norm=histogram_sensitivity(FEATURES),
        n_train=1_000,
        batch_size=0,
        local_epochs=0,
    )


def _level(level: int, noise_multiplier: float = 2.0):  # type: ignore[no-untyped-def]
    return level_event(
        run="boost-1", level=level, noise_multiplier=noise_multiplier, features=FEATURES
    )


def _ledger(tmp_path: Path, max_epsilon: float = 8.0) -> PrivacyLedger:
    budget = PrivacyBudget(max_epsilon=max_epsilon, delta=DELTA)
    return PrivacyLedger(tmp_path / "ledger.jsonl", bank="acme", budget=budget)


def test_the_sensitivity_is_sqrt_33_f_over_16() -> None:
    assert histogram_sensitivity(1) == pytest.approx(math.sqrt(1 + 1 / 16 + 1))
    assert histogram_sensitivity(23) == pytest.approx(math.sqrt(23 * 33 / 16))
    assert is_histogram_sensitivity(histogram_sensitivity(23))
    assert not is_histogram_sensitivity(math.sqrt(23))
    with pytest.raises(ValueError, match="features must be >= 1; got 0"):
        histogram_sensitivity(0)


@pytest.mark.parametrize("seed", range(6))
def test_one_record_moves_a_level_by_at_most_the_sensitivity(seed: int) -> None:
    """Removing any record (missing values included) changes the level's release, in
    real units, by at most sqrt(33 F / 16) in L2; the worst record attains it."""
    rng = np.random.default_rng(seed)  # test data only
    rows = 40
    codes = rng.integers(0, BINS, size=(rows, FEATURES)).astype(np.uint8)  # BINS - 1: missing
    gradients = rng.integers(-GRADIENT_SCALE, GRADIENT_SCALE + 1, size=rows).astype(np.int64)
    hessians = rng.integers(0, GRADIENT_SCALE // 4 + 1, size=rows).astype(np.int64)
    gradients[0], hessians[0] = GRADIENT_SCALE, GRADIENT_SCALE // 4  # the extreme record
    nodes = rng.integers(1, 3, size=rows).astype(np.int64)
    units = np.array([GRADIENT_SCALE, GRADIENT_SCALE, 1.0])
    full = histograms(codes, gradients, hessians, nodes, (1, 2), BINS) / units
    for record in (0, int(rng.integers(1, rows))):
        kept = np.arange(rows) != record
        without = (
            histograms(codes[kept], gradients[kept], hessians[kept], nodes[kept], (1, 2), BINS)
            / units
        )
        distance = float(np.linalg.norm(full - without))
        assert distance <= histogram_sensitivity(FEATURES) * (1 + 1e-12)
        if record == 0:
            assert distance == pytest.approx(histogram_sensitivity(FEATURES))


def test_rounded_gaussian_noise_has_the_calibrated_deviation_per_channel() -> None:
    zeros = np.zeros((20, FEATURES, BINS, 3), dtype=np.int64)
    source = SecureGaussian(key=bytes(range(32)))  # a fixed key only for a reproducible test
    noisy = noisy_histogram(zeros, scale=GRADIENT_SCALE, noise_multiplier=0.5, source=source)

    assert noisy.dtype == np.int64 and noisy.shape == zeros.shape
    deviation = 0.5 * histogram_sensitivity(FEATURES)
    # 400 draws per channel: the sample deviation is within 15 % with overwhelming odds
    assert np.std(noisy[..., 0] / GRADIENT_SCALE) == pytest.approx(deviation, rel=0.15)
    assert np.std(noisy[..., 1] / GRADIENT_SCALE) == pytest.approx(deviation, rel=0.15)
    assert np.std(noisy[..., 2]) == pytest.approx(deviation, rel=0.15)


def test_noise_refuses_a_scale_that_breaks_the_hessian_bound() -> None:
    zeros = np.zeros((1, FEATURES, BINS, 3), dtype=np.int64)
    with pytest.raises(ValueError, match="scale must be >= 4 and divisible by 4; got 6"):
        noisy_histogram(zeros, scale=6, noise_multiplier=1.0, source=SecureGaussian())


def test_levels_compose_as_gaussian_releases_per_dp_accounting() -> None:
    events = [_level(level) for level in range(1, 7)]
    independent = dp_accounting.rdp.RdpAccountant()
    independent.compose(dp_accounting.SelfComposedDpEvent(dp_accounting.GaussianDpEvent(2.0), 6))

    assert epsilon_spent(events, DELTA) == pytest.approx(independent.get_epsilon(DELTA), rel=0.02)


def test_the_ledger_charges_each_level_once_and_no_more_than_planned(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    ledger.charge(_level(1), plan=_plan(levels=2), at_most=2)
    with pytest.raises(LedgerError, match="already released level 1's histograms"):
        ledger.charge(_level(1), at_most=2)
    ledger.charge(_level(2), at_most=2)
    with pytest.raises(PrivacyBudgetExceeded, match="already made its 2 planned gbdt-histogram"):
        ledger.charge(_level(3), at_most=2)

    assert [event.round for event in ledger.events] == [1, 2]


def test_the_ledger_refuses_a_level_past_the_budget(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path, max_epsilon=1.0)
    with pytest.raises(PrivacyBudgetExceeded):
        ledger.charge(_level(1, noise_multiplier=0.3), plan=_plan(noise_multiplier=0.3))

    assert ledger.events == () and ledger.plans == ()


def test_verify_recomputes_a_boosting_ledger(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    ledger.charge(_level(1), plan=_plan(), at_most=6)
    for level in range(2, 7):
        ledger.charge(_level(level), at_most=6)

    check = verify_ledger(ledger.path)

    assert check.ok, check.problems
    assert check.independent_rdp == pytest.approx(ledger.epsilon, rel=0.02)


def test_verify_flags_a_level_off_its_plan_repeated_or_beyond_it() -> None:
    plan = _plan(levels=2)
    wrong_sensitivity = replace(_level(2), max_grad_norm=math.sqrt(FEATURES))
    events = [_level(1), _level(1), wrong_sensitivity, _level(3)]

    problems = ledger_problems(events, [plan], n_train=1_000, delta=DELTA)

    assert any("(noise multiplier, q, steps, max-grad-norm)" in p for p in problems)
    assert "run 'boost-1' released level 1's histograms 2 times; a level is released once" in (
        problems
    )
    assert "run 'boost-1' made 4 level releases (gbdt-histogram); its plan allows 2" in problems


def test_verify_flags_a_plan_whose_sensitivity_is_no_histogram() -> None:
    plan = replace(_plan(), max_grad_norm=1.0)

    problems = ledger_problems([], [plan], n_train=1_000, delta=DELTA)

    assert problems == [
        "plan of run 'boost-1' (gbdt): sensitivity 1 is not sqrt(33 F / 16) for a whole "
        "number F of features (privacy.gbdt_histogram)"
    ]


def test_consistency_leaves_an_exact_sum_alone_and_cuts_the_noise_of_node_totals() -> None:
    rng = np.random.default_rng(3)  # test data only
    rows, regular = 500, np.array([3, 2, 3, 1, 3])
    codes = np.column_stack([rng.integers(0, r, rows) for r in regular]).astype(np.uint8)
    codes[rng.uniform(size=codes.shape) < 0.1] = BINS - 1  # missing values
    gradients = rng.integers(-GRADIENT_SCALE, GRADIENT_SCALE + 1, size=rows).astype(np.int64)
    hessians = rng.integers(0, GRADIENT_SCALE // 4 + 1, size=rows).astype(np.int64)
    exact = histograms(codes, gradients, hessians, np.zeros(rows, np.int64), (0,), BINS)

    assert np.array_equal(consistent_sum(exact, regular), exact)

    source = SecureGaussian(key=bytes(32))  # a fixed key only for a reproducible test
    errors_raw, errors_consistent = [], []
    for _ in range(200):
        noisy = noisy_histogram(exact, scale=GRADIENT_SCALE, noise_multiplier=1.0, source=source)
        totals = exact[0, 0].sum(axis=0)
        errors_raw.append(noisy[0, 0].sum(axis=0) - totals)
        errors_consistent.append(consistent_sum(noisy, regular)[0, 0].sum(axis=0) - totals)
    # five features' totals averaged: the noise of a node's totals shrinks by about sqrt(5)
    ratio = np.std(errors_raw, axis=0) / np.std(errors_consistent, axis=0)
    assert np.all(ratio > 1.8), ratio
