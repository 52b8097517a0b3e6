"""The CLI's end lines of a run whose kept model has no final evaluation say why."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli.coordinator import _report_launch
from cli.simulate import _show_summary
from coordinator.ops.launch import LaunchResult

WHY = "the evaluation of round 3's model on the held-out rows failed (its secure sum aborted)"


def _metrics(folder: Path, final_missing: str | None) -> Path:
    path = folder / "metrics.json"
    document = {
        "final": {},
        "final_missing": final_missing,
        "participants": {"bank-1": {"n_train": 120}},
        "selection": None,
    }
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


@pytest.mark.parametrize("missing", [WHY, None])
def test_simulate_says_why_the_final_evaluation_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], missing: str | None
) -> None:
    _show_summary(_metrics(tmp_path, missing), seconds=1.0)
    said = capsys.readouterr().out
    assert (f"final evaluation missing: {WHY}" in said) == (missing is not None)


@pytest.mark.parametrize("missing", [WHY, None])
def test_launch_says_why_the_final_evaluation_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], missing: str | None
) -> None:
    _metrics(tmp_path, missing)
    result = LaunchResult(
        run_name="q3", flower_run_id=7, completed=True, rounds_done=3, rounds_planned=3,
        run_dir=tmp_path, out=None, status="completed",
    )  # fmt: skip
    _report_launch(result, tmp_path)
    said = capsys.readouterr().out
    assert said.startswith("run q3 (Flower run 7): completed, 3/3 rounds")
    assert (f"final evaluation missing: {WHY}" in said) == (missing is not None)
