"""The bank-side ledger: persisted, locked, recomputed, refuses before it records."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from privacy.accounting import DpEvent, epsilon_spent
from privacy.budget import PrivacyBudget
from privacy.errors import LedgerError, PrivacyBudgetExceeded, SplitChanged, TornLedger
from privacy.ledger import PrivacyLedger, RunPlan, read_ledger, read_spent, repair_ledger

if TYPE_CHECKING:
    from multiprocessing.queues import Queue
    from multiprocessing.synchronize import Barrier
from tests.support.ledgers import write_ledger_before_row_sets

BUDGET = PrivacyBudget(max_epsilon=1.0, delta=1e-5)


def _event(round_: int, sigma: float = 1.2, **fields: object) -> DpEvent:
    return DpEvent(round=round_, noise_multiplier=sigma, sample_rate=0.01, steps=100,
                   max_grad_norm=1.0, run="7", **fields)  # type: ignore[arg-type]  # fmt: skip


def _plan(run: str = "7", **fields: object) -> RunPlan:
    values: dict[str, object] = {
        "run": run, "noise_multiplier": 1.3, "sample_rate": 0.01, "steps_per_round": 100,
        "planned_rounds": 10, "max_grad_norm": 1.0, "n_train": 6_400, "batch_size": 64,
        "local_epochs": 1,
    }  # fmt: skip
    values.update(fields)
    return RunPlan(**values)  # type: ignore[arg-type]


def _ledger(path: Path) -> PrivacyLedger:
    return PrivacyLedger(path, bank="bank-1", budget=BUDGET)


def test_spend_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    ledger = _ledger(path)
    ledger.charge(_event(1))
    ledger.charge(_event(2))
    reopened = _ledger(path)
    assert reopened.events == ledger.events
    assert reopened.epsilon == pytest.approx(epsilon_spent([_event(1), _event(2)], 1e-5))
    assert read_spent(path) == pytest.approx(reopened.epsilon)


def test_over_budget_event_is_refused_and_not_recorded(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    ledger = _ledger(path)
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
    assert len(_ledger(path).events) == charged


def test_test_row_releases_have_their_own_budget(tmp_path: Path) -> None:
    """Parallel composition: spending the training rows' budget leaves the test rows'."""
    ledger = _ledger(tmp_path / "ledger.jsonl")
    with pytest.raises(PrivacyBudgetExceeded):
        for round_ in range(1, 100):
            ledger.charge(_event(round_, sigma=2.0))
    train_epsilon = ledger.epsilon
    evaluation = DpEvent(round=1, noise_multiplier=5.0, sample_rate=1.0, steps=1,
                         max_grad_norm=3**0.5, kind="evaluation-release", run="7",
                         rows="test")  # fmt: skip
    ledger.charge(evaluation)
    assert ledger.epsilon == pytest.approx(train_epsilon)
    assert ledger.events[-1] == evaluation


def test_plans_are_persisted_once_per_run_and_kind(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    plan = _plan()
    evaluation = _plan(kind="evaluation", sample_rate=1.0, steps_per_round=1, batch_size=0,
                       local_epochs=0, max_grad_norm=3**0.5)  # fmt: skip
    ledger = _ledger(path)
    ledger.record_plan(plan)
    ledger.record_plan(evaluation)
    reopened = _ledger(path)
    assert reopened.plan_for("7") == plan
    assert reopened.plan_for("7", "evaluation") == evaluation
    assert reopened.plans == (plan, evaluation)
    with pytest.raises(LedgerError, match="already has a plan"):
        ledger.record_plan(plan)


def test_a_plan_written_by_another_process_since_is_seen(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    first, second = _ledger(path), _ledger(path)
    first.record_plan(_plan())
    with pytest.raises(LedgerError, match="already has a plan"):
        second.record_plan(_plan(noise_multiplier=2.0))
    assert [p.noise_multiplier for p in read_ledger(path).plans] == [1.3]


def test_charge_with_a_plan_writes_both_or_neither(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    ledger = _ledger(path)
    ledger.charge(_event(1), plan=_plan())
    assert ledger.plan_for("7") == _plan()
    before = path.read_text()
    with pytest.raises(LedgerError, match="already has a plan"):
        ledger.charge(_event(2), plan=_plan())
    with pytest.raises(PrivacyBudgetExceeded):
        ledger.charge(_event(2, sigma=0.3), plan=_plan(run="8"))
    assert path.read_text() == before


def test_a_run_makes_one_setup_release(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path / "ledger.jsonl")
    release = DpEvent(round=0, noise_multiplier=20.0, sample_rate=1.0, steps=1,
                      max_grad_norm=4.0, kind="gaussian-release", run="7")  # fmt: skip
    ledger.charge(release)
    with pytest.raises(LedgerError, match="already made its set-up release"):
        ledger.charge(release)
    ledger.charge(DpEvent(**{**release.__dict__, "run": "8"}))
    assert len(ledger.events) == 2


def test_split_is_bound_at_first_use_and_never_changes(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    ledger = _ledger(path)
    ledger.bind_split("a" * 64, 0.2)
    ledger.bind_split("a" * 64, 0.2)  # the same split: nothing new written
    assert sum('"split"' in line for line in path.read_text().splitlines()) == 1
    reopened = _ledger(path)
    assert reopened.split is not None and reopened.split.digest == "a" * 64
    with pytest.raises(SplitChanged, match=f"{'a' * 64}.*{'b' * 64}.*new ledger") as changed:
        reopened.bind_split("b" * 64, 0.2)
    assert changed.value.recorded.startswith("a" * 64)
    with pytest.raises(SplitChanged):
        reopened.bind_split("a" * 64, 0.3)


def test_budget_cannot_be_raised_by_restarting(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    _ledger(path).charge(_event(1))
    with pytest.raises(LedgerError, match="cannot change"):
        PrivacyLedger(path, bank="bank-1", budget=PrivacyBudget(max_epsilon=8.0, delta=1e-5))


def test_ledger_of_another_bank_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    _ledger(path)
    with pytest.raises(LedgerError, match="belongs to bank 'bank-1'"):
        PrivacyLedger(path, bank="bank-2", budget=BUDGET)


def test_corrupt_ledger_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    path.write_text("{not json\n")
    with pytest.raises(LedgerError, match="line 1: not a ledger entry"):
        _ledger(path)


def test_empty_ledger_file_is_refused_not_restarted(tmp_path: Path) -> None:
    """A ledger file that exists is never re-created: an emptied one would reset the spend."""
    path = tmp_path / "ledger.jsonl"
    path.write_text("")
    with pytest.raises(LedgerError, match="empty"):
        _ledger(path)
    assert path.read_text() == ""


def test_a_ledger_written_before_runs_and_rows_were_recorded_loads(tmp_path: Path) -> None:
    path = write_ledger_before_row_sets(tmp_path / "ledger.jsonl")
    ledger = _ledger(path)
    assert ledger.events[0].run == "" and ledger.events[0].rows == "train"
    plan = ledger.plan_for("7")
    assert plan is not None and (plan.n_train, plan.batch_size, plan.local_epochs) == (0, 0, 0)


def _torn_ledger(path: Path, tail: str) -> str:
    ledger = _ledger(path)
    ledger.charge(_event(1))
    whole = path.read_text()
    path.write_text(whole + tail)
    return whole


@pytest.mark.parametrize(
    "tail",
    ['{"type": "event", "round": 2, "noise_mu', '{"type": "event", "round": 2, "noise_mu\n'],
    ids=["no-newline", "unparsable"],
)
def test_torn_last_line_is_one_error_with_the_repair_command(tmp_path: Path, tail: str) -> None:
    path = tmp_path / "ledger.jsonl"
    _torn_ledger(path, tail)
    with pytest.raises(TornLedger) as torn:
        _ledger(path)
    message = str(torn.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: line 3: not a ledger entry, a torn last line (")
    assert message.endswith(f"run: fedcredit privacy repair-ledger {path}")
    with pytest.raises(TornLedger):
        read_spent(path)


def test_a_bad_line_before_the_last_is_not_called_torn(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    whole = _torn_ledger(path, "")
    lines = whole.splitlines()
    path.write_text("\n".join([lines[0], "{oops", *lines[1:]]) + "\n")
    with pytest.raises(LedgerError, match="line 2: not a ledger entry") as bad:
        _ledger(path)
    assert not isinstance(bad.value, TornLedger)
    before = path.read_bytes()
    with pytest.raises(LedgerError, match=r"line 2: not a ledger entry.*only drops a torn last"):
        repair_ledger(path)
    assert path.read_bytes() == before
    assert not (tmp_path / "ledger.jsonl.bak").exists()


def test_repair_drops_only_the_torn_last_line_and_keeps_a_backup(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    whole = _torn_ledger(path, '{"type": "event", "round"')
    torn = path.read_bytes()
    result = repair_ledger(path)
    assert (result.line, result.dropped) == (3, True)
    assert result.backup == tmp_path / "ledger.jsonl.bak"
    assert result.backup.read_bytes() == torn
    assert path.read_text() == whole
    assert _ledger(path).events == (_event(1),)
    with pytest.raises(LedgerError, match="nothing to repair"):
        repair_ledger(path)


def test_repair_keeps_a_whole_entry_that_only_lacks_its_newline(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    event = json.dumps({"type": "event", **_event(2).__dict__}, sort_keys=True)
    _torn_ledger(path, event)
    result = repair_ledger(path)
    assert not result.dropped
    assert _ledger(path).events == (_event(1), _event(2))


def test_repair_refuses_to_overwrite_an_earlier_backup(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    _torn_ledger(path, "{")
    (tmp_path / "ledger.jsonl.bak").write_text("earlier")
    before = path.read_bytes()
    with pytest.raises(LedgerError, match=r"ledger.jsonl.bak already exists"):
        repair_ledger(path)
    assert path.read_bytes() == before


def test_summary_has_the_published_fields(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path / "l.jsonl")
    ledger.charge(_event(1), plan=_plan())
    summary = ledger.summary()
    assert set(summary) == {"epsilon", "delta", "max_epsilon", "accountant", "events", "plans"}
    assert set(summary["events"][0]) == {"round", "noise_multiplier", "sample_rate", "steps",
                                         "max_grad_norm", "kind", "run", "rows"}  # fmt: skip
    assert summary["plans"][0]["batch_size"] == 64


# -- two processes, one ledger ------------------------------------------------------------
#
# Both scenarios run in one pair of real processes (starting a process imports torch
# through Opacus: seconds each). In each, both processes open the ledger first and
# only then charge, so a ledger that checks against what it read at open (the code
# before issue 12) lets both spend the same remaining budget.

SCENARIOS = {"one-each": (1.1, 1), "repeatedly": (2.0, 40)}
"""Scenario -> (noise multiplier of each event, events each process tries to charge)."""


def _charge_after_both_opened(folder: str, barrier: Barrier, results: Queue[object]) -> None:
    """Per scenario: open its ledger, wait for the other process, then charge."""
    charged: dict[str, int] = {}
    for name, (sigma, times) in SCENARIOS.items():
        ledger = PrivacyLedger(Path(folder) / f"{name}.jsonl", bank="bank-1", budget=BUDGET)
        barrier.wait(timeout=60)
        charged[name] = 0
        for round_ in range(1, times + 1):
            event = DpEvent(round=round_, noise_multiplier=sigma, sample_rate=0.01, steps=100,
                            max_grad_norm=1.0)  # fmt: skip
            try:
                ledger.charge(event)
            except PrivacyBudgetExceeded:
                continue
            charged[name] += 1
    results.put(charged)


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, list[int]]]:
    """Run the scenarios in two real processes; the folder and each one's charge counts."""
    folder = tmp_path_factory.mktemp("two-processes")
    for name in SCENARIOS:
        PrivacyLedger(folder / f"{name}.jsonl", bank="bank-1", budget=BUDGET)
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(2), context.Queue()
    processes = [
        context.Process(target=_charge_after_both_opened, args=(str(folder), barrier, results))
        for _ in range(2)
    ]
    for process in processes:
        process.start()
    try:
        counts = [results.get(timeout=180) for _ in processes]
    finally:
        for process in processes:
            process.join(timeout=30)
    assert [process.exitcode for process in processes] == [0, 0]
    return folder, {name: [count[name] for count in counts] for name in SCENARIOS}


def test_two_processes_opened_together_cannot_both_spend_the_rest(
    two_processes: tuple[Path, dict[str, list[int]]],
) -> None:
    """Each process charges one event that fits the budget alone but not twice."""
    folder, charged = two_processes
    sigma, _ = SCENARIOS["one-each"]
    one = epsilon_spent([_event(1, sigma=sigma)], 1e-5)
    two = epsilon_spent([_event(1, sigma=sigma), _event(2, sigma=sigma)], 1e-5)
    assert one <= 1.0 < two
    assert sorted(charged["one-each"]) == [0, 1]
    assert read_spent(folder / "one-each.jsonl") <= BUDGET.max_epsilon


def test_two_processes_charging_repeatedly_never_overspend(
    two_processes: tuple[Path, dict[str, list[int]]],
) -> None:
    folder, charged = two_processes
    path = folder / "repeatedly.jsonl"
    contents = read_ledger(path)
    assert len(contents.events) == sum(charged["repeatedly"]) > 0
    assert epsilon_spent(contents.events, contents.delta) <= BUDGET.max_epsilon
    # The budget was filled: one more event of the kind would pass it.
    sigma, _ = SCENARIOS["repeatedly"]
    assert epsilon_spent([*contents.events, _event(99, sigma=sigma)], 1e-5) > 1.0
    assert path.read_text().count('"budget"') == 1
