"""``fedcredit privacy``: bad input is one line and exit 2; repair-ledger drops a torn line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from cli.app import app
from privacy.accounting import DpEvent
from privacy.budget import PrivacyBudget
from privacy.ledger import PrivacyLedger, RunPlan

BUDGET = PrivacyBudget(max_epsilon=1.0, delta=1e-5)


def _privacy(*arguments: str) -> Result:
    return CliRunner().invoke(app, ["privacy", *arguments])


def _ledger(path: Path) -> PrivacyLedger:
    """A ledger with one planned round: q = 64/6400, ceil(6400/64) = 100 steps."""
    ledger = PrivacyLedger(path, bank="bank-1", budget=BUDGET)
    plan = RunPlan(run="7", noise_multiplier=1.2, sample_rate=0.01, steps_per_round=100,
                   planned_rounds=5, max_grad_norm=1.0, n_train=6_400, batch_size=64,
                   local_epochs=1)  # fmt: skip
    ledger.charge(DpEvent(round=1, noise_multiplier=1.2, sample_rate=0.01, steps=100,
                          max_grad_norm=1.0, run="7"), plan=plan)  # fmt: skip
    return ledger


def _one_error_line(result: Result, expected: str, code: int = 2) -> None:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    assert result.stderr.splitlines() == [f"error: {expected}"]


def _run_folder(tmp_path: Path, metrics: str, ledger: str | None = None) -> Path:
    (tmp_path / "metrics.json").write_text(metrics)
    if ledger is not None:
        (tmp_path / "ledgers").mkdir()
        (tmp_path / "ledgers" / "bank-1.json").write_text(ledger)
    return tmp_path


def test_corrupt_metrics_json_is_one_error_line(tmp_path: Path) -> None:
    out = _run_folder(tmp_path, '{"privacy": ')
    result = _privacy("verify", str(out))
    assert result.exit_code == 2
    [line] = result.stderr.splitlines()
    assert line.startswith(f"error: {out}/metrics.json: unreadable metrics.json (Expecting value")


def test_corrupt_ledger_summary_file_is_one_error_line(tmp_path: Path) -> None:
    out = _run_folder(tmp_path, json.dumps({"privacy": {}}), ledger="{oops")
    result = _privacy("verify", str(out))
    assert result.exit_code == 2
    [line] = result.stderr.splitlines()
    assert line.startswith(f"error: {out}/ledgers/bank-1.json: unreadable bank-1.json")


def test_a_run_folder_and_a_ledger_file_are_one_or_the_other(tmp_path: Path) -> None:
    expected = (
        "fedcredit privacy verify: pass a run's output folder or --ledger FILE (one of the two)"
    )
    _one_error_line(_privacy("verify"), expected)
    _one_error_line(_privacy("verify", str(tmp_path), "--ledger", str(tmp_path / "x")), expected)


@pytest.mark.parametrize(
    ("option", "expected"),
    [("bank-1", "--bank-key: expected BANK=PUBFILE; got 'bank-1'"),
     ("bank-9=k.pub", "--bank-key names bank 'bank-9', which has no ledger summary in the run")],
)  # fmt: skip
def test_a_bad_bank_key_is_one_error_line(tmp_path: Path, option: str, expected: str) -> None:
    summary = {"epsilon": 0.0, "delta": 1e-5, "max_epsilon": 1.0, "accountant": "rdp",
               "n_train": 10, "events": [], "plans": []}  # fmt: skip
    out = _run_folder(tmp_path, json.dumps({"privacy": {"bank-1": summary}}))
    result = _privacy("verify", str(out), "--bank-key", option)
    assert result.exit_code == 2
    [line] = result.stderr.splitlines()
    assert expected in line


def test_a_missing_ledger_file_is_one_error_line(tmp_path: Path) -> None:
    absent = tmp_path / "absent.jsonl"
    _one_error_line(
        _privacy("verify", "--ledger", str(absent)),
        f"{absent}: cannot open the ledger (No such file or directory)",
    )


def test_a_torn_ledger_file_names_the_repair_and_repair_ledger_fixes_it(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    _ledger(path)
    whole = path.read_text()
    path.write_text(whole + '{"type": "event", "rou')

    _one_error_line(
        _privacy("verify", "--ledger", str(path)),
        f"{path}: line 4: not a ledger entry, a torn last line (no newline at its end) left "
        f"by an interrupted write; run: fedcredit privacy repair-ledger {path}",
    )
    repaired = _privacy("repair-ledger", str(path))
    assert repaired.exit_code == 0, repaired.output
    assert repaired.stdout.strip() == (
        f"{path}: dropped the torn last line 4; the original is kept in {path}.bak"
    )
    assert path.read_text() == whole
    assert _privacy("verify", "--ledger", str(path)).exit_code == 0
    _one_error_line(
        _privacy("repair-ledger", str(path)),
        f"{path}: nothing to repair: every line is complete; repair-ledger only drops a torn "
        "last line",
    )
