"""Stability monitoring of a simulated consortium, in this process (the fast tier).

A 3-bank, 2-round run is the development run; its banks' own files are the later
files (no drift), or the same files with one column shifted (drift). The monitoring
run is the real ServerApp body (:class:`~coordinator.app.monitor_driver.MonitorDriver`)
and the banks' real ClientApp and guards over :class:`tests.support.fake_grid.FakeGrid`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from flwr.app import Context, RecordDict
from typer.testing import CliRunner

from cli.app import app
from coordinator.app import server_app
from coordinator.app.monitor_driver import MonitorDriver, MonitorOutcome
from coordinator.app.monitor_files import read_development
from credit.audit import load_public_key, verify_audit
from credit.governance.stability import PopulationCounts, psi_critical_value, stability_report
from credit.loading import load_bank_csv
from credit.metrics import score_bin_index
from credit.model_card import load_model
from credit.package import load_package
from credit.run_config import RunConfig
from credit.schema import load_schema
from participant.guard.in_process import guard_for
from privacy.budget import PrivacyBudget
from privacy.verify import verify_ledger
from simulations.budgets import BudgetPolicy
from simulations.engine import SimulationPlan, plan_simulation
from simulations.monitor import MonitorPlan, monitor_client_app, plan_monitor, run_monitor
from simulations.settings import PartitionSettings
from tests.support.consortium import exchanges, run_in_process
from tests.support.fake_grid import FakeGrid

DRIFTED = "LIMIT_BAL"
ROWS = 4_500
"""Rows of the development data (1,500 per bank): the fast tier's size."""


def _plan(
    config: RunConfig, frame: pd.DataFrame, folder: Path, budgets: BudgetPolicy | None = None
) -> SimulationPlan:
    data = folder / "data.csv"
    frame.iloc[:ROWS].to_csv(data, index=False)
    return plan_simulation(
        config, n_banks=3, partition=PartitionSettings(data=str(data)), budgets=budgets
    )


def _in_process(grids: list[FakeGrid] | None = None) -> object:
    """The monitoring run over a fake grid (records the grid in ``grids``)."""

    def federated_sum(plan: MonitorPlan) -> MonitorOutcome:
        config = plan.development.config
        grid = FakeGrid(
            monitor_client_app(plan),
            num_nodes=len(plan.banks),
            run_config=config.to_flower(),
            run_id=77,
            seed=config.seed,
        )
        with grid:
            outcome = MonitorDriver(
                grid,
                config,
                layout=plan.development.layout,
                model_sha256=plan.development.model_sha256,
            ).run()
        if grids is not None:
            grids.append(grid)
        return outcome

    return federated_sum


def _later_files(run: Path, folder: Path, *, drift: bool, new_records: bool = True) -> Path:
    """Each bank's later file: its development rows as applications made later (new ids;
    ``new_records`` False: the same customers again), one column shifted with ``drift``."""
    folder.mkdir()
    for file in sorted((run / "banks").glob("*.csv")):
        frame = pd.read_csv(file)
        if new_records:
            frame["ID"] = frame["ID"] + 1_000_000
        if drift:
            frame[DRIFTED] = (frame[DRIFTED] * 2.5).clip(upper=1_000_000)
        frame.to_csv(folder / file.name, index=False)
    return folder


@pytest.fixture(scope="module")
def development(tmp_path_factory: pytest.TempPathFactory, embedded_frame: pd.DataFrame) -> Path:
    out = tmp_path_factory.mktemp("development")
    config = RunConfig(rounds=2, out_dir=str(out / "run"), seed=3)
    run_in_process(_plan(config, embedded_frame, out))
    return out / "run"


def _monitor(
    development: Path, tmp: Path, *, drift: bool, secure: bool = True
) -> tuple[MonitorPlan, dict[str, object], list[FakeGrid]]:
    later = _later_files(development, tmp / "later", drift=drift)
    plan = plan_monitor(development, [later], tmp / "monitor", secure_aggregation=secure)
    grids: list[FakeGrid] = []
    result = run_monitor(plan, federated_sum=_in_process(grids))  # type: ignore[arg-type]
    assert result.path == tmp / "monitor" / "stability.json"
    assert (tmp / "monitor" / "stability.png").is_file()
    return plan, json.loads(result.path.read_text()), grids


def test_a_later_file_like_the_development_sample_is_not_flagged(
    development: Path, tmp_path: Path
) -> None:
    _, document, grids = _monitor(development, tmp_path, drift=False)

    consortium = document["consortium"]
    assert consortium["drifted"] == []
    assert consortium["secure_aggregation"] is True
    assert consortium["summed_banks"] == 3
    assert consortium["score"]["level"] == "stable"
    assert all(bank["drifted"] == [] for bank in document["banks"].values())
    assert exchanges(grids[0]) == [
        "query:join",
        "query:secagg-advertise",
        "query:stability",
        "query:secagg-consistency",
        "query:secagg-unmask",
    ]


def test_a_shifted_column_is_flagged_for_the_consortium_and_every_bank(
    development: Path, tmp_path: Path
) -> None:
    _, document, _ = _monitor(development, tmp_path, drift=True)

    consortium = document["consortium"]
    # The score may move with the characteristic (the model uses it); no other one moves.
    assert [name for name in consortium["drifted"] if name != "score"] == [DRIFTED]
    assert consortium["characteristics"][DRIFTED]["level"] == "shift"
    assert sorted(document["banks"]) == ["bank-1", "bank-2", "bank-3"]
    for bank in document["banks"].values():
        assert [name for name in bank["drifted"] if name != "score"] == [DRIFTED]
    assert document["thresholds"] == {"monitor": 0.1, "shift": 0.25}


def _pooled(plan: MonitorPlan, development: Path, later: Path) -> dict[str, float]:
    """PSI and CSI computed from the banks' pooled rows (what the federated sums must equal)."""
    model = load_model(development / "model")
    guards = [guard_for(settings) for settings in plan.banks]
    train = pd.concat([guard.bank.train for guard in guards], ignore_index=True)
    test = pd.concat([guard.bank.test for guard in guards], ignore_index=True)
    schema = load_schema()
    later_rows = pd.concat(
        [load_bank_csv(file, schema).frame for file in sorted(later.glob("*.csv"))],
        ignore_index=True,
    )
    layout = plan.development.layout
    result = {}
    dev_bins, later_bins = model.encoder.bin_indices(train), model.encoder.bin_indices(later_rows)
    for name, _ in layout.characteristics:
        size = layout.n_bins[name]
        result[name] = stability_report(
            PopulationCounts(np.bincount(dev_bins[name], minlength=size).astype(float)),
            PopulationCounts(np.bincount(later_bins[name], minlength=size).astype(float)),
        ).psi
    bins = layout.score_bins
    expected = score_bin_index(model.predict_proba(test), bins)
    actual = score_bin_index(model.predict_proba(later_rows), bins)
    result["score"] = stability_report(
        PopulationCounts(np.bincount(expected, minlength=bins).astype(float)),
        PopulationCounts(np.bincount(actual, minlength=bins).astype(float)),
    ).psi
    return result


@pytest.mark.parametrize("secure", [True, False])
def test_the_consortiums_psi_equals_the_pooled_computation(
    development: Path, tmp_path: Path, secure: bool
) -> None:
    plan, document, _ = _monitor(development, tmp_path, drift=True, secure=secure)

    pooled = _pooled(plan, development, tmp_path / "later")
    consortium = document["consortium"]
    federated = {name: entry["psi"] for name, entry in consortium["characteristics"].items()}
    federated["score"] = consortium["score"]["psi"]
    assert federated.keys() == pooled.keys()
    for name, psi in pooled.items():
        assert federated[name] == pytest.approx(psi, abs=1e-9), name
    assert consortium["secure_aggregation"] is secure


def test_a_private_monitoring_run_charges_every_ledger_and_verifies(
    tmp_path: Path, embedded_frame: pd.DataFrame
) -> None:
    run = tmp_path / "run"
    config = RunConfig(rounds=1, batch_size=256, out_dir=str(run), seed=5)
    budgets = BudgetPolicy(default=PrivacyBudget(max_epsilon=2.0))
    run_in_process(_plan(config, embedded_frame, tmp_path, budgets))
    later = _later_files(run, tmp_path / "later", drift=True)
    # The run's package stores its development counts' noise variance: the one
    # ``monitor --run`` allows for (so the bank's service and ``monitor --model`` do too).
    development = load_package(run / "model").scoring.development
    expected = read_development(run).noise
    assert development is not None and expected is not None
    stored = development.noise()
    assert stored is not None and stored.keys() == expected.keys()
    for name, variance in expected.items():
        np.testing.assert_array_equal(stored[name], variance)
        assert variance.max() > 0, name

    plan = plan_monitor(run, [later], tmp_path / "monitor")
    document = json.loads(run_monitor(plan, federated_sum=_in_process()).path.read_text())  # type: ignore[arg-type]

    assert sorted(document["privacy"]) == ["bank-1", "bank-2", "bank-3"]
    for bank in ("bank-1", "bank-2", "bank-3"):
        ledger = run / "ledgers" / f"{bank}.jsonl"
        check = verify_ledger(ledger)
        assert check.ok, check.problems
        assert {r.rows for r in check.rows if r.rdp > 0} == {"train", "test", "later"}
        summary = document["privacy"][bank]
        assert [e["kind"] for e in summary["events"]].count("stability-release") == 1
        assert (tmp_path / "monitor" / "ledgers" / f"{bank}.json").is_file()
    # The drift flag allows for the DP noise of both samples' counts (on 1,500 rows per
    # bank the noise is as large as the shift: the consortium cannot tell, the banks can).
    for entry in document["consortium"]["characteristics"].values():
        plain = psi_critical_value(entry["expected_rows"], entry["actual_rows"], entry["bins"])
        assert entry["critical_value"] > plain
    for bank in document["banks"].values():  # each bank's own comparison is exact
        assert [name for name in bank["drifted"] if name != "score"] == [DRIFTED]
    for bank in ("bank-1", "bank-2", "bank-3"):  # each bank's audit log records it, closed
        log = run / "audit" / f"{bank}.jsonl"
        verify_audit(log, load_public_key(log.with_suffix(".pub")))
        events = [json.loads(line)["event"] for line in log.read_text().splitlines()]
        assert events[-2:] == ["stability-release", "run-end"]
    result = CliRunner().invoke(
        app, ["privacy", "verify", "--ledger", str(run / "ledgers" / "bank-1.jsonl")]
    )
    assert result.exit_code == 0, result.output


def test_a_banks_own_comparison_needs_no_federated_run(development: Path, tmp_path: Path) -> None:
    later = _later_files(development, tmp_path / "later", drift=True)
    out = tmp_path / "monitor"

    result = CliRunner().invoke(
        app,
        ["monitor", "--run", str(development), "--later-data", str(later), "--out", str(out),
         "--bank", "bank-2"],
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    document = json.loads((out / "stability.json").read_text())
    assert list(document["banks"]) == ["bank-2"]
    assert document["consortium"] is None
    assert DRIFTED in document["banks"]["bank-2"]["drifted"]
    assert "LIMIT_BAL" in result.output and " shift *" in result.output
    rows = len(pd.read_csv(development / "banks" / "bank-2.csv"))  # training, validation, test
    score = document["banks"]["bank-2"]["score"]
    assert (score["expected_rows"], score["actual_rows"]) == (rows, rows)


def _run_cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["monitor", *args])
    return result.exit_code, result.output


def test_bad_later_files_get_one_line_errors(development: Path, tmp_path: Path) -> None:
    later = _later_files(development, tmp_path / "later", drift=False)
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    shutil.copy(later / "bank-1.csv", stranger / "bank-9.csv")
    broken = tmp_path / "broken"
    broken.mkdir()
    pd.read_csv(later / "bank-1.csv").drop(columns=[DRIFTED]).to_csv(
        broken / "bank-1.csv", index=False
    )
    base = ["--run", str(development), "--out", str(tmp_path / "out")]

    for args, expected in [
        (["--later-data", str(stranger)], "bank 'bank-9' (file"),
        (["--later-data", str(broken), "--no-secure-aggregation"], str(broken / "bank-1.csv")),
        (["--later-data", str(later / "bank-1.csv")], "secure aggregation needs at least 3"),
        (["--later-data", str(later), "--bank", "bank-7"], "bank 'bank-7' has no later file"),
    ]:
        code, output = _run_cli(*base, *args)
        assert code == 2, output
        assert output.startswith("error: ") and output.count("\n") == 1, output
        assert expected in output, output


# The deployed ServerApp (the FAB's ``coordinator.app.server_app:app``) runs a monitoring
# run when its run config names ``monitor-run``: here over the same banks (the plan's
# guards, each with its later file and the development model) in a fake grid.


def _deployed_run_config(development: Path, out: Path, run_name: str) -> dict[str, object]:
    """The run config ``fedcredit coordinator monitor`` submits (Flower's hyphenated form)."""
    recorded = json.loads((development / "metrics.json").read_text())["config"]
    return {**recorded, "out-dir": str(out), "run-name": run_name, "monitor-run": str(development)}


def _deploy(plan: MonitorPlan, run_config: dict[str, object]) -> FakeGrid:
    """The FAB's ServerApp over a fake grid of the plan's banks, as ``flwr run`` calls it."""
    grid = FakeGrid(
        monitor_client_app(plan), num_nodes=len(plan.banks), run_config=run_config, run_id=78
    )
    context = Context(
        run_id=78, node_id=0, node_config={}, state=RecordDict(), run_config=run_config
    )
    with grid:
        server_app.app(grid, context)
    return grid


def test_the_deployed_server_app_monitors_as_fedcredit_monitor_does(
    development: Path, tmp_path: Path
) -> None:
    plan, simulated, _ = _monitor(development, tmp_path, drift=True)
    out = tmp_path / "deployed"

    grid = _deploy(plan, _deployed_run_config(development, out, plan.development.config.run_name))

    deployed = json.loads((out / "stability.json").read_text())
    assert (out / "stability.png").is_file()
    assert exchanges(grid)[0] == "query:join" and "query:stability" in exchanges(grid)
    assert deployed["consortium"] == simulated["consortium"]  # one code path, one answer
    assert deployed["consortium"]["banks"] == ["bank-1", "bank-2", "bank-3"]
    assert deployed["consortium"]["refusals"] == []
    assert deployed["banks"] == {} and deployed["later_files"] == {}  # each bank's own
    assert deployed["run"] == str(development)
    assert deployed["model_sha256"] == simulated["model_sha256"]


def test_a_monitoring_run_of_a_model_the_banks_do_not_hold_is_refused(
    development: Path, tmp_path: Path
) -> None:
    """The coordinator names a development folder of its own making (the run's model with
    other weights): every bank counts only on the model it holds, so each refuses and
    nothing is summed or written."""
    import torch

    from coordinator.errors import RoundFailed
    from credit.model_card import save_model

    forged = tmp_path / "forged"
    forged.mkdir()
    shutil.copy(development / "metrics.json", forged / "metrics.json")
    model = load_model(development / "model")
    with torch.no_grad():
        for parameter in model.module.parameters():
            parameter.add_(0.5)
    save_model(
        forged / "model",
        model.module,
        spec=model.spec,
        encoder=model.encoder,
        schema_name=model.card["schema"]["name"],
        training=model.card["training"],
        metrics=model.card["metrics"],
    )
    later = _later_files(development, tmp_path / "later", drift=False)
    plan = plan_monitor(development, [later], tmp_path / "simulated")
    out = tmp_path / "deployed"

    with pytest.raises(RoundFailed, match="stability"):
        _deploy(plan, _deployed_run_config(forged, out, "forged-monitoring"))

    assert not (out / "stability.json").exists()
    for bank in ("bank-1", "bank-2", "bank-3"):
        lines = (development / "audit" / f"{bank}.jsonl").read_text().splitlines()
        refusal = json.loads(lines[-1])
        assert refusal["event"] == "refusal", refusal
        assert refusal["data"]["kind"] == "stability-layout", refusal
        assert "the query asks about model" in refusal["data"]["reason"]
