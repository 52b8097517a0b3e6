"""``fedcredit privacy verify``: signed summaries, independent epsilon, plans, completeness.

The output contract of issue 12: verify exits non-zero when any field of any bank's
ledger summary in ``metrics.json`` or ``ledgers/<bank>.json`` was changed after the
run (:func:`test_any_changed_summary_field_fails_verification`, on a real simulated
run). The other tests build run folders from a :class:`PrivacyGuard`'s summaries to
exercise one check each.
"""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from cli.app import app
from credit.audit import public_key_pem
from credit.governance.release import governance_sensitivity
from credit.messages.replies import LedgerSummary
from credit.run_config import RunConfig
from participant.guard.privacy_guard import PrivacyGuard, TrainingRequest
from privacy.budget import PrivacyBudget
from privacy.verify import verify_ledger, verify_run
from simulations.budgets import BudgetPolicy
from simulations.engine import plan_simulation
from simulations.settings import PartitionSettings
from tests.support.consortium import run_in_process
from tests.support.ledgers import write_ledger_before_row_sets

BANKS = ("bank-1", "bank-2")
N_TRAIN = 4_000


# -- a real simulated run ------------------------------------------------------------------


@pytest.fixture(scope="module")
def private_run(tmp_path_factory: pytest.TempPathFactory, embedded_frame: pd.DataFrame) -> Path:
    """2 banks with epsilon 1 each, 2 rounds on 1,500 rows, in this process (seconds)."""
    folder = tmp_path_factory.mktemp("private-run")
    data = folder / "rows.csv"
    embedded_frame.iloc[:1_500].to_csv(data, index=False)
    out = folder / "out"
    config = RunConfig(out_dir=str(out), rounds=2, batch_size=64, secure_aggregation=False)
    policy = BudgetPolicy(default=PrivacyBudget(max_epsilon=1.0))
    run_in_process(
        plan_simulation(
            config, n_banks=2, partition=PartitionSettings(data=str(data)), budgets=policy
        )
    )
    return out


def _outputs(run: Path, into: Path) -> Path:
    """A copy of what verify reads of ``run`` (metrics, summaries, the simulation, keys)."""
    into.mkdir()
    shutil.copy(run / "metrics.json", into)
    shutil.copy(run / "simulation.json", into)
    shutil.copytree(run / "ledgers", into / "ledgers", ignore=shutil.ignore_patterns("*.jsonl*"))
    shutil.copytree(run / "audit", into / "audit", ignore=shutil.ignore_patterns("*.key"))
    return into


def _verify(*arguments: str) -> Any:
    return CliRunner().invoke(app, ["privacy", "verify", *arguments])


def test_an_untouched_simulated_run_verifies(private_run: Path) -> None:
    result = _verify(str(private_run))
    assert result.exit_code == 0, result.output
    assert "all 4 ledger summaries verified: signed by their banks" in result.stdout
    checks = verify_run(private_run)
    assert [(c.bank, c.source) for c in checks] == [
        ("bank-1", "metrics.json"),
        ("bank-1", "ledgers/bank-1.json"),
        ("bank-2", "metrics.json"),
        ("bank-2", "ledgers/bank-2.json"),
    ]
    assert all(c.ok and 0.9 < c.reported <= 1.0 for c in checks)
    for bank in BANKS:  # the bank's own ledger file verifies too
        assert verify_ledger(private_run / "ledgers" / f"{bank}.jsonl").ok


def _changed(value: Any) -> Any:
    """Another value of the same type (a key or signature: another valid one)."""
    if isinstance(value, bool) or value is None:
        raise TypeError(value)
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value * 1.001 if value else 1e-9
    if value in ("train", "test"):
        return {"train": "test", "test": "train"}[value]
    return value + "x"


def _other_key(summary: dict[str, Any]) -> None:
    public = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    summary["key"] = base64.b64encode(public).decode()


def _other_signature(summary: dict[str, Any]) -> None:
    summary["signature"] = base64.b64encode(Ed25519PrivateKey.generate().sign(b"x")).decode()


def _set(path: tuple[str | int, ...]) -> Callable[[dict[str, Any]], None]:
    def change(summary: dict[str, Any]) -> None:
        *parents, last = path
        holder: Any = summary
        for part in parents:
            holder = holder[part]
        holder[last] = _changed(holder[last])

    return change


EVENT_FIELDS = ("round", "noise_multiplier", "sample_rate", "steps", "max_grad_norm", "kind",
                "run", "rows")  # fmt: skip
PLAN_FIELDS = ("run", "kind", "noise_multiplier", "sample_rate", "steps_per_round",
               "planned_rounds", "max_grad_norm", "n_train", "batch_size",
               "local_epochs")  # fmt: skip
TOP_FIELDS = ("epsilon", "delta", "max_epsilon", "accountant", "n_train")
CHANGES: dict[str, Callable[[dict[str, Any]], None]] = {
    **{name: _set((name,)) for name in TOP_FIELDS},
    "key": _other_key,
    "signature": _other_signature,
    "events-dropped": lambda summary: summary["events"].pop(),
    "plans-dropped": lambda summary: summary["plans"].pop(),
    **{f"events[1].{name}": _set(("events", 1, name)) for name in EVENT_FIELDS},
    **{f"plans[0].{name}": _set(("plans", 0, name)) for name in PLAN_FIELDS},
    "bank-added": lambda summary: summary.update(bank="bank-1"),
}


@pytest.mark.parametrize("where", ["metrics.json", "ledgers"])
@pytest.mark.parametrize("field", sorted(CHANGES))
def test_any_changed_summary_field_fails_verification(
    private_run: Path, tmp_path: Path, where: str, field: str
) -> None:
    """Change one field of bank-2's summary after the run: verify exits non-zero."""
    out = _outputs(private_run, tmp_path / "out")
    path = out / ("metrics.json" if where == "metrics.json" else "ledgers/bank-2.json")
    document = json.loads(path.read_text())
    summary = document["privacy"]["bank-2"] if where == "metrics.json" else document
    before = json.dumps(summary, sort_keys=True)
    CHANGES[field](summary)
    assert json.dumps(summary, sort_keys=True) != before
    path.write_text(json.dumps(document, indent=2))

    result = _verify(str(out))

    assert result.exit_code == 1, result.output
    source = "metrics.json" if where == "metrics.json" else "ledgers/bank-2.json"
    assert f"bank-2 ({source}): " in result.stdout
    assert "bank-1 (" not in result.stdout  # the untouched bank still verifies


def test_a_summary_re_signed_with_another_key_fails(private_run: Path, tmp_path: Path) -> None:
    """Whoever changes a summary cannot re-sign it: the key is pinned to OUT/audit/<bank>.pub."""
    out = _outputs(private_run, tmp_path / "out")
    path = out / "ledgers" / "bank-2.json"
    summary = LedgerSummary.from_document("bank-2", json.loads(path.read_text()))
    forged = summary.model_copy(update={"epsilon": 0.5}).signed_with(Ed25519PrivateKey.generate())
    path.write_text(json.dumps(forged.document()))
    result = _verify(str(out))
    assert result.exit_code == 1
    assert "bank-2 (ledgers/bank-2.json): signed with another key than the bank's" in result.stdout


def test_an_older_summary_put_in_place_of_the_last_fails(private_run: Path, tmp_path: Path) -> None:
    """A replayed, validly signed summary of round 1 lacks round 2: an event is missing."""
    out = _outputs(private_run, tmp_path / "out")
    metrics = json.loads((out / "metrics.json").read_text())
    metrics["rounds"].append({**metrics["rounds"][-1], "round": 3})
    (out / "metrics.json").write_text(json.dumps(metrics))
    result = _verify(str(out))
    assert result.exit_code == 1
    assert "no DP-SGD event for round(s) [3] of run 1" in result.stdout


# -- one check at a time, on summaries a guard signs -----------------------------------------


def _request(server_round: int, run: str = "run-1") -> TrainingRequest:
    return TrainingRequest(run=run, server_round=server_round, planned_rounds=5, local_epochs=1,
                           batch_size=64, max_grad_norm=1.0)  # fmt: skip


def _guard(folder: Path, key: Ed25519PrivateKey | None) -> PrivacyGuard:
    return PrivacyGuard(bank="bank-1", budget=PrivacyBudget(max_epsilon=1.0),
                        ledger_path=folder / "bank-1.jsonl", n_train=N_TRAIN,
                        signing_key=key)  # fmt: skip


def _run_folder(
    folder: Path,
    summary: LedgerSummary,
    *,
    trained: tuple[int, ...] = (1, 2),
    key: Ed25519PrivateKey | None = None,
    simulated_budget: dict[str, float] | None = None,
) -> Path:
    """A run folder with ``summary`` as bank-1's (a simulation's if ``simulated_budget``)."""
    out = folder / "out"
    (out / "ledgers").mkdir(parents=True)
    metrics = {
        "config": {"run-name": "run-1"},
        "rounds": [{"round": r, "banks": ["bank-1"]} for r in trained],
        "privacy": {"bank-1": summary.document()},
    }
    (out / "metrics.json").write_text(json.dumps(metrics))
    (out / "ledgers" / "bank-1.json").write_text(json.dumps(summary.document()))
    if simulated_budget is not None:
        simulation = {"banks": [{"name": "bank-1", "budget": simulated_budget}]}
        (out / "simulation.json").write_text(json.dumps(simulation))
        if key is not None:
            (out / "audit").mkdir()
            (out / "audit" / "bank-1.pub").write_bytes(public_key_pem(key.public_key()))
    return out


def _trained_guard(folder: Path, key: Ed25519PrivateKey | None) -> PrivacyGuard:
    guard = _guard(folder, key)
    for server_round in (1, 2):
        guard.charge_round(_request(server_round))
    return guard


def _problems(out: Path, **keys: Path) -> list[str]:
    return [problem for check in verify_run(out, bank_keys=keys) for problem in check.problems]


def test_an_unsigned_summary_fails(tmp_path: Path) -> None:
    summary = _trained_guard(tmp_path, key=None).summary()
    out = _run_folder(tmp_path, summary, simulated_budget={"max_epsilon": 1.0})
    assert _problems(out)[0].startswith("unsigned: the bank keeps no audit key")
    result = _verify(str(out))
    assert result.exit_code == 1
    assert "bank-1 (metrics.json): unsigned" in result.stdout


def test_a_deployment_s_keys_are_given_with_bank_key(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    out = _run_folder(tmp_path, _trained_guard(tmp_path, key).summary())
    assert _problems(out)[0].startswith("the bank's key is not pinned: pass --bank-key")
    public = tmp_path / "bank-1.pub"
    public.write_bytes(public_key_pem(key.public_key()))
    assert _problems(out, **{"bank-1": public}) == []
    assert _verify(str(out), "--bank-key", f"bank-1={public}").exit_code == 0
    other = tmp_path / "other.pub"
    other.write_bytes(public_key_pem(Ed25519PrivateKey.generate().public_key()))
    assert (
        _problems(out, **{"bank-1": other})[0]
        == f"signed with another key than the bank's ({other})"
    )


def _signed_edit(tmp_path: Path, edit: Callable[[dict[str, Any]], None], **run: Any) -> list[str]:
    """Problems of a summary edited *by the bank* (validly signed): the semantic checks."""
    key = Ed25519PrivateKey.generate()
    guard = _trained_guard(tmp_path, key)
    document = guard.summary().model_dump(mode="json")
    edit(document)
    summary = LedgerSummary.model_validate(document).signed_with(key)
    budget = run.pop("simulated_budget", {"max_epsilon": 1.0})
    return _problems(_run_folder(tmp_path, summary, key=key, simulated_budget=budget, **run))


def test_a_plan_whose_sampling_rate_is_not_batch_over_n_train_fails(tmp_path: Path) -> None:
    def edit(summary: dict[str, Any]) -> None:
        summary["plans"][0]["batch_size"] = 32

    problems = _signed_edit(tmp_path, edit)
    assert any("is not batch_size/n_train = 32/4000" in p for p in problems)
    assert any("steps per round, not local_epochs" in p for p in problems)


def test_a_plan_in_local_steps_verifies_and_its_steps_are_checked(tmp_path: Path) -> None:
    """A plan in steps (S per round, any n) verifies; other steps or both units fail."""
    key = Ed25519PrivateKey.generate()
    guard = _guard(tmp_path, key)
    for server_round in (1, 2):
        guard.charge_round(replace(_request(server_round), local_steps=30))
    document = guard.summary().model_dump(mode="json")
    assert document["plans"][0]["steps_per_round"] == 30
    run = _run_folder(tmp_path / "as-is", guard.summary(), key=key,
                      simulated_budget={"max_epsilon": 1.0})  # fmt: skip
    assert _problems(run) == []

    def edited(edit: Callable[[dict[str, Any]], None], name: str) -> list[str]:
        changed = json.loads(json.dumps(document))
        edit(changed)
        summary = LedgerSummary.model_validate(changed).signed_with(key)
        return _problems(_run_folder(tmp_path / name, summary, key=key,
                                     simulated_budget={"max_epsilon": 1.0}))  # fmt: skip

    more = edited(lambda d: d["plans"][0].update(local_steps=20), "fewer")
    assert "plan of run 'run-1' (dp-sgd): 30 steps per round, not local_steps = 20" in more
    both = edited(lambda d: d["plans"][0].update(local_epochs=1), "both")
    assert any("records both 1 local epochs and 30 local steps" in p for p in both)


def test_events_off_their_plan_or_without_one_fail(tmp_path: Path) -> None:
    def edit(summary: dict[str, Any]) -> None:
        summary["events"][1]["steps"] = 10
        summary["events"].append({**summary["events"][0], "run": "run-9"})

    problems = _signed_edit(tmp_path, edit)
    assert any(p.startswith("round 2 dp-sgd of run 'run-1': (noise multiplier") for p in problems)
    assert "round 1 dp-sgd of run 'run-9': no dp-sgd plan for the run" in problems


def test_two_setup_releases_in_one_run_fail(tmp_path: Path) -> None:
    release = {"round": 0, "noise_multiplier": 20.0, "sample_rate": 1.0, "steps": 1,
               "max_grad_norm": 4.0, "kind": "gaussian-release", "run": "run-1",
               "rows": "train"}  # fmt: skip

    def edit(summary: dict[str, Any]) -> None:
        summary["events"][:0] = [release, release]

    problems = _signed_edit(tmp_path, edit)
    assert "run 'run-1' made 2 set-up releases (gaussian-release); a run makes one" in problems


def _governance_problems(
    folder: Path, edit: Callable[[list[dict[str, Any]]], None] = lambda events: None
) -> list[str]:
    """Problems of a ledger with two rounds, an evaluation and a governance release of
    two protected columns (``edit`` changes its events, validly signed)."""
    key = Ed25519PrivateKey.generate()
    guard = _trained_guard(folder, key)
    guard.charge_evaluation("run-1", 2, planned_evaluations=1)
    guard.charge_governance("run-1", 2, sensitivity=governance_sensitivity(2))
    document = guard.summary().model_dump(mode="json")
    edit(document["events"])
    summary = LedgerSummary.model_validate(document).signed_with(key)
    return _problems(_run_folder(folder, summary, key=key, simulated_budget={"max_epsilon": 1.0}))


def test_a_governance_release_verifies_at_its_own_sensitivity_once_per_run(
    tmp_path: Path,
) -> None:
    def twice(events: list[dict[str, Any]]) -> None:
        events.append(dict(events[-1]))

    def off_its_sensitivity(events: list[dict[str, Any]]) -> None:
        events[-1]["max_grad_norm"] = 3.0  # no number of protected columns gives it

    assert _governance_problems(tmp_path / "clean") == []
    assert "run 'run-1' made 2 governance releases (calibration and fairness sums); a run " \
        "makes one" in _governance_problems(tmp_path / "twice", twice)  # fmt: skip
    problems = _governance_problems(tmp_path / "off", off_its_sensitivity)  # both summaries
    assert problems and all(
        p.startswith("round 2 evaluation-release of run 'run-1': (noise multiplier")
        for p in problems
    )


def test_a_delta_above_the_declared_one_fails(tmp_path: Path) -> None:
    problems = _signed_edit(
        tmp_path, lambda summary: None, simulated_budget={"max_epsilon": 1.0, "delta": 1e-6}
    )
    assert any(p.startswith("delta 2.5e-05 > the declared 1e-06") for p in problems)
    assert any(p.startswith("reported epsilon") for p in _signed_edit(
        tmp_path / "b", lambda summary: summary.update(epsilon=0.5)
    ))  # fmt: skip


def test_a_round_the_bank_trained_in_without_its_event_fails(tmp_path: Path) -> None:
    problems = _signed_edit(tmp_path, lambda summary: None, trained=(1, 2, 3))
    assert problems == 2 * [  # metrics.json's and ledgers/bank-1.json's copy
        "no DP-SGD event for round(s) [3] of run run-1, in which metrics.json says the bank "
        "trained (an older summary?)"
    ]


def test_a_ledger_file_with_a_plan_from_before_issue_12_is_reported(tmp_path: Path) -> None:
    path = write_ledger_before_row_sets(tmp_path / "ledger.jsonl")
    check = verify_ledger(path)
    assert not check.ok and check.agrees and check.within_budget
    assert any("q and steps cannot be checked" in p for p in check.problems)
    assert "round 1 dp-sgd of run '': no dp-sgd plan for the run" in check.problems
    result = _verify("--ledger", str(path))
    assert result.exit_code == 1
    assert f"bank-1 ({path}): " in result.stdout


def test_a_new_simulation_in_the_same_folder_starts_new_bank_keys(
    private_run: Path, tmp_path: Path
) -> None:
    """The banks are new: their ledgers, audit logs and keys go; so does the coordinator's
    log (a new simulation's coordinator has a new key, outside the folder)."""
    out = tmp_path / "out"
    shutil.copytree(private_run, out)
    before = sorted(path.name for path in (out / "audit").iterdir())
    assert {f"{bank}.{suffix}" for bank in BANKS for suffix in ("jsonl", "key", "pub")} <= set(
        before
    )
    config = RunConfig(out_dir=str(out), rounds=2, batch_size=64, secure_aggregation=False)
    data = PartitionSettings(data=str(private_run.parent / "rows.csv"))
    plan = plan_simulation(config, n_banks=2, partition=data, budgets=BudgetPolicy(
        default=PrivacyBudget(max_epsilon=1.0)))  # fmt: skip
    assert sorted(path.name for path in (out / "audit").iterdir()) == ["coordinator.pub"]
    assert not list((out / "ledgers").glob("*.jsonl"))
    assert [bank.audit_log for bank in plan.banks] == [out / "audit" / f"{b}.jsonl" for b in BANKS]
