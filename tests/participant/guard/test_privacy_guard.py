"""The bank holds the line: plan once, charge before training, refuse past the budget."""

from __future__ import annotations

from pathlib import Path

import pytest

from credit.feature_stats import compute_feature_stats
from participant.guard.privacy_guard import PrivacyGuard, TrainingRequest
from privacy.budget import PrivacyBudget, default_delta
from privacy.errors import PrivacyBudgetExceeded

N_TRAIN = 4_000


def _request(server_round: int, **changes: object) -> TrainingRequest:
    fields: dict[str, object] = {
        "run": "run-1",
        "server_round": server_round,
        "planned_rounds": 10,
        "local_epochs": 1,
        "batch_size": 64,
        "max_grad_norm": 1.0,
    }
    fields.update(changes)
    return TrainingRequest(**fields)  # type: ignore[arg-type]


def _guard(path: Path, max_epsilon: float = 1.0) -> PrivacyGuard:
    budget = PrivacyBudget(max_epsilon=max_epsilon)
    return PrivacyGuard(bank="bank-1", budget=budget, ledger_path=path, n_train=N_TRAIN)


def test_planned_rounds_fit_and_later_rounds_are_refused(tmp_path: Path) -> None:
    guard = _guard(tmp_path / "ledger.jsonl")
    for server_round in range(1, 11):
        guard.charge_round(_request(server_round))
    assert guard.ledger.epsilon <= 1.0
    assert guard.ledger.epsilon > 0.97
    for server_round in (11, 12):
        with pytest.raises(PrivacyBudgetExceeded) as refusal:
            guard.charge_round(_request(server_round))
        assert refusal.value.server_round == server_round
        assert refusal.value.requested > 1.0 >= refusal.value.spent
    assert [e.round for e in guard.ledger.events] == list(range(1, 11))


def test_a_restarted_participant_keeps_its_spend_and_plan(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    first = _guard(path)
    for server_round in range(1, 6):
        first.charge_round(_request(server_round))
    spent, plan = first.ledger.epsilon, first.ledger.plan_for("run-1")
    restarted = _guard(path)  # a new process reading the same file
    assert restarted.ledger.epsilon == pytest.approx(spent)
    assert restarted.ledger.plan_for("run-1") == plan
    for server_round in range(6, 11):
        restarted.charge_round(_request(server_round))
    with pytest.raises(PrivacyBudgetExceeded):
        restarted.charge_round(_request(11))
    assert restarted.ledger.epsilon <= 1.0


@pytest.mark.parametrize("change", [{"batch_size": 256}, {"local_epochs": 3}])
def test_changed_batch_size_or_epochs_is_refused(tmp_path: Path, change: dict[str, int]) -> None:
    guard = _guard(tmp_path / "ledger.jsonl")
    for server_round in range(1, 9):
        guard.charge_round(_request(server_round))
    before = guard.ledger.events
    with pytest.raises(PrivacyBudgetExceeded):
        guard.charge_round(_request(9, **change))
    assert guard.ledger.events == before


def test_feature_stats_release_is_charged_and_noisy(tmp_path: Path, schema, write_bank_csv) -> None:
    from credit.loading import load_bank_csv

    frame = load_bank_csv(write_bank_csv(1_000), schema).frame
    stats = compute_feature_stats(frame, schema)
    guard = _guard(tmp_path / "ledger.jsonl")
    noisy = guard.release_feature_stats(stats, schema, _request(0))
    assert [e.kind for e in guard.ledger.events] == ["gaussian-release"]
    assert guard.ledger.plan_for("run-1") is not None
    exact = stats.numeric["LIMIT_BAL"].histogram
    assert (noisy.numeric["LIMIT_BAL"].histogram != exact).any()
    # The planned rounds still fit after the release.
    for server_round in range(1, 11):
        guard.charge_round(_request(server_round))
    assert guard.ledger.epsilon <= 1.0


def test_budget_too_small_for_any_plan_is_refused_before_release(
    tmp_path: Path, schema, write_bank_csv
) -> None:
    from credit.loading import load_bank_csv

    frame = load_bank_csv(write_bank_csv(200), schema).frame
    guard = _guard(tmp_path / "ledger.jsonl", max_epsilon=0.001)
    with pytest.raises(PrivacyBudgetExceeded):
        guard.release_feature_stats(compute_feature_stats(frame, schema), schema, _request(0))
    assert guard.ledger.events == ()


def test_delta_defaults_to_a_tenth_of_one_over_n(tmp_path: Path) -> None:
    assert _guard(tmp_path / "l.jsonl").ledger.delta == default_delta(N_TRAIN)
    with pytest.raises(ValueError, match="larger than 1/\\(10 n_train\\)"):
        PrivacyGuard(
            bank="bank-1",
            budget=PrivacyBudget(max_epsilon=1.0, delta=0.01),
            ledger_path=tmp_path / "x.jsonl",
            n_train=N_TRAIN,
        )
