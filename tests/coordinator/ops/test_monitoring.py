"""``fedcredit coordinator monitor``: which run it monitors, what it submits, what it collects.

No SuperLink runs here: a run that passes the checks meets ``require_superlink``
(exit code 1), or, where a test needs a submission, ``flwr run`` is replaced by a
stand-in that writes what the deployed ServerApp writes. The deployed monitoring run
itself is in ``tests/deployment/test_deployment_run.py`` and, over a fake grid, in
``tests/simulations/test_monitor_run.py``.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cli.app import app
from coordinator.ops import monitoring
from coordinator.ops.consortium import Consortium, ConsortiumConfig
from coordinator.ops.flower_cli import RunHandle
from coordinator.ops.launch import run_config_for
from coordinator.ops.provisioning import init_consortium
from coordinator.ops.runs import list_runs, write_launch
from credit.errors import ConfigError, OperationFailed


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def consortium(tmp_path: Path) -> Consortium:
    """A consortium whose SuperLink port nobody listens on."""
    config = ConsortiumConfig.model_validate(
        {
            "name": "nordic",
            "hosts": ["fl.example"],
            "superlink_port": _free_port(),
            "run": {"rounds": 3, "min_banks": 2},
        }
    )
    return init_consortium(tmp_path / "consortium", config)


def _training_run(
    consortium: Consortium, name: str, *, status: str | None = "completed", model: bool = True
) -> Path:
    """A launched run's folder: launch.json (its config), metrics.json with ``status``."""
    run_dir = consortium.paths.run(name)
    config = run_config_for(
        consortium, run_name=name, resume=False, overrides={"secure_aggregation": False}
    )
    submission = {"submitted_at": "2026-11-30T09:00:00Z", "flower_run_id": 40}
    write_launch(run_dir, {"run_name": name, "config": config, "submissions": [submission]})
    if status is not None:
        (run_dir / "metrics.json").write_text(json.dumps({"status": status, "config": config}))
    if model:
        (run_dir / "model").mkdir()
    return run_dir


def _one_line_error(args: list[str], expected: str, code: int = 2) -> None:
    result = CliRunner().invoke(app, ["coordinator", "monitor", *args])

    assert result.exit_code == code, result.output
    assert result.output.startswith("error: ") and result.output.count("\n") == 1, result.output
    assert expected in result.output, result.output


def test_an_unknown_run_is_named_with_the_known_ones(consortium: Consortium) -> None:
    _training_run(consortium, "q3")

    _one_line_error(
        [str(consortium.paths.root), "--run", "q4"], "--run: unknown run 'q4' (runs: q3)"
    )


@pytest.mark.parametrize(
    ("status", "model", "said"),
    [
        (None, True, "run 'q3' is not started, not finished"),
        ("failed", True, "run 'q3' is failed, not finished"),
        ("completed", False, "run 'q3' is completed, not finished"),
    ],
)
def test_an_unfinished_run_is_refused(
    consortium: Consortium, status: str | None, model: bool, said: str
) -> None:
    _training_run(consortium, "q3", status=status, model=model)

    _one_line_error([str(consortium.paths.root), "--run", "q3"], f"--run: {said}")


def test_a_monitoring_run_is_not_monitored_again(consortium: Consortium) -> None:
    development = _training_run(consortium, "q3")
    monitoring_dir = consortium.paths.run("m1")
    config = run_config_for(
        consortium,
        run_name="m1",
        resume=False,
        overrides={"monitor_run": str(development)},
        recorded=None,
    )
    write_launch(monitoring_dir, {"run_name": "m1", "config": config, "submissions": []})
    (monitoring_dir / "stability.json").write_text("{}")

    _one_line_error([str(consortium.paths.root), "--run", "m1"], "is a monitoring run (of ")


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (["--quantile", "1"], "--quantile: must lie in (0, 1); got 1.0"),
        (["--run-name", "q3"], "--run-name: run 'q3' exists"),
        (["--run-name", "../up"], "--run-name: use letters, digits"),
    ],
)
def test_bad_flags_get_one_line(consortium: Consortium, flags: list[str], said: str) -> None:
    _training_run(consortium, "q3")

    _one_line_error([str(consortium.paths.root), "--run", "q3", *flags], said)


def test_a_finished_run_meets_the_missing_superlink_and_leaves_no_folder(
    consortium: Consortium,
) -> None:
    _training_run(consortium, "q3")

    _one_line_error(
        [str(consortium.paths.root), "--run", "q3", "--run-name", "m1"], "is not running", code=1
    )
    assert not consortium.paths.run("m1").exists()


Submit = Callable[..., RunHandle]


def _server_app_writing(files: Mapping[str, str]) -> Submit:
    """A stand-in for ``flwr run``: the ServerApp writes ``files`` into its out-dir."""

    def submit(
        consortium: Consortium,
        run_dir: Path,
        config: Mapping[str, Any],
        *,
        resume: bool,
        on_line: Callable[[str], None],
    ) -> RunHandle:
        submit.config = dict(config)  # type: ignore[attr-defined]
        submission = {"submitted_at": "2026-11-30T10:00:00Z", "flower_run_id": 41}
        write_launch(
            run_dir, {"run_name": run_dir.name, "config": dict(config), "submissions": [submission]}
        )
        out = Path(config["out-dir"])
        for name, text in files.items():
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            (out / name).write_text(text)
        on_line("Successfully started run 41")
        return RunHandle(run_id=41, returncode=0, output=["ConfigError: raised in the app"])

    return submit


def _submitting(monkeypatch: pytest.MonkeyPatch, files: Mapping[str, str]) -> Submit:
    submit = _server_app_writing(files)
    monkeypatch.setattr(monitoring, "require_superlink", lambda consortium: None)
    monkeypatch.setattr(monitoring, "submit_recorded", submit)
    return submit


def test_the_run_config_is_the_development_runs_with_the_monitoring_runs_own(
    consortium: Consortium, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    development = _training_run(consortium, "q3")
    submit = _submitting(
        monkeypatch, {"stability.json": "{}", "stability.png": "png", "ledgers/bank-a.json": "{}"}
    )

    submission = monitoring.plan_monitoring(
        consortium, development="q3", run_name="m1", min_banks=3, quantile=0.95
    )
    result = monitoring.monitor_run(
        consortium, submission, out=tmp_path / "out", on_line=lambda line: None
    )

    config = submit.config  # type: ignore[attr-defined]
    recorded = json.loads((development / "launch.json").read_text())["config"]
    own = {"out-dir", "run-name", "min-banks", "monitor-run", "monitor-quantile"}
    assert {k: v for k, v in config.items() if k not in own} == {
        k: v for k, v in recorded.items() if k not in own
    }  # secure-aggregation (off) included: the development run's
    assert config["monitor-run"] == str(development)
    assert config["out-dir"] == str(consortium.paths.run("m1"))
    assert (config["run-name"], config["min-banks"], config["monitor-quantile"]) == ("m1", 3, 0.95)
    assert result.completed and result.flower_run_id == 41 and result.development == "q3"
    copied = sorted(
        str(p.relative_to(tmp_path / "out")) for p in result.out.rglob("*") if p.is_file()
    )  # type: ignore[union-attr]
    assert copied == ["launch.json", "ledgers/bank-a.json", "stability.json", "stability.png"]


def test_a_run_without_its_report_failed_and_says_why(
    consortium: Consortium, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _training_run(consortium, "q3")
    _submitting(monkeypatch, {})

    submission = monitoring.plan_monitoring(consortium, development="q3")
    result = monitoring.monitor_run(
        consortium, submission, out=tmp_path / "out", on_line=lambda line: None
    )

    assert not result.completed and result.out is None
    assert result.error == "ConfigError: raised in the app"
    assert result.run_name.startswith("monitor-")


def test_the_list_shows_a_monitoring_run_as_completed_without_rounds(
    consortium: Consortium, monkeypatch: pytest.MonkeyPatch
) -> None:
    _training_run(consortium, "q3")
    _submitting(monkeypatch, {"stability.json": "{}"})
    submission = monitoring.plan_monitoring(consortium, development="q3", run_name="m1")
    monitoring.monitor_run(consortium, submission, on_line=print)

    rows = {row.run_name: row for row in list_runs(consortium)}

    assert (rows["m1"].status, rows["m1"].rounds_done, rows["m1"].rounds_planned) == (
        "completed",
        0,
        0,
    )
    assert (rows["q3"].status, rows["q3"].rounds_planned) == ("completed", 3)


def test_superlink_down_is_an_operation_failure_checked_last(consortium: Consortium) -> None:
    _training_run(consortium, "q3")

    with pytest.raises(OperationFailed, match=r"the SuperLink of .* is not running"):
        monitoring.plan_monitoring(consortium, development="q3")
    with pytest.raises(ConfigError, match="unknown run"):
        monitoring.plan_monitoring(consortium, development="q9")
