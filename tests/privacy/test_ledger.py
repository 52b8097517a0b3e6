"""The bank-side ledger: persisted, recomputed, refuses before it records."""

from __future__ import annotations

from pathlib import Path

import pytest

from privacy.accounting import DpEvent, epsilon_spent
from privacy.budget import PrivacyBudget
from privacy.errors import LedgerError, PrivacyBudgetExceeded
from privacy.ledger import PrivacyLedger, RunPlan

BUDGET = PrivacyBudget(max_epsilon=1.0, delta=1e-5)


def _event(round_: int, sigma: float = 1.2) -> DpEvent:
    return DpEvent(round=round_, noise_multiplier=sigma, sample_rate=0.01, steps=100,
                   max_grad_norm=1.0)  # fmt: skip


def test_spend_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    ledger = PrivacyLedger(path, bank="bank-1", budget=BUDGET)
    ledger.charge(_event(1))
    ledger.charge(_event(2))
    reopened = PrivacyLedger(path, bank="bank-1", budget=BUDGET)
    assert reopened.events == ledger.events
    assert reopened.epsilon == pytest.approx(epsilon_spent([_event(1), _event(2)], 1e-5))


def test_over_budget_event_is_refused_and_not_recorded(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    ledger = PrivacyLedger(path, bank="bank-1", budget=BUDGET)
    charged = 0
    with pytest.raises(PrivacyBudgetExceeded) as refusal:
        for round_ in range(1, 100):
            ledger.charge(_event(round_, sigma=2.0))
            charged += 1
    assert 0 < charged < 99
    before = path.read_text()
    assert refusal.value.bank == "bank-1"
    assert refusal.value.maximum == 1.0
    assert refusal.value.spent <= 1.0 < refusal.value.requested
    assert refusal.value.server_round == charged + 1
    assert ledger.epsilon <= 1.0
    with pytest.raises(PrivacyBudgetExceeded):
        ledger.charge(_event(charged + 1, sigma=2.0))
    assert path.read_text() == before
    assert len(PrivacyLedger(path, bank="bank-1", budget=BUDGET).events) == charged


def test_plan_is_persisted_once_per_run(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    plan = RunPlan(run="7", noise_multiplier=1.3, sample_rate=0.01, steps_per_round=100,
                   planned_rounds=10, max_grad_norm=1.0)  # fmt: skip
    ledger = PrivacyLedger(path, bank="bank-1", budget=BUDGET)
    ledger.record_plan(plan)
    assert PrivacyLedger(path, bank="bank-1", budget=BUDGET).plan_for("7") == plan
    with pytest.raises(LedgerError, match="already has a plan"):
        ledger.record_plan(plan)


def test_budget_cannot_be_raised_by_restarting(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    PrivacyLedger(path, bank="bank-1", budget=BUDGET).charge(_event(1))
    with pytest.raises(LedgerError, match="cannot change"):
        PrivacyLedger(path, bank="bank-1", budget=PrivacyBudget(max_epsilon=8.0, delta=1e-5))


def test_ledger_of_another_bank_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    PrivacyLedger(path, bank="bank-1", budget=BUDGET)
    with pytest.raises(LedgerError, match="belongs to bank 'bank-1'"):
        PrivacyLedger(path, bank="bank-2", budget=BUDGET)


def test_corrupt_ledger_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    path.write_text("{not json\n")
    with pytest.raises(LedgerError, match="line 1: not a ledger entry"):
        PrivacyLedger(path, bank="bank-1", budget=BUDGET)


def test_summary_has_the_published_fields(tmp_path: Path) -> None:
    ledger = PrivacyLedger(tmp_path / "l.jsonl", bank="bank-1", budget=BUDGET)
    ledger.charge(_event(1))
    summary = ledger.summary()
    assert set(summary) == {"epsilon", "delta", "max_epsilon", "accountant", "events"}
    assert set(summary["events"][0]) >= {"round", "noise_multiplier", "sample_rate", "steps",
                                         "max_grad_norm"}  # fmt: skip
