"""The bank holds the line: plan once, charge before training, refuse past the budget."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from credit.feature_stats import compute_feature_stats
from credit.governance.release import governance_sensitivity
from credit.messages.replies import ledger_summary_signed_bytes
from credit.metrics import EVALUATION_SENSITIVITY
from credit.schema import DatasetSchema
from participant.guard.privacy_guard import PrivacyGuard, TrainingRequest
from privacy.accounting import epsilon_by_rows
from privacy.budget import PrivacyBudget, default_delta
from privacy.errors import PrivacyBudgetExceeded, RunPlanChanged

N_TRAIN = 4_000
GOVERNANCE_SENSITIVITY = governance_sensitivity(4)


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


@pytest.mark.parametrize("change", [{"batch_size": 256}, {"local_epochs": 3}, {"local_steps": 40}])
def test_changed_batch_size_or_epochs_is_refused(tmp_path: Path, change: dict[str, int]) -> None:
    guard = _guard(tmp_path / "ledger.jsonl")
    for server_round in range(1, 9):
        guard.charge_round(_request(server_round))
    before = guard.ledger.events
    with pytest.raises(PrivacyBudgetExceeded):
        guard.charge_round(_request(9, **change))
    assert guard.ledger.events == before


def test_a_plan_in_local_steps_charges_those_steps_at_any_bank_size(tmp_path: Path) -> None:
    """S steps per round whatever n (q = B/n); the plan records S, not epochs."""
    small = PrivacyGuard(
        bank="bank-1",
        budget=PrivacyBudget(max_epsilon=1.0),
        ledger_path=tmp_path / "small.jsonl",
        n_train=266,
    )
    large = _guard(tmp_path / "large.jsonl")
    for guard in (small, large):
        event = guard.charge_round(_request(1, local_steps=40))
        plan = guard.ledger.plan_for("run-1")
        assert plan is not None
        assert (event.steps, plan.steps_per_round) == (40, 40)
        assert (plan.local_steps, plan.local_epochs) == (40, 0)
        assert event.sample_rate == pytest.approx(64 / guard.n_train)
    with pytest.raises(RunPlanChanged):  # back to epochs: another mechanism
        small.charge_round(_request(2))
    assert len(small.ledger.events) == 1


def test_feature_stats_release_is_charged_and_noisy(
    tmp_path: Path, schema: DatasetSchema, write_bank_csv: Callable[..., Path]
) -> None:
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
    tmp_path: Path, schema: DatasetSchema, write_bank_csv: Callable[..., Path]
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


def test_events_name_their_run_and_rows_and_plans_their_mechanism(tmp_path: Path) -> None:
    guard = _guard(tmp_path / "ledger.jsonl")
    event = guard.charge_round(_request(1))
    assert (event.run, event.rows, event.kind) == ("run-1", "train", "dp-sgd")
    plan = guard.ledger.plan_for("run-1")
    assert plan is not None
    assert (plan.kind, plan.n_train, plan.batch_size, plan.local_epochs) == (
        "dp-sgd",
        N_TRAIN,
        64,
        1,
    )
    assert plan.sample_rate == 64 / N_TRAIN and plan.steps_per_round == 63  # ceil(4000 / 64)


def test_a_round_off_the_run_s_plan_is_refused_even_within_budget(tmp_path: Path) -> None:
    guard = _guard(tmp_path / "ledger.jsonl")
    guard.charge_round(_request(1))
    with pytest.raises(
        RunPlanChanged,
        match=r"sampling rate 0\.016, 63 steps.*asks for sampling rate 0\.008, 125 steps",
    ) as refusal:
        guard.charge_round(_request(2, batch_size=32))  # fewer rows per step: would fit
    assert refusal.value.server_round == 2
    assert [e.round for e in guard.ledger.events] == [1]


def test_evaluations_are_calibrated_once_and_charged_to_the_test_rows(tmp_path: Path) -> None:
    guard = _guard(tmp_path / "ledger.jsonl")
    for server_round in range(1, 11):
        guard.charge_round(_request(server_round))
    training = guard.ledger.epsilon
    events = [guard.charge_evaluation("run-1", r, planned_evaluations=5) for r in range(1, 6)]
    plan = guard.ledger.plan_for("run-1", "evaluation")
    # The plan holds the five announced evaluations and the run's governance release.
    assert plan is not None and plan.planned_rounds == 6 and plan.kind == "evaluation"
    assert {e.noise_multiplier for e in events} == {plan.noise_multiplier}
    assert all(
        (e.kind, e.rows, e.sample_rate, e.steps, e.max_grad_norm)
        == ("evaluation-release", "test", 1.0, 1, EVALUATION_SENSITIVITY)
        for e in events
    )
    before = guard.ledger.events
    with pytest.raises(PrivacyBudgetExceeded, match="already made its 5 planned") as refusal:
        guard.charge_evaluation("run-1", 6, planned_evaluations=5)  # the budget would allow it
    assert refusal.value.server_round == 6
    assert guard.ledger.events == before
    governance = guard.charge_governance("run-1", 5, sensitivity=GOVERNANCE_SENSITIVITY)
    assert (governance.noise_multiplier, governance.max_grad_norm, governance.rows) == (
        plan.noise_multiplier,
        GOVERNANCE_SENSITIVITY,
        "test",
    )
    spent = epsilon_by_rows(guard.ledger.events, guard.ledger.delta)
    assert spent["train"] == pytest.approx(training)  # parallel, not added
    assert 0.97 < spent["test"] <= 1.0
    before = guard.ledger.events
    with pytest.raises(PrivacyBudgetExceeded, match="already made its 1 planned"):
        guard.charge_governance("run-1", 5, sensitivity=GOVERNANCE_SENSITIVITY)
    # A restarted guard reuses the plan (the same noise), and the budget stays spent.
    with pytest.raises(PrivacyBudgetExceeded):
        _guard(tmp_path / "ledger.jsonl").charge_evaluation("run-1", 6, planned_evaluations=5)
    assert guard.ledger.events == before


def test_a_governance_release_comes_with_an_evaluation_plan(tmp_path: Path) -> None:
    guard = _guard(tmp_path / "ledger.jsonl")
    with pytest.raises(PrivacyBudgetExceeded, match="no evaluation plan"):
        guard.charge_governance("run-1", 1, sensitivity=GOVERNANCE_SENSITIVITY)
    assert guard.ledger.events == ()


def test_no_evaluation_plan_is_recorded_when_none_fits(tmp_path: Path) -> None:
    guard = _guard(tmp_path / "ledger.jsonl", max_epsilon=0.001)
    with pytest.raises(PrivacyBudgetExceeded):
        guard.charge_evaluation("run-1", 1, planned_evaluations=10)
    assert guard.ledger.events == () and guard.ledger.plans == ()


def test_the_summary_is_signed_with_the_bank_s_key(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    budget = PrivacyBudget(max_epsilon=1.0)
    guard = PrivacyGuard(
        bank="bank-1", budget=budget, ledger_path=tmp_path / "l.jsonl", n_train=N_TRAIN,
        signing_key=key,
    )  # fmt: skip
    guard.charge_round(_request(1))
    summary = guard.summary()
    assert summary.n_train == N_TRAIN and len(summary.plans) == 1 and len(summary.events) == 1
    public = key.public_key()
    assert base64.b64decode(summary.key or "") == public.public_bytes(
        Encoding.Raw, PublicFormat.Raw
    )
    payload = ledger_summary_signed_bytes({**summary.document(), "bank": "bank-1"})
    public.verify(base64.b64decode(summary.signature or ""), payload)  # raises if not
    unsigned = _guard(tmp_path / "l.jsonl").summary()
    assert unsigned.key is None and unsigned.signature is None
