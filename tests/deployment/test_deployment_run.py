"""Whole runs on Flower's Deployment Engine, every process real, on 127.0.0.1.

The operator inits and starts a consortium, banks make keys and are added, each bank
starts its guard and SuperNode with ``fedcredit participant start`` on its own file, and
``fedcredit coordinator launch`` trains with differential privacy and secure
aggregation on. One test runs a clean consortium of three banks to the end, then
monitors the finished run's stability (``fedcredit coordinator monitor``) once the
banks restart with later files; the other loses a bank mid-round, has the coordinator
killed mid-run, resumes, and revokes a bank during the resumed run.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pandas as pd
import pytest

from participant.node.node_keys import BankKeyFiles
from privacy.secagg.members import MemberList
from tests.deployment.consortium import (
    CLI_TIMEOUT,
    FEDCREDIT,
    RunningConsortium,
    fedcredit,
    free_port,
    process_env,
    started_consortium,
)

pytestmark = pytest.mark.deployment

ROWS_PER_BANK = 2_500
MAX_EPSILON = 3.0
LAUNCH_TIMEOUT = 1_500.0


def _bank_files(folder: Path, frame: pd.DataFrame, banks: list[str]) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for index, bank in enumerate(banks):
        path = folder / f"{bank}.csv"
        frame.iloc[index * ROWS_PER_BANK : (index + 1) * ROWS_PER_BANK].to_csv(path, index=False)
        files[bank] = path
    return files


class Launch:
    """``fedcredit coordinator launch`` in the background, its output line by line."""

    def __init__(self, *args: str) -> None:
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [str(FEDCREDIT), "coordinator", "launch", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            env={**process_env(), "COLUMNS": "200"},
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, text: str, timeout: float) -> None:
        """Block until a line contains ``text``; AssertionError with the output if not."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for line in self.lines):
                return
            if self.process.poll() is not None:
                self._reader.join(timeout=5)
                if any(text in line for line in self.lines):
                    return
                break
            time.sleep(0.5)
        raise AssertionError(f"no line with {text!r}:\n{self.output}")

    def finish(self, timeout: float = LAUNCH_TIMEOUT) -> int:
        code = self.process.wait(timeout=timeout)
        self._reader.join(timeout=10)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)


@pytest.fixture
def consortium(tmp_path: Path) -> Iterator[RunningConsortium]:
    with started_consortium(
        tmp_path / "consortium",
        extra_init=["--rounds", "3", "--min-banks", "2", "--max-epsilon", str(MAX_EPSILON)],
    ) as running:
        yield running


def _start_banks(
    consortium: RunningConsortium, frame: pd.DataFrame, banks: list[str]
) -> dict[str, Path]:
    """Onboard ``banks`` (node and audit keys), start each with the member list pinned."""
    files = _bank_files(consortium.work / "data", frame, banks)
    homes = consortium.add_banks_and_start(files, max_epsilon=MAX_EPSILON)
    fingerprints = {_pinned_fingerprint(home) for home in homes.values()}
    assert len(fingerprints) == 1, fingerprints  # every bank pinned the same list
    consortium.wait_for_statuses(banks, "online")
    return homes


def _pinned_fingerprint(home: Path) -> str:
    from participant.node.supernode import NodePlan

    guard = NodePlan.load(home).guard
    assert guard.require_secure_aggregation and guard.members_fingerprint is not None
    return guard.members_fingerprint


def _bank_keys(consortium: RunningConsortium, banks: list[str]) -> list[str]:
    """``--bank-key BANK=PUBFILE`` per bank: the audit key its keygen published."""
    return [
        argument
        for bank in banks
        for argument in (
            "--bank-key",
            f"{bank}={BankKeyFiles(consortium.work / bank / 'keys').audit_public}",
        )
    ]


def _metrics(out: Path) -> dict:  # type: ignore[type-arg]
    return json.loads((out / "metrics.json").read_text(encoding="utf-8"))


def test_three_banks_train_with_dp_and_secure_aggregation_end_to_end(
    consortium: RunningConsortium, embedded_frame: pd.DataFrame, tmp_path: Path
) -> None:
    banks = ["bank-a", "bank-b", "bank-c"]
    homes = _start_banks(consortium, embedded_frame, banks)
    out = tmp_path / "results"

    # Every round scored (under budgets only the last is, by default): progress per round.
    launch = Launch(
        str(consortium.root), "--rounds", "3", "--evaluate-every", "1", "--run-name", "dev",
        "--out", str(out),
    )  # fmt: skip
    code = launch.finish()

    assert code == 0, launch.output
    for server_round in (1, 2, 3):
        assert f"round   {server_round}/3  AUC" in launch.output
    metrics = _metrics(out)
    assert metrics["status"] == "completed"
    assert [r["round"] for r in metrics["rounds"]] == [1, 2, 3]
    assert all(sorted(r["banks"]) == banks for r in metrics["rounds"])
    assert metrics["secure_aggregation"]["banks"] == 3
    assert metrics["final"]["auc"] > 0.6
    assert (out / "model" / "model.pt").is_file()
    # The deployed ServerApp wrote the model report too, and launch collected it.
    report = (out / "report.html").read_text(encoding="utf-8")
    assert 'id="performance"' in report and 'id="privacy"' in report
    assert sorted(p.stem for p in (out / "ledgers").glob("*.json")) == banks
    for bank in banks:
        spent = metrics["privacy"][bank]["epsilon"]
        assert 0 < spent <= MAX_EPSILON
    assert fedcredit("privacy", "verify", str(out), *_bank_keys(consortium, banks)).returncode == 0

    # Each bank verifies the signed package against its bundle's coordinator key, and
    # finds its model among the global models its own audit log says it received.
    for bank in banks:
        key = consortium.bundle(bank) / "coordinator.pub"
        checked = fedcredit(
            "model", "verify", str(out / "model"), "--signer", str(key), "--home", str(homes[bank])
        )
        assert "intact" in checked.stdout and "received by this bank" in checked.stdout
    _check_dashboards(consortium, homes["bank-a"], metrics, banks)

    # The audit logs of both sides verify; an edited line is named.
    coordinator_log = out / "audit" / "coordinator.jsonl"
    fedcredit("audit", "verify", str(coordinator_log))
    for bank in banks:
        fedcredit("audit", "verify", str(homes[bank] / "audit.jsonl"))
    lines = coordinator_log.read_text(encoding="utf-8").splitlines(keepends=True)
    edited = next(i for i, line in enumerate(lines) if '"event":"round"' in line)
    lines[edited] = lines[edited].replace('"server_round":1', '"server_round":7', 1)
    coordinator_log.write_text("".join(lines), encoding="utf-8")
    broken = fedcredit("audit", "verify", str(coordinator_log), check=False)
    assert broken.returncode == 1
    assert f"line {edited + 1} " in broken.stderr, broken.stderr

    listed = fedcredit("coordinator", "list", str(consortium.root)).stdout
    assert "completed" in listed and "3/3" in listed

    # Each bank's node: its guard and SuperNode both run, and the budget left is shown.
    status = fedcredit("participant", "status", "--home", str(homes["bank-a"])).stdout
    lines = {line.split(":", 1)[0].strip(): line for line in status.splitlines()}
    assert "running (pid" in lines["guard"] and "running (pid" in lines["SuperNode"]
    left = MAX_EPSILON - metrics["privacy"]["bank-a"]["epsilon"]
    assert f"ε {left:.4g} of {MAX_EPSILON:g}" in lines["budget left"], status

    _monitor_the_finished_run(consortium, embedded_frame, homes, out, tmp_path / "monitoring")


def _dashboard_state(*args: str) -> dict:  # type: ignore[type-arg]
    """Start a dashboard command on a free port, read its JSON state once, stop it."""
    process = subprocess.Popen(
        [str(FEDCREDIT), *args, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=process_env(),
    )
    try:
        assert process.stdout is not None
        url = None
        for line in process.stdout:
            found = re.search(r"dashboard: (http://127\.0\.0\.1:\d+/) ", line)
            if found is not None:
                url = found.group(1)
                break
        assert url is not None, "the dashboard printed no URL"
        state = httpx.get(f"{url}api/state", timeout=60).json()
        page = httpx.get(url, timeout=60)
        assert page.status_code == 200 and "<html" in page.text
        return state  # type: ignore[no-any-return]
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=CLI_TIMEOUT)


def _check_dashboards(
    consortium: RunningConsortium,
    home: Path,
    metrics: dict,  # type: ignore[type-arg]
    banks: list[str],
) -> None:
    """The operator's and a bank's dashboards read the real run: banks online, rounds, ε."""
    state = _dashboard_state("coordinator", "dashboard", str(consortium.root), "--run", "dev")
    assert {bank["name"]: bank["status"] for bank in state["banks"]} == dict.fromkeys(
        banks, "online"
    )
    run = state["run"]
    assert run["status"] == "completed" and run["audit"]["verified"]
    assert [(r["round"], r["auc"]) for r in run["rounds"]] == [
        (r["round"], r["auc"]) for r in metrics["rounds"]
    ]
    own = _dashboard_state("participant", "dashboard", "--home", str(home))
    assert own["bank"] == "bank-a" and own["audit"]["verified"]
    spent = own["ledger"]["spent"]["epsilon"]
    assert spent == pytest.approx(metrics["privacy"]["bank-a"]["epsilon"])


LATER_ROWS = 7_500
"""Rows of each bank's later file: the embedded rows no bank trained on (other customers)."""


def _later_files(folder: Path, frame: pd.DataFrame, banks: list[str]) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    start = len(banks) * ROWS_PER_BANK
    files = {}
    for index, bank in enumerate(banks):
        path = folder / f"{bank}.csv"
        rows = frame.iloc[start + index * LATER_ROWS : start + (index + 1) * LATER_ROWS]
        rows.to_csv(path, index=False)
        files[bank] = path
    return files


def _start_with_later_file(
    consortium: RunningConsortium, bank: str, home: Path, later: Path, model: Path
) -> None:
    """The bank starts its (stopped) node again with its later file and the run's model."""
    keys = BankKeyFiles(consortium.work / bank / "keys")
    started = fedcredit(
        "participant", "start", "--bundle", str(consortium.bundle(bank)),
        "--key", str(keys.node_key), "--data", str(consortium.work / "data" / f"{bank}.csv"),
        "--home", str(home), "--runtime-port", str(free_port()),
        "--max-epsilon", str(MAX_EPSILON),
        "--later-data", str(later), "--development-model", str(model),
    )  # fmt: skip
    assert "secure aggregation required" in started.stdout, started.stdout


def _monitor_the_finished_run(
    consortium: RunningConsortium,
    frame: pd.DataFrame,
    homes: dict[str, Path],
    results: Path,
    out: Path,
) -> None:
    """``coordinator monitor`` of run ``dev``: the banks' later counts, summed securely under
    DP, against the run's released development counts (README "Stability monitoring")."""
    banks = sorted(homes)
    later = _later_files(consortium.work / "later", frame, banks)
    with ThreadPoolExecutor(max_workers=len(banks)) as pool:
        for stopped in [
            pool.submit(fedcredit, "participant", "stop", "--home", str(homes[bank]))
            for bank in banks
        ]:
            stopped.result()
        # The SuperLink refuses to activate a node it still counts online (until its
        # last heartbeat runs out): a bank restarts once its node is offline.
        consortium.wait_for_statuses(banks, "offline", timeout=150)
        model = results / "model"
        restarts = [
            pool.submit(_start_with_later_file, consortium, bank, homes[bank], later[bank], model)
            for bank in banks
        ]
        for restart in restarts:
            restart.result()
    consortium.wait_for_statuses(banks, "online")
    # A bank's own comparison (at the bank, nothing released) while the operator's runs.
    own = out / "bank-a"
    bank_a_monitor = subprocess.Popen(
        [str(FEDCREDIT), "participant", "monitor", "--home", str(homes["bank-a"]),
         "--out", str(own)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=process_env(),
    )  # fmt: skip

    monitored = subprocess.run(
        [str(FEDCREDIT), "coordinator", "monitor", str(consortium.root), "--run", "dev",
         "--run-name", "dev-monitor", "--out", str(out)],
        capture_output=True, text=True, env={**process_env(), "COLUMNS": "200"},
        timeout=LAUNCH_TIMEOUT, check=False,
    )  # fmt: skip

    assert monitored.returncode == 0, monitored.stdout + monitored.stderr
    assert "PSI (score) and CSI" in monitored.stdout and "LIMIT_BAL" in monitored.stdout
    document = json.loads((out / "stability.json").read_text(encoding="utf-8"))
    assert (out / "stability.png").is_file()
    consortium_part = document["consortium"]
    assert consortium_part["banks"] == banks and consortium_part["summed_banks"] == 3
    assert consortium_part["secure_aggregation"] is True
    assert consortium_part["refusals"] == []
    assert document["banks"] == {}  # each bank's own comparison stays at the bank
    # Each bank released its later file's counts once, noisy, charged to its later rows.
    variance = 0.0
    for bank in banks:
        events = [e for e in document["privacy"][bank]["events"] if e["run"] == "dev-monitor"]
        assert [(e["kind"], e["rows"]) for e in events] == [("stability-release", "later")]
        variance += (events[0]["noise_multiplier"] * events[0]["max_grad_norm"]) ** 2
        log = [json.loads(line) for line in (homes[bank] / "audit.jsonl").read_text().splitlines()]
        assert [entry["event"] for entry in log[-2:]] == ["stability-release", "run-end"]
        assert log[-2]["data"]["rows"] == LATER_ROWS and log[-2]["data"]["secure"] is True
    # The consortium's later rows are the later files' rows, up to the banks' noise: a
    # characteristic's total sums one noisy count per bin and bank (its bins all hold
    # hundreds of rows, so clipping at zero does not bias it).
    limit = consortium_part["characteristics"]["LIMIT_BAL"]
    noise = (variance * len(limit["table"])) ** 0.5
    assert abs(limit["actual_rows"] - len(banks) * LATER_ROWS) <= 6 * noise, (limit, noise)
    assert limit["expected_rows"] > 0
    # The bank's own comparison is exact: its later file against all its development rows.
    output, _ = bank_a_monitor.communicate(timeout=CLI_TIMEOUT)
    assert bank_a_monitor.returncode == 0, output
    bank_a = json.loads((own / "stability.json").read_text(encoding="utf-8"))["banks"]["bank-a"]
    assert bank_a["score"]["expected_rows"] == ROWS_PER_BANK
    assert bank_a["score"]["actual_rows"] == LATER_ROWS


def test_run_survives_a_lost_bank_a_coordinator_crash_and_a_revocation(
    consortium: RunningConsortium, embedded_frame: pd.DataFrame, tmp_path: Path
) -> None:
    # Five banks: under the banks' default threshold (t > 2N/3) round 3's roster of five
    # (t = 4) survives losing bank-d, and the resumed run's roster of four (t = 3) losing
    # bank-c.
    banks = ["bank-a", "bank-b", "bank-c", "bank-d", "bank-e"]
    alive = ["bank-a", "bank-b", "bank-c", "bank-e"]
    homes = _start_banks(consortium, embedded_frame, banks)
    out = tmp_path / "results"
    root = str(consortium.root)

    launch = Launch(
        root,
        "--rounds",
        "6",
        "--evaluate-every",
        "1",
        "--run-name",
        "crash-test",
        "--out",
        str(out),
    )
    # Under secure aggregation round r's result is reported once round r + 1's sum
    # (which holds the banks' evaluation of round r's model) is unmasked: round 2 has
    # trained, and bank-d dies before round 3, whose keys it had sent.
    launch.wait_for("round   1/6  AUC", timeout=900)
    consortium.kill_bank(homes["bank-d"])
    launch.wait_for("round   2/6  AUC", timeout=900)  # round 3 trained and checkpointed
    assert consortium.crash_coordinator() >= 2  # SuperLink, SuperExec, ServerApp, flwr run
    launch.kill()
    assert "round   6/6" not in launch.output

    fedcredit("coordinator", "shutdown", root)  # clears what the crash left behind
    fedcredit("coordinator", "start", root)
    consortium.wait_for_statuses(alive, "online", timeout=180)
    resumed = Launch(root, "--resume", "crash-test", "--out", str(out))
    resumed.wait_for("resuming after round 3", timeout=600)
    # Round 4 may have been sent before the crash: a bank re-sends its kept result only
    # to the same members, so bank-c is revoked once round 4 is summed and round 5 too
    # (round 4's line comes with round 5's sum, which holds its evaluation): in round 6.
    resumed.wait_for("round   4/6", timeout=900)
    fedcredit("coordinator", "remove-participant", root, "bank-c")  # revoked mid-run
    code = resumed.finish()

    assert code == 0, resumed.output
    metrics = _metrics(out)
    assert metrics["status"] == "completed"
    assert [r["round"] for r in metrics["rounds"]] == [1, 2, 3, 4, 5, 6]
    assert sorted(metrics["rounds"][0]["banks"]) == banks
    assert sorted(metrics["rounds"][1]["banks"]) == banks
    # bank-d is gone from round 3 (the others' shares unmask the sum without it); bank-c
    # may or may not have answered round 6 before its key was revoked; the run goes on
    # either way, and its node is disconnected.
    assert [sorted(r["banks"]) for r in metrics["rounds"][2:5]] == [alive] * 3
    assert {"bank-a", "bank-b", "bank-e"} <= set(metrics["rounds"][5]["banks"]) <= set(alive)
    assert consortium.node_status().get("bank-c") != "online"
    listed = MemberList.load(consortium.consortium.paths.members)
    assert listed.names == {"bank-a", "bank-b", "bank-d", "bank-e"}  # revoked: off the list
    status = fedcredit("participant", "status", "--home", str(homes["bank-c"]), check=False)
    assert status.returncode == 1, status.stdout
    assert not any(r["aborted"] for r in metrics["rounds"])
    # Bank ledgers stay consistent across the crash: re-checked independently.
    assert fedcredit("privacy", "verify", str(out), *_bank_keys(consortium, banks)).returncode == 0
    log = (out / "audit" / "coordinator.jsonl").read_text(encoding="utf-8")
    assert log.count('"event":"run-resume"') == 1
    fedcredit("audit", "verify", str(out / "audit" / "coordinator.jsonl"))
