"""Our epsilon against Google's dp_accounting (RDP and PLD) on fixed ledgers."""

from __future__ import annotations

from typing import Any

import dp_accounting
import pytest
from dp_accounting import pld, rdp

from privacy.accounting import (
    DpEvent,
    calibrate_noise_multiplier,
    epsilon_by_rows,
    epsilon_spent,
)

LEDGERS = {
    "ten-rounds-logreg": (
        [DpEvent(round=r, noise_multiplier=1.08, sample_rate=64 / 24_000, steps=375,
                 max_grad_norm=1.0) for r in range(1, 11)],
        1 / 240_000,
    ),
    "small-bank": (
        [DpEvent(round=r, noise_multiplier=2.5, sample_rate=64 / 374, steps=6,
                 max_grad_norm=1.0) for r in range(1, 31)],
        1 / 3_740,
    ),
    "evaluation-releases": (
        [DpEvent(round=r, noise_multiplier=8.0, sample_rate=1.0, steps=1,
                 max_grad_norm=3**0.5, kind="evaluation-release", rows="test")
         for r in range(1, 11)],
        1e-5,
    ),
    "setup-release-then-training": (
        [DpEvent(round=0, noise_multiplier=20.0, sample_rate=1.0, steps=1, max_grad_norm=3.6,
                 kind="gaussian-release")]
        + [DpEvent(round=r, noise_multiplier=0.9, sample_rate=0.01, steps=100,
                   max_grad_norm=1.0) for r in range(1, 6)],
        1e-5,
    ),
}  # fmt: skip


def _composed(events: list[DpEvent]) -> dp_accounting.DpEvent:
    return dp_accounting.ComposedDpEvent(
        [
            dp_accounting.SelfComposedDpEvent(
                dp_accounting.PoissonSampledDpEvent(
                    e.sample_rate, dp_accounting.GaussianDpEvent(e.noise_multiplier)
                ),
                e.steps,
            )
            for e in events
        ]
    )


def _reference(events: list[DpEvent], delta: float) -> tuple[float, float]:
    event = _composed(events)
    orders = (
        [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64)) + [2**k for k in range(6, 11)]
    )
    rdp_accountant = rdp.RdpAccountant(orders)
    rdp_accountant.compose(event)
    pld_accountant = pld.PLDAccountant(value_discretization_interval=1e-4)
    pld_accountant.compose(event)
    return rdp_accountant.get_epsilon(delta), pld_accountant.get_epsilon(delta)


@pytest.mark.parametrize("name", sorted(LEDGERS))
def test_epsilon_agrees_with_dp_accounting(name: str) -> None:
    events, delta = LEDGERS[name]
    ours = epsilon_spent(events, delta)
    reference_rdp, reference_pld = _reference(events, delta)
    assert ours == pytest.approx(reference_rdp, rel=0.02)
    tighter = min(reference_rdp, reference_pld)
    assert ours >= tighter * 0.99, (ours, reference_rdp, reference_pld)


def test_no_events_spend_nothing() -> None:
    assert epsilon_spent([], 1e-5) == 0.0


@pytest.mark.parametrize("target", [0.5, 1.0, 4.0])
def test_calibrated_noise_spends_at_most_the_target(target: float) -> None:
    sample_rate, steps = 64 / 4_800, 75
    sigma = calibrate_noise_multiplier(
        spent=[], planned_rounds=10, sample_rate=sample_rate, steps_per_round=steps,
        max_epsilon=target, delta=1 / 48_000,
    )  # fmt: skip
    plan = [
        DpEvent(round=r, noise_multiplier=sigma, sample_rate=sample_rate, steps=steps,
                max_grad_norm=1.0) for r in range(1, 11)
    ]  # fmt: skip
    spent = epsilon_spent(plan, 1 / 48_000)
    assert spent <= target
    assert spent > 0.97 * target  # not wastefully noisy
    eleventh = DpEvent(round=11, noise_multiplier=sigma, sample_rate=sample_rate, steps=steps,
                       max_grad_norm=1.0)  # fmt: skip
    assert epsilon_spent([*plan, eleventh], 1 / 48_000) > target


def test_calibration_accounts_for_what_is_already_spent() -> None:
    before = [DpEvent(round=0, noise_multiplier=5.0, sample_rate=1.0, steps=1, max_grad_norm=1.0)]
    fresh = calibrate_noise_multiplier(
        spent=[], planned_rounds=5, sample_rate=0.01, steps_per_round=100, max_epsilon=1.0,
        delta=1e-5,
    )  # fmt: skip
    after = calibrate_noise_multiplier(
        spent=before, planned_rounds=5, sample_rate=0.01, steps_per_round=100, max_epsilon=1.0,
        delta=1e-5,
    )  # fmt: skip
    assert after > fresh


def _calibrate(spent: list[DpEvent], sample_rate: float) -> float:
    return calibrate_noise_multiplier(
        spent=spent, planned_rounds=3, sample_rate=sample_rate, steps_per_round=20,
        max_epsilon=1.0, delta=1e-5,
    )  # fmt: skip


def test_a_process_remembers_a_calibration_by_what_it_depends_on() -> None:
    """Simulated banks of one worker with the same budget and training rows calibrate
    alike: the second is remembered. Another release spent, or another sampling rate,
    is another calibration; a release of the other row set does not count."""
    from privacy.accounting import _calibrated

    spent = [DpEvent(round=0, noise_multiplier=7.0, sample_rate=1.0, steps=1, max_grad_norm=1.0)]
    held_out = DpEvent(round=1, noise_multiplier=0.7, sample_rate=1.0, steps=1,
                       max_grad_norm=1.0, kind="evaluation-release", rows="test")  # fmt: skip
    _calibrated.cache_clear()
    first = _calibrate(spent, 0.05)
    assert _calibrate([*spent, held_out], 0.05) == first
    assert _calibrated.cache_info().hits == 1
    assert _calibrate([], 0.05) < first
    assert _calibrate(spent, 0.06) != first
    assert _calibrated.cache_info().misses == 3


def test_impossible_budget_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot cover"):
        calibrate_noise_multiplier(
            spent=[DpEvent(round=0, noise_multiplier=0.5, sample_rate=1.0, steps=10,
                           max_grad_norm=1.0)],
            planned_rounds=5, sample_rate=0.01, steps_per_round=100, max_epsilon=0.5, delta=1e-5,
        )  # fmt: skip


@pytest.mark.parametrize(
    ("field", "value"),
    [("noise_multiplier", 0.0), ("sample_rate", 0.0), ("sample_rate", 1.5), ("steps", 0),
     ("max_grad_norm", -1.0)],
)  # fmt: skip
def test_invalid_events_are_rejected(field: str, value: float) -> None:
    arguments: dict[str, Any] = {"round": 1, "noise_multiplier": 1.0, "sample_rate": 0.1,
                                 "steps": 10, "max_grad_norm": 1.0, field: value}  # fmt: skip
    with pytest.raises(ValueError, match=field):
        DpEvent(**arguments)


def _evaluation(round_: int, sigma: float = 8.0) -> DpEvent:
    return DpEvent(
        round=round_, noise_multiplier=sigma, sample_rate=1.0, steps=1, max_grad_norm=3**0.5,
        kind="evaluation-release", run="r", rows="test",
    )  # fmt: skip


def test_row_sets_compose_in_parallel() -> None:
    """Epsilon is the larger row set's: test-row events do not add to training-row ones."""
    training, _ = LEDGERS["ten-rounds-logreg"]
    evaluations = [_evaluation(r) for r in range(1, 11)]
    delta = 1 / 240_000
    by_rows = epsilon_by_rows([*training, *evaluations], delta)
    assert by_rows == {
        "train": pytest.approx(epsilon_spent(training, delta)),
        "test": pytest.approx(epsilon_spent(evaluations, delta)),
        "later": 0.0,
    }
    assert epsilon_spent([*evaluations, *training], delta) == pytest.approx(max(by_rows.values()))
    assert epsilon_by_rows([], delta) == {"train": 0.0, "test": 0.0, "later": 0.0}
    # Each set on its own agrees with dp_accounting's composition of that set alone.
    reference_rdp, _ = _reference(evaluations, delta)
    assert by_rows["test"] == pytest.approx(reference_rdp, rel=0.02)


def test_calibration_composes_only_with_its_own_row_set() -> None:
    training, _ = LEDGERS["ten-rounds-logreg"]
    plan = {"planned_rounds": 10, "sample_rate": 1.0, "steps_per_round": 1, "max_epsilon": 1.0,
            "delta": 1e-5, "rows": "test"}  # fmt: skip
    fresh = calibrate_noise_multiplier(spent=[], **plan)  # type: ignore[arg-type]
    after_training = calibrate_noise_multiplier(spent=training, **plan)  # type: ignore[arg-type]
    after_evaluations = calibrate_noise_multiplier(
        spent=[_evaluation(0, sigma=12.0)],
        **plan,  # type: ignore[arg-type]
    )
    assert after_training == fresh
    assert after_evaluations > fresh
    released = [_evaluation(r, sigma=fresh) for r in range(1, 11)]
    assert (
        epsilon_spent(released, 1e-5)
        <= 1.0
        < epsilon_spent([*released, _evaluation(11, fresh)], 1e-5)
    )


@pytest.mark.parametrize(
    ("kind", "rows", "problem"),
    [("dp-sgd", "test", "rows of a dp-sgd event must be 'train'"),
     ("gaussian-release", "test", "must be 'train'"),
     ("evaluation-release", "train", "must be 'test'"),
     ("histogram", "train", "kind must be one of")],
)  # fmt: skip
def test_an_event_is_about_its_kind_s_row_set(kind: str, rows: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        DpEvent(round=1, noise_multiplier=1.0, sample_rate=1.0, steps=1, max_grad_norm=1.0,
                kind=kind, rows=rows)  # type: ignore[arg-type]  # fmt: skip
