"""Stability releases (a later file's counts) in the ledger, the accountant and verify."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from privacy._verify_checks import ledger_problems
from privacy.accounting import DpEvent, epsilon_by_rows, epsilon_spent
from privacy.budget import PrivacyBudget
from privacy.errors import PrivacyBudgetExceeded
from privacy.ledger import PrivacyLedger
from privacy.verify import verify_ledger

DELTA = 1e-5


def _stability(noise_multiplier: float = 3.0, *, sample_rate: float = 1.0) -> DpEvent:
    return DpEvent(
        round=0,
        noise_multiplier=noise_multiplier,
        sample_rate=sample_rate,
        steps=1,
        max_grad_norm=math.sqrt(20),
        kind="stability-release",
        run="monitor-1",
        rows="later",
    )


def _training(noise_multiplier: float = 1.0) -> DpEvent:
    return DpEvent(
        round=1, noise_multiplier=noise_multiplier, sample_rate=0.01, steps=100, max_grad_norm=1.0
    )


def test_a_stability_release_is_about_the_later_row_set() -> None:
    with pytest.raises(ValueError, match="rows of a stability-release event must be 'later'"):
        DpEvent(
            round=0, noise_multiplier=3.0, sample_rate=1.0, steps=1, max_grad_norm=1.0,
            kind="stability-release", rows="train",
        )  # fmt: skip


def test_later_releases_compose_with_each_other_and_in_parallel_with_the_development_rows() -> None:
    training, release = _training(), _stability()

    spent = epsilon_by_rows([training, release, release], DELTA)

    assert spent["train"] == epsilon_by_rows([training], DELTA)["train"]
    assert spent["later"] == epsilon_by_rows([release, release], DELTA)["later"]
    assert spent["later"] > epsilon_by_rows([release], DELTA)["later"]
    assert epsilon_spent([training, release, release], DELTA) == max(spent.values())


def test_the_ledger_refuses_a_later_release_past_the_budget(tmp_path: Path) -> None:
    ledger = PrivacyLedger(
        tmp_path / "ledger.jsonl", bank="acme", budget=PrivacyBudget(max_epsilon=1.0, delta=DELTA)
    )
    ledger.charge(_stability(noise_multiplier=6.0))

    with pytest.raises(PrivacyBudgetExceeded):
        ledger.charge(_stability(noise_multiplier=0.5))
    assert len(ledger.events) == 1


def test_verify_accepts_a_stability_release_without_a_plan(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    ledger = PrivacyLedger(path, bank="acme", budget=PrivacyBudget(max_epsilon=1.0, delta=DELTA))
    ledger.charge(_stability(noise_multiplier=6.0))

    check = verify_ledger(path)

    assert check.ok, check.problems
    assert {row.rows: row.rdp for row in check.rows}["later"] == pytest.approx(
        ledger.epsilon, rel=0.02
    )


def test_verify_flags_a_stability_release_that_is_not_one_full_step() -> None:
    problems = ledger_problems([_stability(sample_rate=0.5)], [], n_train=0, delta=DELTA)

    assert problems == [
        "stability release of run 'monitor-1': a stability release is one step with q = 1"
    ]
