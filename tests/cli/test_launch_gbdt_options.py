"""``fedcredit coordinator launch --model gbdt``: the boosting flags reach the run config,
bad values and flags that do not apply are one line naming the flag (exit 2, before the
SuperLink is asked), a boosting run is not resumed, and the end-of-run report counts
trees and says where the model is."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from cli.app import app
from cli.coordinator import _report_launch
from coordinator.ops.consortium import Consortium, ConsortiumConfig
from coordinator.ops.launch import LaunchResult, run_config_for
from coordinator.ops.provisioning import init_consortium
from coordinator.ops.runs import BOOSTING_CHECKPOINT, list_runs, write_launch


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _consortium(folder: Path, run: dict[str, object] | None = None) -> Consortium:
    """A consortium folder whose SuperLink port nobody listens on."""
    config = ConsortiumConfig.model_validate(
        {"name": "nordic", "hosts": ["fl.x"], "superlink_port": _free_port(), "run": run or {}}
    )
    return init_consortium(folder / "consortium", config)


@pytest.fixture(scope="module")
def consortium(tmp_path_factory: pytest.TempPathFactory) -> Consortium:
    return _consortium(tmp_path_factory.mktemp("launch"))


def _launch(consortium: Consortium, *arguments: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        app, ["coordinator", "launch", str(consortium.paths.root), *arguments]
    )
    assert "Traceback" not in result.stdout + result.stderr
    return result.exit_code, result.stderr.strip()


def test_the_boosting_flags_reach_the_run_config(consortium: Consortium) -> None:
    overrides = {"model": "gbdt", "trees": 2, "max_depth": 2, "tree_learning_rate": 0.3}
    overrides |= {"reg_lambda": 2.0, "gamma": 0.1, "min_child_weight": 0.5}
    overrides |= {"subsample": 0.8, "colsample": 0.7, "max_bins": 64}
    config = run_config_for(consortium, run_name="t", resume=False, overrides=overrides)
    assert config["model"] == "gbdt"
    chosen = {key: config[key] for key in ("trees", "max-depth", "tree-learning-rate")}
    assert chosen == {"trees": 2, "max-depth": 2, "tree-learning-rate": 0.3}
    assert (config["reg-lambda"], config["gamma"], config["min-child-weight"]) == (2.0, 0.1, 0.5)
    assert (config["subsample"], config["colsample"], config["max-bins"]) == (0.8, 0.7, 64)
    # Unlike simulate's, a deployed bank's split is fixed (`participant start
    # --validation-fraction`, 0.2 by default): a run asking another fraction is refused.
    assert config["validation-fraction"] == 0.2


@pytest.mark.parametrize(
    ("arguments", "flag", "value"),
    [
        (["--trees", "0"], "--trees", "0"),
        (["--max-depth", "13"], "--max-depth", "13"),
        (["--tree-learning-rate", "1.5"], "--tree-learning-rate", "1.5"),
        (["--subsample", "0"], "--subsample", "0"),
        (["--max-bins", "300"], "--max-bins", "300"),
        (["--reg-lambda", "-1"], "--reg-lambda", "-1"),
    ],
)
def test_a_boosting_value_out_of_range_names_the_flag_before_the_superlink_is_asked(
    consortium: Consortium, arguments: list[str], flag: str, value: str
) -> None:
    code, error = _launch(consortium, "--model", "gbdt", *arguments)
    assert code == 2
    assert len(error.splitlines()) == 1
    assert flag in error and value in error
    assert not list(consortium.paths.run("x").parent.glob("*"))  # no run folder was made


def test_valid_boosting_flags_pass_to_the_superlink_check(consortium: Consortium) -> None:
    code, error = _launch(consortium, "--model", "gbdt", "--trees", "2", "--max-depth", "2")
    assert code == 1  # no SuperLink listens: the flags were accepted
    assert "SuperLink" in error


@pytest.mark.parametrize(
    ("flag", "value"), [("--rounds", "3"), ("--evaluate-every", "1"), ("--encoding", "woe")]
)
def test_flags_of_the_sgd_models_are_refused_with_gbdt(
    consortium: Consortium, flag: str, value: str
) -> None:
    code, error = _launch(consortium, "--model", "gbdt", flag, value)
    assert code == 2
    assert len(error.splitlines()) == 1
    assert flag in error and "gbdt" in error


def test_boosting_flags_are_refused_without_gbdt(consortium: Consortium) -> None:
    code, error = _launch(consortium, "--trees", "3")
    assert code == 2
    assert len(error.splitlines()) == 1
    assert "--trees" in error and "--model gbdt only" in error


def test_a_consortium_whose_runs_default_to_gbdt_takes_the_boosting_flags(
    tmp_path: Path,
) -> None:
    boosting = _consortium(tmp_path, {"model": "gbdt"})
    code, error = _launch(boosting, "--trees", "0")  # no --model: the consortium's
    assert code == 2 and "--trees" in error
    code, error = _launch(boosting, "--rounds", "3")
    assert code == 2 and "--rounds" in error and "gbdt" in error
    config = run_config_for(boosting, run_name="t", resume=False, overrides={"trees": 5})
    assert (config["model"], config["trees"]) == ("gbdt", 5)


def _recorded_run(consortium: Consortium, name: str, model: str) -> Path:
    config = run_config_for(consortium, run_name=name, resume=False, overrides={"model": model})
    run_dir = consortium.paths.run(name)
    run_dir.mkdir(parents=True)
    write_launch(run_dir, {"run_name": name, "config": config, "submissions": []})
    return run_dir


def test_resuming_a_boosting_run_is_refused_in_one_line(tmp_path: Path) -> None:
    consortium = _consortium(tmp_path)
    run_dir = _recorded_run(consortium, "trees-1", "gbdt")
    (run_dir / BOOSTING_CHECKPOINT).write_text(json.dumps({"trees": [{}]}))
    code, error = _launch(consortium, "--resume", "trees-1")
    assert code == 2
    assert len(error.splitlines()) == 1
    assert "--resume" in error and "boosting run" in error and "afresh" in error
    assert str(run_dir / BOOSTING_CHECKPOINT) in error.replace("\n", "")


def test_a_resumed_run_keeps_its_model(tmp_path: Path) -> None:
    consortium = _consortium(tmp_path)
    _recorded_run(consortium, "sgd-1", "logreg")
    code, error = _launch(consortium, "--resume", "sgd-1", "--model", "gbdt")
    assert code == 2
    assert len(error.splitlines()) == 1
    assert "--model" in error and "keeps its model (logreg)" in error


def _boosting_outputs(run_dir: Path, trees: int) -> None:
    (run_dir / "model").mkdir(parents=True)
    document = {
        "status": "completed",
        "model": "gbdt",
        "banks": ["bank-a", "bank-b"],
        "trees": trees,
        "levels": [{}] * (2 * trees),
        "level_seconds": 0.25,
        "training_rows": 4_000,
        "final": {"auc": 0.7345, "ks": 0.3812},
        "final_missing": None,
    }
    (run_dir / "metrics.json").write_text(json.dumps(document), encoding="utf-8")


def test_the_end_of_run_report_of_a_boosting_run_counts_trees(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir, out = tmp_path / "runs" / "b1", tmp_path / "results"
    _boosting_outputs(run_dir, trees=2)
    _boosting_outputs(out, trees=2)
    result = LaunchResult(
        run_name="b1", flower_run_id=9, completed=True, rounds_done=2, rounds_planned=2,
        run_dir=run_dir, out=out, status="completed", unit="trees",
    )  # fmt: skip
    _report_launch(result, tmp_path, seconds=30.0)
    said = capsys.readouterr().out.replace("\n", "")
    assert "run b1 (Flower run 9): completed, 2/2 trees" in said
    assert re.search(r"\d+/\d+ rounds", said) is None
    assert "0.7345" in said and "0.3812" in said and "4,000" in said
    assert str(out / "model" / "xgboost.json") in said
    assert str(out / "model" / "model_card.json") in said
    assert str(run_dir / BOOSTING_CHECKPOINT) in said


def test_a_failed_boosting_run_says_where_its_trees_are_and_not_to_resume(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "runs" / "b2"
    result = LaunchResult(
        run_name="b2", flower_run_id=10, completed=False, rounds_done=1, rounds_planned=3,
        run_dir=run_dir, out=None, status="failed", unit="trees",
        error="BankRefused: bank-b refused the level",
    )  # fmt: skip
    with pytest.raises(typer.Exit) as exit_info:
        _report_launch(result, tmp_path)
    assert exit_info.value.exit_code == 1
    said = capsys.readouterr().out.replace("\n", "")
    assert "failed, 1/3 trees" in said
    assert str(run_dir / BOOSTING_CHECKPOINT) in said and "afresh" in said
    assert "--resume" not in said


def test_list_counts_a_boosting_runs_trees(tmp_path: Path) -> None:
    consortium = _consortium(tmp_path)
    finished = _recorded_run(consortium, "b3", "gbdt")
    _boosting_outputs(finished, trees=100)
    broken = _recorded_run(consortium, "b4", "gbdt")
    (broken / BOOSTING_CHECKPOINT).write_text(json.dumps({"trees": [{}, {}]}))
    rows = {row.run_name: row for row in list_runs(consortium)}
    assert (rows["b3"].status, rows["b3"].rounds_done, rows["b3"].rounds_planned) == (
        "completed",
        100,
        100,
    )
    assert (rows["b4"].status, rows["b4"].rounds_done, rows["b4"].unit) == (
        "interrupted",
        2,
        "trees",
    )


def test_the_checkpoint_name_is_the_runtimes() -> None:
    from coordinator.app.boosting_checkpoint import CHECKPOINT_FILE

    assert BOOSTING_CHECKPOINT == CHECKPOINT_FILE
