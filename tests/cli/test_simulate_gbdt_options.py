"""``fedcredit simulate --model gbdt``'s options: bad values and flags that do not apply
are one line naming the flag, exit code 2, before any bank is planned."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app


def _simulate(tmp_path: Path, *arguments: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["simulate", *arguments, "--out", str(tmp_path / "run")])
    assert "Traceback" not in result.stdout + result.stderr
    return result.exit_code, result.stderr.strip()


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
def test_a_boosting_value_out_of_range_names_the_flag_and_value(
    tmp_path: Path, arguments: list[str], flag: str, value: str
) -> None:
    code, error = _simulate(tmp_path, "--model", "gbdt", *arguments)
    assert code == 2
    assert len(error.splitlines()) == 1
    assert flag in error and value in error
    assert not (tmp_path / "run").exists()  # refused before anything was planned


@pytest.mark.parametrize("flag", ["--rounds", "--local-steps", "--learning-rate"])
def test_flags_of_the_sgd_models_are_refused_with_gbdt(tmp_path: Path, flag: str) -> None:
    code, error = _simulate(tmp_path, "--model", "gbdt", flag, "3")
    assert code == 2
    assert len(error.splitlines()) == 1
    assert flag in error and "gbdt" in error


def test_a_validation_part_that_boosting_would_not_use_is_refused(tmp_path: Path) -> None:
    code, error = _simulate(tmp_path, "--model", "gbdt", "--validation-fraction", "0.2")
    assert code == 2
    assert len(error.splitlines()) == 1
    assert "--validation-fraction" in error and "0.2" in error and "leave it out" in error


def test_boosting_flags_are_refused_without_gbdt(tmp_path: Path) -> None:
    code, error = _simulate(tmp_path, "--trees", "3")
    assert code == 2
    assert "--trees" in error and "--model gbdt only" in error


def test_score_refuses_an_unsigned_boosted_trees_folder_in_one_line(tmp_path: Path) -> None:
    """A folder with trees but no signed manifest (an older run's) is no package."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "xgboost.json").write_text("{}")
    data = tmp_path / "applicants.csv"
    data.write_text("x\n1\n")
    arguments = ["score", "--model", str(model), "--data", str(data)]
    result = CliRunner().invoke(app, [*arguments, "--out", str(tmp_path / "s.csv")])
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "manifest.json" in result.stderr


def test_the_boosting_summary_shows_the_held_out_auc_and_where_the_model_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cli.gbdt_options import show_boosting_summary

    document = {
        "banks": ["bank-1", "bank-2", "bank-3"],
        "trees": 3,
        "levels": [{}] * 7,
        "level_seconds": 0.5,
        "training_rows": 19_200,
        "final": {"auc": 0.7712, "ks": 0.4101},
        "final_missing": None,
    }
    (tmp_path / "metrics.json").write_text(json.dumps(document))
    show_boosting_summary(tmp_path, 12.0)
    shown = capsys.readouterr().out
    assert "0.7712" in shown and "0.4101" in shown and "19,200" in shown
    assert str(tmp_path / "model" / "xgboost.json") in shown.replace("\n", "")
    assert "(signed: fedcredit model verify, score, serve)" in shown
    assert str(tmp_path / "report.html") in shown.replace("\n", "")
    assert "report.html" not in shown[shown.index("not yet for gbdt") :]
