"""``fedcredit serve`` and ``fedcredit monitor --model``: verified packages only, one-line errors.

The service itself runs as the installed console script (a real process on
127.0.0.1), so the command's start-up, banner and shutdown are covered too.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest
from typer.testing import CliRunner

from cli.app import app
from credit.datasets import embedded_data_path
from credit.governance.stability import psi_critical_value
from credit.package import load_package
from credit.scoring import Scorer
from tests.serving.conftest import as_applicants, typed_rows
from tests.support.packages import (
    applicant_rows,
    build_test_package,
    resign_with_noisy_development,
    signer_public_path,
)
from tests.support.served import assert_served_as_scored

FEDCREDIT = Path(sys.executable).parent / "fedcredit"
START_TIMEOUT = 60.0


@pytest.fixture(scope="module")
def package_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("packages")
    build_test_package(home, "logreg")
    return home


@pytest.fixture
def package_dir(package_home: Path, tmp_path: Path) -> Path:
    """A fresh copy of the module's package (a test may tamper with its copy)."""
    copy = tmp_path / "model"
    copy.mkdir()
    for item in (package_home / "model-logreg").iterdir():
        (copy / item.name).write_bytes(item.read_bytes())
    return copy


def one_line_error(args: list[str], expected: str) -> None:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: ") and result.output.count("\n") == 1, result.output
    assert expected in result.output, result.output


def flip_one_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("name", ["model.pt", "scoring.json", "schema.toml"])
def test_a_tampered_package_is_refused_and_nothing_starts(package_dir: Path, name: str) -> None:
    flip_one_byte(package_dir / name)
    one_line_error(["serve", "--model", str(package_dir), "--port", "0"], name)


def test_a_package_signed_by_another_key_is_refused_when_the_signer_is_pinned(
    package_dir: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    build_test_package(other, "logreg")
    one_line_error(
        ["serve", "--model", str(package_dir), "--signer", str(signer_public_path(other))],
        "not by the pinned signer",
    )


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--host", "0.0.0.0"], "--host: plain HTTP is served on loopback only"),
        (["--client-ca", "ca.pem"], "--client-ca: "),
        (["--token-file", "absent"], "--token-file: cannot read the token file"),
        (["--cutoff", "1.2"], "'--cutoff': Input should be less than 1"),
    ],
)
def test_unsafe_or_broken_flags_are_one_line(
    package_dir: Path, flags: list[str], expected: str
) -> None:
    one_line_error(["serve", "--model", str(package_dir), *flags], expected)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_fedcredit_serve_scores_as_the_scorer_and_stops_on_ctrl_c(
    package_home: Path, package_dir: Path, tmp_path: Path
) -> None:
    package = load_package(package_dir)
    frame = typed_rows(package, 500, 20)
    expected = Scorer(package).score(frame).probability.tolist()
    port = free_port()
    log = tmp_path / "decisions.jsonl"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    signer = signer_public_path(package_home)
    command = [str(FEDCREDIT), "serve", "--model", str(package_dir), "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--log", str(log), "--signer", str(signer)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "fedcredit serve did not start"
            time.sleep(0.2)
        answer = httpx.post(f"{url}/v1/score", json={"applicants": as_applicants(frame)})
    finally:
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=START_TIMEOUT)
    assert answer.status_code == 200
    assert [r["probability"] for r in answer.json()["results"]] == expected
    assert process.returncode == 0, stderr  # Ctrl-C is the way to stop it: no error
    assert "fedcredit serve: stopped" in stdout
    assert f"{package.digest} (verified)" in stdout
    assert f"{package.manifest.signer.fingerprint} (pinned)" in stdout
    assert len(log.read_text().splitlines()) == 1


def test_monitor_with_a_package_compares_a_later_file(package_dir: Path, tmp_path: Path) -> None:
    later = tmp_path / "bank-1.csv"
    applicant_rows(0, 400).to_csv(later, index=False)  # the development rows themselves
    shifted = tmp_path / "bank-2.csv"
    rows = applicant_rows(0, 400)
    rows["PAY_0"] = "8"
    rows.to_csv(shifted, index=False)
    runner = CliRunner()
    calm = runner.invoke(
        app, ["monitor", "--model", str(package_dir), "--later-data", str(later),
              "--out", str(tmp_path / "calm")],
    )  # fmt: skip
    drifted = runner.invoke(
        app, ["monitor", "--model", str(package_dir), "--later-data", str(shifted),
              "--out", str(tmp_path / "drifted")],
    )  # fmt: skip
    assert calm.exit_code == 0, calm.output
    assert drifted.exit_code == 0, drifted.output
    quiet = json.loads((tmp_path / "calm" / "stability.json").read_text())
    loud = json.loads((tmp_path / "drifted" / "stability.json").read_text())
    assert quiet["package"] == load_package(package_dir).digest
    assert quiet["banks"]["bank-1"]["drifted"] == []
    assert "PAY_0" in loud["banks"]["bank-2"]["drifted"]
    assert quiet["banks"]["bank-1"]["score"]["actual_rows"] == 400
    assert "bank-1" in calm.output and "PAY_0" in calm.output
    assert (tmp_path / "drifted" / "stability.png").is_file()


def test_monitor_with_a_noisy_package_allows_for_the_noise(
    package_dir: Path, tmp_path: Path
) -> None:
    """A DP run's package: its development counts one noise standard deviation off, the
    variance stored; the file's flag allows for it, as ``monitor --run`` does."""
    resign_with_noisy_development(package_dir, tmp_path, noise_multiplier=1.0)
    later = tmp_path / "bank-1.csv"
    applicant_rows(0, 400).to_csv(later, index=False)  # the development rows themselves
    shifted = tmp_path / "bank-2.csv"
    rows = applicant_rows(0, 400)
    rows["PAY_0"] = "8"
    rows.to_csv(shifted, index=False)
    for path, out in [(later, "calm"), (shifted, "drifted")]:
        result = CliRunner().invoke(
            app, ["monitor", "--model", str(package_dir), "--later-data", str(path),
                  "--signer", str(signer_public_path(tmp_path)), "--out", str(tmp_path / out)],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
    quiet = json.loads((tmp_path / "calm" / "stability.json").read_text())["banks"]["bank-1"]
    loud = json.loads((tmp_path / "drifted" / "stability.json").read_text())["banks"]["bank-2"]
    assert quiet["drifted"] == []
    pay_0 = quiet["characteristics"]["PAY_0"]
    assert pay_0["psi"] >= 0.1  # the noise alone moves PSI past the monitor level ...
    plain = psi_critical_value(pay_0["expected_rows"], pay_0["actual_rows"], pay_0["bins"])
    assert pay_0["psi"] > plain < pay_0["critical_value"]  # ... which exact counts would flag
    assert loud["drifted"] == ["PAY_0"]


def test_monitor_with_a_tampered_package_is_refused(package_dir: Path, tmp_path: Path) -> None:
    later = tmp_path / "bank-1.csv"
    applicant_rows(0, 50).to_csv(later, index=False)
    flip_one_byte(package_dir / "scoring.json")
    one_line_error(
        ["monitor", "--model", str(package_dir), "--later-data", str(later), "--out",
         str(tmp_path / "out")],
        "scoring.json",
    )  # fmt: skip
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--run", "RUN"], "--model: compares one later file"),
        (["--bank", "bank-1"], "--model: compares one later file"),
    ],
)
def test_monitor_model_mode_refuses_run_flags(
    package_dir: Path, tmp_path: Path, flags: list[str], expected: str
) -> None:
    later = tmp_path / "bank-1.csv"
    applicant_rows(0, 50).to_csv(later, index=False)
    values = [str(tmp_path) if flag == "RUN" else flag for flag in flags]
    one_line_error(
        ["monitor", "--model", str(package_dir), "--later-data", str(later), *values], expected
    )


def test_monitor_needs_a_run_or_a_package(tmp_path: Path) -> None:
    later = tmp_path / "bank-1.csv"
    pd.DataFrame({"ID": [1]}).to_csv(later, index=False)
    one_line_error(["monitor", "--later-data", str(later)], "--run: give the development run")


def test_the_service_answers_exactly_what_fedcredit_score_writes(
    package_home: Path, package_dir: Path, tmp_path: Path
) -> None:
    """Acceptance: every embedded row through HTTP, against ``fedcredit score``'s CSV."""
    applicants = tmp_path / "applicants.csv"
    pd.read_csv(embedded_data_path(), dtype=str, keep_default_na=False).to_csv(
        applicants, index=False
    )
    signer = signer_public_path(package_home)
    answers = assert_served_as_scored(package_dir, applicants, signer, tmp_path / "scored.csv")
    assert len(answers) == 30_000
