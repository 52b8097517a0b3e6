"""Run configs of launched and resumed runs; where results are collected."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from coordinator.ops import runs
from coordinator.ops.consortium import Consortium, ConsortiumConfig
from coordinator.ops.launch import collect_outputs, run_config_for
from coordinator.ops.provisioning import init_consortium
from coordinator.ops.runs import resolve_run, write_launch
from credit.errors import ConfigError, OperationFailed


@pytest.fixture
def consortium(tmp_path: Path) -> Consortium:
    config = ConsortiumConfig.model_validate(
        {"name": "nordic", "hosts": ["fl.example"], "run": {"rounds": 7, "min_banks": 3}}
    )
    return init_consortium(tmp_path / "consortium", config)


def test_a_new_run_takes_the_consortium_defaults_and_fixed_paths(consortium: Consortium) -> None:
    config = run_config_for(
        consortium, run_name="q3", resume=False, overrides={"rounds": None, "min_banks": 2}
    )
    assert config["num-server-rounds"] == 7  # unset flag: the consortium's default
    assert config["min-banks"] == 2  # the flag wins
    assert config["secure-aggregation"] is True
    assert config["out-dir"] == str(consortium.paths.run("q3"))
    assert config["run-name"] == "q3" and config["resume"] is False
    assert config["audit-key"] == str(consortium.paths.audit_key)
    assert config["schema"] == str(consortium.schema_path)


def test_the_evaluation_cadence_and_score_bins_are_the_operators_flags(
    consortium: Consortium,
) -> None:
    unset = run_config_for(consortium, run_name="q3", resume=False, overrides={})
    assert unset["evaluate-every"] == -1  # automatic: every round, or the last under budgets
    assert unset["score-bins"] == 100  # a bank's default cap
    config = run_config_for(
        consortium,
        run_name="q3",
        resume=False,
        overrides={"evaluate_every": 0, "score_bins": 40},
    )
    assert config["evaluate-every"] == 0 and config["score-bins"] == 40


def test_the_encoding_and_the_scorecard_scaling_are_the_operators_flags(
    consortium: Consortium,
) -> None:
    unset = run_config_for(consortium, run_name="q3", resume=False, overrides={})
    assert (unset["encoding"], unset["pdo"], unset["base-score"], unset["base-odds"]) == (
        "binned",
        20.0,
        600.0,
        50.0,
    )
    flags = {"encoding": "woe", "pdo": 40.0, "base_score": 500.0, "base_odds": None}
    config = run_config_for(consortium, run_name="q3", resume=False, overrides=flags)
    assert (config["encoding"], config["pdo"], config["base-score"], config["base-odds"]) == (
        "woe",
        40.0,
        500.0,
        50.0,
    )
    with pytest.raises(ConfigError, match=r"^fedcredit coordinator launch: '--pdo': Input should"):
        run_config_for(consortium, run_name="q3", resume=False, overrides={"pdo": 0.0})


def test_a_resumed_run_keeps_the_settings_it_started_with(consortium: Consortium) -> None:
    started = run_config_for(
        consortium,
        run_name="q3",
        resume=False,
        overrides={"rounds": 5, "secure_aggregation": False, "min_banks": 2},
    )
    resumed = run_config_for(
        consortium, run_name="q3", resume=True, overrides={"rounds": None}, recorded=started
    )
    assert resumed == {**started, "resume": True}
    longer = run_config_for(
        consortium, run_name="q3", resume=True, overrides={"rounds": 6}, recorded=started
    )
    assert longer["num-server-rounds"] == 6 and longer["secure-aggregation"] is False


def test_unknown_run_names_the_known_ones(consortium: Consortium) -> None:
    with pytest.raises(ConfigError, match=r"unknown run 'nope' \(runs: none yet\)"):
        resolve_run(consortium, "nope")


def test_outputs_are_collected_without_checkpoint_or_private_key(tmp_path: Path) -> None:
    run = tmp_path / "run"
    for name in ("metrics.json", "rounds.png", "report.html", "launch.json", "model/model.pt",
                 "ledgers/bank-a.json", "audit/coordinator.jsonl", "audit/coordinator.pub",
                 "audit/coordinator.key", "checkpoint/state.json"):  # fmt: skip
        (run / name).parent.mkdir(parents=True, exist_ok=True)
        (run / name).write_text(name)
    stale = tmp_path / "out" / "model" / "from-an-earlier-run.csv"  # would break the package
    stale.parent.mkdir(parents=True)
    stale.write_text("stale")
    out = collect_outputs(run, tmp_path / "out")
    copied = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert copied == [
        "audit/coordinator.jsonl",
        "audit/coordinator.pub",
        "launch.json",
        "ledgers/bank-a.json",
        "metrics.json",
        "model/model.pt",
        "report.html",
        "rounds.png",
    ]


class _FakeFlower:
    """``flwr ls`` and ``flwr stop`` as the SuperLink would answer them.

    ``refuse_stop``: ``flwr stop`` fails, and with ``ended`` the run has just ended on
    its own (it is no longer live when asked again)."""

    def __init__(self, statuses: dict[int, str], *, refuse_stop: bool, ended: bool) -> None:
        self.statuses = statuses
        self.refuse_stop = refuse_stop
        self.ended = ended
        self.stopped: list[int] = []

    def __call__(self, flwr_home: Path, *args: str) -> dict[str, Any]:
        if args[0] == "ls":
            return {"runs": [{"run-id": i, "status": s} for i, s in self.statuses.items()]}
        assert args[0] == "stop"
        flower_id = int(args[1])
        if self.refuse_stop:
            if self.ended:
                self.statuses[flower_id] = "finished:completed"
            raise OperationFailed("flwr stop: the run is not running")
        self.stopped.append(flower_id)
        self.statuses[flower_id] = "finished:stopped"
        return {}


def _submitted(consortium: Consortium, name: str, *flower_ids: int) -> Path:
    run_dir = consortium.paths.run(name)
    run_dir.mkdir(parents=True)
    submissions = [{"flower_run_id": i, "resume": n > 0} for n, i in enumerate(flower_ids)]
    write_launch(run_dir, {"run_name": name, "config": {}, "submissions": submissions})
    return run_dir


@pytest.fixture
def flower(monkeypatch: pytest.MonkeyPatch) -> Callable[..., _FakeFlower]:
    def install(
        statuses: dict[int, str], *, refuse_stop: bool = False, ended: bool = False
    ) -> _FakeFlower:
        fake = _FakeFlower(statuses, refuse_stop=refuse_stop, ended=ended)
        monkeypatch.setattr(runs, "run_flwr", fake)
        monkeypatch.setattr(runs, "_superlink_reachable", lambda consortium: True)
        return fake

    return install


def test_resuming_stops_the_runs_earlier_flower_runs_still_live(
    consortium: Consortium, flower: Callable[..., _FakeFlower]
) -> None:
    run_dir = _submitted(consortium, "q3", 11, 12)
    fake = flower({11: "finished:failed", 12: "running", 99: "running"})

    assert runs.stop_earlier_submissions(consortium, run_dir) == [12]
    assert fake.stopped == [12]  # not the finished one, nor another run's


def test_a_failed_stop_of_a_run_still_live_is_an_error(
    consortium: Consortium, flower: Callable[..., _FakeFlower]
) -> None:
    run_dir = _submitted(consortium, "q3", 12)
    flower({12: "running"}, refuse_stop=True)

    with pytest.raises(OperationFailed, match="not running"):
        runs.stop_earlier_submissions(consortium, run_dir)


def test_a_run_that_ended_before_its_stop_is_passed_over(
    consortium: Consortium, flower: Callable[..., _FakeFlower]
) -> None:
    run_dir = _submitted(consortium, "q3", 12)
    flower({12: "running"}, refuse_stop=True, ended=True)

    assert runs.stop_earlier_submissions(consortium, run_dir) == []
