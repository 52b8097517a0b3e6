"""Checks shared by a Simulation Engine (Ray) test and its in-process equivalent.

The fast tier runs whole consortia in this process (:mod:`tests.support.consortium`);
the ``slow`` tier runs the same plans through Flower's Simulation Engine. Both tiers
must assert the same things about a run, so each block of assertions lives here once,
as a function of the run's output folder (``RunConfig.out_dir``) or its metrics
document, plus whatever the two tiers set differently on purpose (the number of
rounds, a tolerance); each caller says why it picks its value.

``tests/conftest.py`` registers this module for pytest's assertion rewriting, so a
failing check reports its values as an assertion in a test module would.

Pairs of callers:

- ``tests/simulations/test_engine.py`` and ``test_inprocess_consortium.py``: the
  2-bank, 2-round run (metrics, model reload, coordinator audit log).
- ``tests/simulations/test_private_engine.py``, ``test_inprocess_consortium.py`` and
  ``tests/coordinator/app/test_run_driver.py``: DP-SGD runs (budget kept and verified,
  rounds past the plan refused, a bank without budget skipped).
- ``tests/simulations/test_secure_engine.py`` and ``test_inprocess_consortium.py``:
  5 banks with simulated dropouts, secure aggregation against plain FedAvg.
- ``tests/simulations/test_resume.py`` and ``tests/coordinator/app/test_run_driver.py``:
  a run stopped after round 2 and resumed.
- ``tests/simulations/test_cross_validation_engine.py`` and
  ``tests/simulations/test_cross_validation.py``: ``fedcredit simulate --folds 3``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from credit.audit import arrays_sha256, fingerprint, load_public_key, verify_audit
from credit.loading import load_bank_csv
from credit.metrics import EVALUATION_SENSITIVITY
from credit.model_card import load_model
from credit.package import load_package
from credit.run_config import RunConfig
from credit.schema import DatasetSchema
from participant.node.provenance import check_received, package_model_sha256
from privacy.verify import verify_run
from tests.support.audit import assert_audit_log_of_resumed_run

__all__ = [
    "MetricsDocument",
    "check_a_bank_without_budget_left_is_skipped",
    "check_audit_log_of_two_bank_run",
    "check_checkpoint_completed_round",
    "check_cross_validation_output",
    "check_dropouts_happen_and_every_round_completes",
    "check_private_run_spends_at_most_the_budget_and_verifies",
    "check_resumed_run_equals_the_uninterrupted_run",
    "check_rounds_past_the_plan_are_refused",
    "check_same_banks_give_the_same_update_up_to_quantization",
    "check_saved_model_scores_like_the_run",
    "check_secure_aggregation_matches_plain_fedavg",
    "check_two_bank_run_metrics",
]

MetricsDocument = dict[str, Any]
"""A run's ``OUT/metrics.json``, parsed."""


def _metrics(out: Path) -> MetricsDocument:
    document: MetricsDocument = json.loads((out / "metrics.json").read_text())
    return document


# -- 2 banks x 2 rounds, seed 3, secure aggregation (test_engine) ----------------------


def check_two_bank_run_metrics(out: Path, progress: Sequence[str]) -> None:
    """Check the metrics a 2-bank, 2-round run writes, and the progress it reports.

    Both rounds and both banks are in ``metrics.json``, each bank kept about 64 % of
    its rows for training (80 % not held out, less its validation part), the final
    metrics are complete with a plausible AUC, the round chart was drawn, the final
    score histograms were kept and the model report (``report.html``) shows the curves
    drawn from them.

    Parameters
    ----------
    out : pathlib.Path
        The run's output folder (``RunConfig.out_dir``).
    progress : collections.abc.Sequence of str
        What the run's callbacks reported: ``"<round>/<total>"`` from ``on_round`` and
        the text of ``on_event``, in order.
    """
    document = _metrics(out)
    assert [r["round"] for r in document["rounds"]] == [1, 2]
    assert "1/2" in progress and "2/2" in progress
    assert set(document["participants"]) == {"bank-1", "bank-2"}
    final = document["final"]
    # Each bank holds out about a fifth of its rows and keeps a fifth of the rest as its
    # validation part: 0.64 / 0.2 = 3.2 training rows per scored row.
    trained = sum(counts["n_train"] for counts in document["participants"].values())
    assert 2.8 < trained / final["n_rows"] < 3.6
    assert {"auc", "ks", "gini", "brier", "log_loss", "accuracy", "f1"} <= set(final)
    assert 0.70 < final["auc"] < 0.85
    assert final["gini"] == pytest.approx(2 * final["auc"] - 1)
    assert document["config"]["num-server-rounds"] == 2
    assert document["wall_seconds"] > 0
    assert (out / "rounds.png").stat().st_size > 1000
    # The final evaluation's summed histograms are kept: they hold every row scored.
    histograms = document["score_histograms"]
    assert histograms["round"] == 2 and histograms["bins"] == document["config"]["score-bins"]
    assert sum(histograms["defaulters"]) + sum(histograms["non_defaulters"]) == pytest.approx(
        final["n_rows"]
    )
    report = (out / "report.html").read_text(encoding="utf-8")
    charts = 4 + ("calibration" in document) + ("woe_iv" in document)  # their own charts
    assert 'id="performance"' in report and report.count("data:image/svg+xml;base64,") == charts


def check_saved_model_scores_like_the_run(
    out: Path, config: RunConfig, schema: DatasetSchema
) -> None:
    """Check that ``OUT/model`` scores the banks' test rows to the AUC the run reported.

    The banks' held-out rows are drawn again from ``OUT/banks/*.csv`` as the banks drew
    them; the pooled AUC of the reloaded model must match ``metrics.json`` to 0.002, and
    a second reload must give the same scores bit for bit, and so must the folder
    loaded as the package signed with the run's audit key.

    Parameters
    ----------
    out : pathlib.Path
        The run's output folder (``RunConfig.out_dir``).
    config : credit.run_config.RunConfig
        The run's configuration: its ``test_fraction`` and ``seed`` (the simulated banks'
        hold-out salt) pick the test rows.
    schema : credit.schema.DatasetSchema
        The schema the bank files follow.
    """
    from sklearn.metrics import roc_auc_score

    from participant.guard.bank import held_out_rows
    from participant.guard.settings import HoldOut

    model = load_model(out / "model")
    holdout = HoldOut.for_simulation(fraction=config.test_fraction, seed=config.seed)
    scores, labels = [], []
    for bank_file in sorted((out / "banks").glob("*.csv")):
        frame = load_bank_csv(bank_file, schema).frame
        test = frame[held_out_rows(frame, schema, holdout)]
        scores.append(model.predict_proba(test))
        labels.append(test[schema.target].to_numpy())
    pooled_auc = roc_auc_score(np.concatenate(labels), np.concatenate(scores))
    reported = _metrics(out)["final"]["auc"]
    assert pooled_auc == pytest.approx(reported, abs=0.002)
    again = load_model(out / "model").predict_proba(test)
    np.testing.assert_array_equal(again, scores[-1])
    # ... and the folder is a package signed with the key of the run's audit log
    signer = load_public_key(out / "audit" / "coordinator.pub")
    package = load_package(out / "model", signer=signer)
    np.testing.assert_array_equal(package.model.predict_proba(test), scores[-1])
    assert package.manifest.run == (config.run_name or config.out_dir.rstrip("/").split("/")[-1])


def check_audit_log_of_two_bank_run(out: Path) -> None:
    """Check ``OUT/audit/coordinator.jsonl`` of a completed 2-bank, 2-round run.

    The log verifies against the coordinator's public key and is closed; it has one
    entry per round; its hashes match the run's own files (configuration, schema,
    checkpointed final model) and its final AUC matches ``metrics.json``.

    Parameters
    ----------
    out : pathlib.Path
        The run's output folder (``RunConfig.out_dir``).
    """
    log = out / "audit" / "coordinator.jsonl"
    report = verify_audit(log, load_public_key(out / "audit" / "coordinator.pub"))
    assert report.closed and report.writer == "coordinator"
    assert report.fingerprint == fingerprint(load_public_key(out / "audit" / "coordinator.pub"))
    entries = [
        entry
        for entry in (json.loads(line) for line in log.read_text().splitlines())
        if entry["event"] != "exchange"  # one per exchange: the banks' log heads
    ]
    events = [entry["event"] for entry in entries]
    assert events == ["log-open", "run-start", "setup", "round", "round", "run-end"]
    document = _metrics(out)
    start = entries[1]["data"]
    assert start["config_sha256"] == RunConfig.from_flower(document["config"]).digest()
    assert start["schema_sha256"] == document["schema"]["sha256"]
    assert start["planned_rounds"] == 2
    rounds = [entry["data"] for entry in entries if entry["event"] == "round"]
    assert [r["server_round"] for r in rounds] == [1, 2]
    secure = RunConfig.from_flower(document["config"]).secure_aggregation
    assert all(r["banks"] == ["bank-1", "bank-2"] for r in rounds)
    assert all(r["secure_aggregation"] is secure for r in rounds)  # as the run was set
    initial = entries[2]["data"]["model_sha256"]
    assert len({initial, rounds[0]["model_sha256"], rounds[1]["model_sha256"]}) == 3
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    with np.load(out / "checkpoint" / state["arrays_file"]) as saved:
        arrays = {name: saved[f"arr_{i}"] for i, name in enumerate(state["array_names"])}
    end = entries[-1]["data"]
    assert rounds[-1]["model_sha256"] == arrays_sha256(arrays) == end["final_model_sha256"]
    assert end["status"] == "completed" and end["rounds_completed"] == 2
    assert end["final_auc"] == pytest.approx(document["final"]["auc"])
    # The package's model is a round's global model, and each bank's own signed log
    # records it among the models it received (participant.node.provenance).
    package = load_package(out / "model", signer=load_public_key(out / "audit" / "coordinator.pub"))
    assert package_model_sha256(package) in {r["model_sha256"] for r in rounds}
    for bank in ("bank-1", "bank-2"):
        audit = out / "audit"
        receipts = check_received(package, audit / f"{bank}.jsonl", audit / f"{bank}.pub")
        assert any(receipt.event == "evaluate" for receipt in receipts)


# -- DP-SGD with a budget of epsilon 1 per bank (test_private_engine) -----------------


def check_private_run_spends_at_most_the_budget_and_verifies(out: Path) -> None:
    """Check a completed 2-bank, 3-round DP-SGD run with a budget of epsilon 1 each.

    Each bank spent between 0.9 and 1.0 (RDP accountant) over set-up and rounds 1-3,
    scored the last model once (an evaluation release of its held-out rows: the
    default cadence under budgets), and :func:`privacy.verify.verify_run` recomputes
    every bank's epsilon to agree.

    Parameters
    ----------
    out : pathlib.Path
        The run's output folder (``RunConfig.out_dir``).
    """
    document = _metrics(out)
    assert set(document["privacy"]) == {"bank-1", "bank-2"}
    for ledger in document["privacy"].values():
        assert 0.9 < ledger["epsilon"] <= 1.0
        assert ledger["accountant"] == "rdp"
        assert _training_rounds(ledger) == [0, 1, 2, 3]
        assert _evaluated_rounds(ledger) == [3]
    checks = verify_run(out)
    assert all(c.agrees and c.within_budget for c in checks)
    assert document["status"] == "completed"


def check_rounds_past_the_plan_are_refused(out: Path, events: Sequence[str]) -> None:
    """Check a DP-SGD run of 4 rounds whose banks planned (and budgeted) 2.

    Every bank refuses round 3, the run stops cleanly after round 2 with the model of
    round 2 saved and scored (the run's last model: one evaluation release), and
    nothing past round 2 is charged.

    Parameters
    ----------
    out : pathlib.Path
        The run's output folder (``RunConfig.out_dir``).
    events : collections.abc.Sequence of str
        The text the run's ``on_event`` callback received, in order.
    """
    document = _metrics(out)
    assert [r["round"] for r in document["rounds"]] == [1, 2]
    assert document["status"].startswith("stopped: round 3")
    refused = sorted((r["bank"], r["server-round"]) for r in document["refusals"])
    assert refused == [(bank, 3) for bank in sorted(document["participants"])]
    assert len(refused) >= 2
    assert any("refused round 3" in line for line in events)
    for ledger in document["privacy"].values():
        assert ledger["epsilon"] <= 1.0
        assert _training_rounds(ledger) == [0, 1, 2]
        assert _evaluated_rounds(ledger) == [2]
    assert [r["auc"] is None for r in document["rounds"]] == [True, False]
    model = load_model(out / "model")
    assert model.card["metrics"]["auc"] == document["final"]["auc"]


def _training_rounds(ledger: dict[str, Any]) -> list[int]:
    """The rounds of a ledger summary's releases about training rows (set-up: 0)."""
    return [e["round"] for e in ledger["events"] if e["kind"] != "evaluation-release"]


def _evaluated_rounds(ledger: dict[str, Any]) -> list[int]:
    """The rounds whose model a ledger summary's evaluations scored (its governance
    release, an evaluation release at its own sensitivity, left out)."""
    return [
        e["round"]
        for e in ledger["events"]
        if e["kind"] == "evaluation-release" and e["max_grad_norm"] == EVALUATION_SENSITIVITY
    ]


def check_a_bank_without_budget_left_is_skipped(out: Path) -> None:
    """Check a 2-round DP-SGD run where bank-3's budget (epsilon 0.001) is spent.

    bank-3 refuses the set-up release and spends nothing; the other banks (bank-1,
    bank-2 and bank-4: four under secure aggregation, whose roster needs three) train
    every round within their budgets and the run completes.

    Parameters
    ----------
    out : pathlib.Path
        The run's output folder (``RunConfig.out_dir``).
    """
    document = _metrics(out)
    others = sorted(set(document["privacy"]) - {"bank-3"})
    assert document["status"] == "completed" and len(others) >= 2
    assert [r["banks"] for r in document["rounds"]] == [others] * 2
    # bank-3 refused the set-up release, so it is outside the run's secure-aggregation
    # roster and is never asked to train.
    assert [r["refused"] for r in document["rounds"]] == [[], []]
    assert [(r["bank"], r["server-round"]) for r in document["refusals"]] == [("bank-3", 0)]
    assert document["privacy"]["bank-3"]["events"] == []
    assert document["privacy"]["bank-3"]["epsilon"] == 0.0
    for bank in others:
        assert document["privacy"][bank]["epsilon"] <= 1.0
    assert set(document["participants"]) == set(others)


# -- 5 banks, dropout rate 0.2, seed 0: secure against plain (test_secure_engine) -----


def check_dropouts_happen_and_every_round_completes(
    secure: MetricsDocument, plain: MetricsDocument, *, rounds: int
) -> None:
    """Check that both runs complete every round and the secure one loses banks.

    Parameters
    ----------
    secure, plain : MetricsDocument
        ``metrics.json`` of the run with secure aggregation and of the same run without.
    rounds : int
        The number of rounds both runs were configured with (``RunConfig.rounds``).
    """
    for document in (secure, plain):
        assert document["status"] == "completed"
        assert [r["round"] for r in document["rounds"]] == list(range(1, rounds + 1))
    assert any(r["dropped"] for r in secure["rounds"])


def check_secure_aggregation_matches_plain_fedavg(
    secure: MetricsDocument, plain: MetricsDocument
) -> None:
    """Check that secure aggregation (threshold 4 of 5) ends where plain FedAvg ends.

    The final AUCs differ by at most 0.003 (fixed-point quantisation of the masked
    updates).

    Parameters
    ----------
    secure, plain : MetricsDocument
        ``metrics.json`` of the run with secure aggregation and of the same run without.
    """
    assert secure["secure_aggregation"]["threshold"] == 4
    assert plain["secure_aggregation"] is None
    assert abs(secure["final"]["auc"] - plain["final"]["auc"]) <= 0.003


def check_same_banks_give_the_same_update_up_to_quantization(
    secure: MetricsDocument, plain: MetricsDocument
) -> None:
    """Check round 1 of both runs: the same four banks, the same update up to quantisation.

    Round 1 starts from the same model and (the dropout seed) trains the same four banks.

    Parameters
    ----------
    secure, plain : MetricsDocument
        ``metrics.json`` of the run with secure aggregation and of the same run without.
    """
    secure_round, plain_round = secure["rounds"][0], plain["rounds"][0]
    assert secure_round["banks"] == plain_round["banks"]
    assert len(secure_round["banks"]) == 4
    assert secure_round["auc"] == pytest.approx(plain_round["auc"], abs=1e-4)
    assert secure_round["train_loss"] == pytest.approx(plain_round["train_loss"], abs=1e-5)


# -- 3 banks, seed 1, stopped after round 2 and resumed (test_resume) -----------------


def check_checkpoint_completed_round(out: Path, server_round: int) -> None:
    """Check that the run's checkpoint (``OUT/checkpoint/state.json``) is of ``server_round``.

    Parameters
    ----------
    out : pathlib.Path
        The run's output folder (``RunConfig.out_dir``).
    server_round : int
        The last round the run completed.
    """
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    assert state["completed_round"] == server_round


def check_resumed_run_equals_the_uninterrupted_run(
    out: Path,
    *,
    first: MetricsDocument,
    resumed: MetricsDocument,
    whole: MetricsDocument,
    auc_tolerance: float,
    train_loss_tolerance: float | None,
) -> None:
    """Check a 3-round run stopped after round 2 and resumed against one never stopped.

    The resumed run reports rounds 1-3, keeps the first run's rounds 1-2 as they were,
    and matches the uninterrupted run round by round (same banks; AUC and train loss
    within the tolerances) and in its final AUC; its audit log is one signed log across
    both runs (:func:`tests.support.audit.assert_audit_log_of_resumed_run`).

    Parameters
    ----------
    out : pathlib.Path
        The output folder of the stopped and resumed run (``RunConfig.out_dir``).
    first, resumed, whole : MetricsDocument
        ``metrics.json`` of the run stopped after round 2, of its resumption and of
        the uninterrupted 3-round run.
    auc_tolerance : float
        Largest absolute difference allowed between the runs' AUCs (each round's and
        the final one); 0.0 asks for equality to the last bit.
    train_loss_tolerance : float or None
        Largest absolute difference allowed between each round's train loss; ``None``
        leaves the train loss uncompared.
    """
    assert [r["round"] for r in resumed["rounds"]] == [1, 2, 3]
    assert resumed["rounds"][:2] == first["rounds"]
    for got, want in zip(resumed["rounds"], whole["rounds"], strict=True):
        assert got["banks"] == want["banks"]
        # With abs given and rel not, pytest.approx allows exactly ``abs``: 0.0 is ==.
        assert got["auc"] == pytest.approx(want["auc"], abs=auc_tolerance)
        if train_loss_tolerance is not None:
            assert got["train_loss"] == pytest.approx(want["train_loss"], abs=train_loss_tolerance)
    assert resumed["final"]["auc"] == pytest.approx(whole["final"]["auc"], abs=auc_tolerance)
    assert_audit_log_of_resumed_run(out)


def check_cross_validation_output(out: Path, *, folds: int, customers: int) -> None:
    """``OUT`` of ``fedcredit simulate --folds K``: K complete runs and their summary.

    ``customers``: how many customers the banks hold together (no duplicates); in the
    clear each is held out, and scored, in exactly one fold.
    """
    document = _metrics(out)
    summary = document["cross_validation"]
    finals = []
    for k in range(folds):
        run = out / f"fold-{k}"
        fold_document = _metrics(run)
        assert fold_document["status"] == "completed"
        assert fold_document["config"]["test-fraction"] == 1 / folds
        assert fold_document["config"]["out-dir"] == str(run)
        assert (run / "model" / "model.pt").is_file()
        audit = verify_audit(
            run / "audit" / "coordinator.jsonl", load_public_key(run / "audit" / "coordinator.pub")
        )
        assert audit.closed and audit.writer == "coordinator"
        assert len(list((run / "banks").glob("*.csv"))) == len(fold_document["participants"])
        recorded = json.loads((run / "simulation.json").read_text())
        assert recorded["fold"] == {"index": k, "count": folds}
        finals.append(fold_document["final"])
    assert sum(final["n_rows"] for final in finals) == customers  # each held out once
    assert summary["folds"] == folds
    assert set(summary) == {"folds", *finals[0]} and "auc" in summary and "ks" in summary
    for name in finals[0]:
        values = np.array([final[name] for final in finals], dtype=np.float64)
        assert summary[name]["per_fold"] == pytest.approx(values.tolist(), rel=0, abs=0)
        assert summary[name]["mean"] == pytest.approx(np.mean(values), rel=1e-12, abs=0)
        assert summary[name]["sd"] == pytest.approx(np.std(values, ddof=1), rel=1e-12, abs=1e-15)
    assert len({final["auc"] for final in finals}) == folds  # K different test sets
    assert document["sd_ddof"] == 1
    assert [run["metrics"] for run in document["runs"]] == [
        f"fold-{k}/metrics.json" for k in range(folds)
    ]
    assert document["config"]["test-fraction"] == 1 / folds
