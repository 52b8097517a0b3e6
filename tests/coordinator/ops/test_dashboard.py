"""The operator's dashboard state, read from fabricated run folders and consortium folders.

The coordinator's signed log is the live source (:class:`tests.support.dashboard.FabricatedRun`
writes it as the coordinator does); the checkpoint and ``metrics.json`` add KS and
budgets only where they agree with it. The JSON endpoint is read through a real
uvicorn with a real HTTP client while rounds arrive.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from coordinator.app.audit_trail import coordinator_log_path
from coordinator.app.exchange import Stage
from coordinator.ops.consortium import Consortium, ConsortiumConfig
from coordinator.ops.dashboard import ConsortiumSource, SimulationSource, coordinator_page
from coordinator.ops.dashboard.banks import OnlineStatus
from coordinator.ops.dashboard.run_view import AUDIT_LOG, PROTOCOL_STAGES, run_document
from coordinator.ops.dashboard.sources import SIMULATION_FILE
from coordinator.ops.members import RECORD_FILE, Participant
from coordinator.ops.provisioning import init_consortium
from coordinator.ops.runs import write_launch
from credit.audit import load_or_create_signing_key
from credit.errors import ConfigError
from deploy.web import dashboard_server
from simulations import settings
from tests.support.dashboard import BANKS, MAX_EPSILON, FabricatedRun, auc_of, ks_of


def test_the_names_it_reads_are_the_runtimes() -> None:
    assert Path("/out") / AUDIT_LOG == coordinator_log_path(Path("/out"))
    assert settings.SIMULATION_FILE == SIMULATION_FILE
    assert set(PROTOCOL_STAGES) <= {str(stage) for stage in Stage}


def test_rounds_arrive_with_auc_from_the_log_and_ks_from_the_checkpoint(tmp_path: Path) -> None:
    run = FabricatedRun(tmp_path / "q3")
    empty = run_document(run.folder, public_key=None, report_url="files/report.html")
    assert (empty["status"], empty["rounds"], empty["audit"]["verified"]) == (
        "not started",
        [],
        True,
    )
    run.start()
    run.complete_round(1)
    run.complete_round(2, dropped=("bank-c",), refused=("bank-b",))
    document = run_document(run.folder, public_key=None, report_url="files/report.html")
    assert document["status"] == "running" and document["planned_rounds"] == 5
    assert [(r["round"], r["auc"], r["ks"]) for r in document["rounds"]] == [
        (1, auc_of(1), ks_of(1)),
        (2, auc_of(2), ks_of(2)),
    ]
    second = document["rounds"][1]
    assert (second["banks"], second["refused"], second["dropped"]) == (
        ["bank-a"],
        ["bank-b"],
        ["bank-c"],
    )
    assert second["epsilon"] == {bank: 0.6 for bank in BANKS} and second["max_epsilon"] == 0.6
    assert [(r["bank"], r["round"]) for r in document["refusals"]] == [("bank-b", 2)]
    exchange = document["exchange"]
    assert (exchange["stage"], exchange["round"], exchange["stages"], exchange["replied"]) == (
        "unmask",
        2,
        ["advertise", "train", "consistency", "unmask"],
        3,
    )
    audit = document["audit"]
    assert audit["verified"] and not audit["closed"] and audit["head"] == run.log.head
    assert document["final"] is None and document["report"] is None


def test_a_finished_run_links_its_report_and_final_metrics(tmp_path: Path) -> None:
    run = FabricatedRun(tmp_path / "q3")
    run.start()
    run.complete_round(1)
    run.complete_round(2)
    (run.folder / "report.html").write_text("<p>an earlier run's report")
    assert run_document(run.folder, public_key=None, report_url="r")["report"] is None
    run.end()
    document = run_document(run.folder, public_key=None, report_url="files/report.html")
    assert document["status"] == "completed" and document["audit"]["closed"]
    assert document["final"] == {"auc": auc_of(2), "ks": ks_of(2)}
    assert document["report"] == "files/report.html"


def test_a_rerun_in_the_same_folder_never_mixes_the_runs(tmp_path: Path) -> None:
    """The log's entries since its last run-start are the run; stale files are not joined."""
    run = FabricatedRun(tmp_path / "out")
    run.start(run="first")
    for number in (1, 2, 3):
        run.complete_round(number)
    run.end()
    run.rounds = []  # the new run has not written its checkpoint yet
    run.start(run="second")
    run.log.append(
        "round",
        {"server_round": 1, "banks": list(BANKS), "refused": [], "dropped": [], "aborted": None,
         "epsilon": {}, "model_sha256": "m" * 64, "secure_aggregation": True, "auc": 0.61},
    )  # fmt: skip
    document = run_document(run.folder, public_key=None, report_url="r")
    assert (document["run"], document["status"], document["final"]) == ("second", "running", None)
    assert [(r["round"], r["auc"], r["ks"]) for r in document["rounds"]] == [(1, 0.61, None)]
    assert document["exchange"] is None and document["refusals"] == []


def test_a_resumed_run_is_running_again(tmp_path: Path) -> None:
    run = FabricatedRun(tmp_path / "q3")
    run.start()
    run.complete_round(1)
    run.log.append("run-end", {"status": "failed", "reason": "RoundFailed: 1 of 2 banks",
                               "rounds_completed": 1, "final_auc": None,
                               "final_model_sha256": None})  # fmt: skip
    assert run_document(run.folder, public_key=None, report_url="r")["status"] == "failed"
    run.log.append("run-resume", {"run": "q3", "after_round": 1})
    run.complete_round(2)
    document = run_document(run.folder, public_key=None, report_url="r")
    assert (document["status"], document["resumed"], document["completed_rounds"]) == (
        "running",
        1,
        2,
    )


def test_a_log_signed_with_another_key_is_flagged(tmp_path: Path) -> None:
    run = FabricatedRun(tmp_path / "q3")
    run.start()
    other = FabricatedRun(tmp_path / "other")
    document = run_document(
        run.folder, public_key=other.folder / "audit" / "coordinator.pub", report_url="r"
    )
    assert not document["audit"]["verified"]
    assert "key" in document["audit"]["problem"]


def _simulation(out: Path) -> FabricatedRun:
    run = FabricatedRun(out)
    banks = [{"name": b, "rows": 900, "budget": {"max_epsilon": MAX_EPSILON}} for b in BANKS]
    (out / SIMULATION_FILE).write_text(json.dumps({"banks": banks}))
    return run


def test_a_simulations_banks_spend_against_their_budgets(tmp_path: Path) -> None:
    run = _simulation(tmp_path / "out")
    source = SimulationSource(run.folder)
    before = source.state()
    assert before["run"]["status"] == "not started"
    assert [(b["name"], b["status"], b["epsilon"]) for b in before["banks"]] == [
        (bank, "simulated", None) for bank in BANKS
    ]
    run.start()
    run.complete_round(1, refused=("bank-b",))
    run.complete_round(2, dropped=("bank-c",))
    banks = {b["name"]: b for b in source.state()["banks"]}
    assert banks["bank-a"] == {
        "name": "bank-a", "status": "simulated", "node_id": None, "epsilon": 0.6,
        "max_epsilon": MAX_EPSILON, "rounds": 2, "refusals": 0, "dropouts": 0,
    }  # fmt: skip
    assert (banks["bank-b"]["refusals"], banks["bank-c"]["dropouts"]) == (1, 1)
    assert source.file("report.html") == run.folder / "report.html"
    assert source.file("metrics.json") is None and source.file("../report.html") is None


@pytest.fixture
def consortium(tmp_path: Path) -> Consortium:
    config = ConsortiumConfig.model_validate({"name": "nordic", "hosts": ["fl.example"]})
    made = init_consortium(tmp_path / "consortium", config)
    for node_id, bank in enumerate(BANKS[:2], start=11):
        folder = made.paths.participant(bank)
        folder.mkdir(parents=True)
        record = Participant(name=bank, node_id=node_id, key_sha256="0" * 64, added_at="t")
        (folder / RECORD_FILE).write_text(record.model_dump_json())
    return made


def _launched(
    consortium: Consortium, name: str, submitted: str, *, key: Ed25519PrivateKey | None = None
) -> FabricatedRun:
    """A launched run, signed with the consortium's audit key (or ``key``)."""
    folder = consortium.paths.run(name)
    write_launch(
        folder,
        {"run_name": name, "config": {"num-server-rounds": 5},
         "submissions": [{"submitted_at": submitted, "flower_run_id": 7}]},
    )  # fmt: skip
    signing = key or load_or_create_signing_key(consortium.paths.audit_key)
    return FabricatedRun(folder, key=signing)


def test_a_consortium_follows_its_latest_run_and_lists_the_others(consortium: Consortium) -> None:
    earlier = _launched(consortium, "q2", "2026-10-01T09:00:00Z")
    earlier.start()
    earlier.complete_round(1)
    earlier.end()
    source = ConsortiumSource(consortium)
    assert source.state()["run"]["name"] == "q2"
    latest = _launched(consortium, "a-later-run", "2026-11-01T09:00:00Z")
    latest.start()
    latest.complete_round(1)
    state = source.state()
    assert state["run"]["name"] == "a-later-run" and state["run"]["status"] == "running"
    assert [
        (r["name"], r["current"], r["status"], r["rounds_done"], r["report"], r["audit"])
        for r in state["runs"]
    ] == [
        ("q2", False, "completed", 1, "files/runs/q2/report.html", True),
        ("a-later-run", True, "running", 1, None, True),
    ]
    assert [(b["name"], b["status"], b["node_id"]) for b in state["banks"]] == [
        ("bank-a", "unknown (SuperLink down)", 11),
        ("bank-b", "unknown (SuperLink down)", 12),
        ("bank-c", "in run only", None),  # in the run's set-up, not registered
    ]
    pinned = ConsortiumSource(consortium, run="q2").state()
    assert pinned["run"]["name"] == "q2" and pinned["run"]["status"] == "completed"
    assert [(r["name"], r["current"], r["status"]) for r in pinned["runs"]] == [
        ("q2", True, "completed"),
        ("a-later-run", False, "running"),  # from its own log, though not followed
    ]
    assert source.file("runs/q2/report.html") == earlier.folder / "report.html"
    for name in ("runs/../q2/report.html", "runs/q2/metrics.json", "runs/nope/report.html"):
        assert source.file(name) is None, name


def test_a_boosting_run_is_counted_in_trees(consortium: Consortium) -> None:
    """A boosting run writes no round entries: its row counts the trees it grew (from its
    checkpoint while it runs) against the launch's ``trees``."""
    run = _launched(consortium, "trees", "2026-11-02T09:00:00Z")
    write_launch(
        run.folder,
        {"run_name": "trees", "config": {"model": "gbdt", "trees": 4},
         "submissions": [{"submitted_at": "2026-11-02T09:00:00Z", "flower_run_id": 8}]},
    )  # fmt: skip
    run.start()
    (run.folder / "boosting-checkpoint.json").write_text(json.dumps({"trees": [{}, {}, {}]}))

    [row] = ConsortiumSource(consortium).state()["runs"]

    assert (row["rounds_done"], row["rounds_planned"], row["progress_unit"]) == (3, 4, "trees")


def test_a_run_log_not_signed_with_the_consortiums_key_is_flagged(
    consortium: Consortium,
) -> None:
    """A log re-signed by someone else verifies under its own key, not the consortium's."""
    forged = _launched(consortium, "q4", "2026-11-02T09:00:00Z", key=Ed25519PrivateKey.generate())
    forged.start()
    forged.complete_round(1)
    state = ConsortiumSource(consortium).state()
    audit = state["run"]["audit"]
    assert not audit["verified"] and audit["key"] == str(consortium.paths.audit_public_key)
    assert state["runs"][0]["audit"] is False
    assert run_document(forged.folder, public_key=None, report_url="r")["audit"]["verified"]


def test_an_unknown_run_is_refused(consortium: Consortium) -> None:
    with pytest.raises(ConfigError, match=r"^--run: unknown run 'q9' \(runs: none yet\)"):
        ConsortiumSource(consortium, run="q9")


def test_the_superlink_is_asked_at_most_every_ten_seconds(
    consortium: Consortium, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[float] = []
    now = [100.0]

    def answer(self: OnlineStatus) -> dict[int, str]:
        asked.append(now[0])
        return {11: "online", 12: "offline"}

    monkeypatch.setattr(OnlineStatus, "_ask", answer)
    source = ConsortiumSource(consortium, clock=lambda: now[0])
    for step in (0.0, 4.0, 5.9, 6.0, 1.0):  # t = 100, 104, 109.9, 115.9, 116.9
        now[0] += step
        banks = source.state()["banks"]
    assert asked == [100.0, 115.9]
    statuses = [(b["name"], b["status"]) for b in banks]
    assert statuses == [("bank-a", "online"), ("bank-b", "offline")]


def test_the_json_endpoint_shows_rounds_as_they_arrive(tmp_path: Path) -> None:
    run = _simulation(tmp_path / "out")
    run.start()
    server = dashboard_server(
        coordinator_page("Simulation out"), SimulationSource(run.folder), host="127.0.0.1", port=0
    )
    server.start()
    try:
        with httpx.Client(base_url=server.url) as client:
            seen = []
            for number in (1, 2, 3):
                run.complete_round(number)
                state = client.get("api/state").json()
                seen.append([(r["round"], r["auc"], r["ks"]) for r in state["run"]["rounds"]])
            run.end()
            final = client.get("api/state").json()
            report = client.get("files/report.html")
    finally:
        server.stop()
    assert seen == [[(n, auc_of(n), ks_of(n)) for n in range(1, last + 1)] for last in (1, 2, 3)]
    assert final["run"]["status"] == "completed"
    assert final["runs"][0]["report"] == "files/report.html"
    assert report.status_code == 200
