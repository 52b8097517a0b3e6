"""The dashboard commands: bad flags are one line and exit 2; a served dashboard stops on Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from cli.app import app
from coordinator.ops.consortium import Consortium, ConsortiumConfig
from coordinator.ops.provisioning import init_consortium

TIMEOUT = 60


@pytest.fixture
def consortium(tmp_path: Path) -> Consortium:
    config = ConsortiumConfig.model_validate({"name": "nordic", "hosts": ["fl.example"]})
    return init_consortium(tmp_path / "consortium", config)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--host", "0.0.0.0"], "error: --host: the dashboard listens on loopback only"),
        (["--host", "192.0.2.7", "--port", "0"], "error: --host: the dashboard listens on"),
        (["--run", "q9"], "error: --run: unknown run 'q9' (runs: none yet)"),
    ],
)
def test_coordinator_dashboard_refuses_bad_flags_in_one_line(
    consortium: Consortium, flags: list[str], message: str
) -> None:
    result = CliRunner().invoke(
        app, ["coordinator", "dashboard", str(consortium.paths.root), *flags]
    )
    assert result.exit_code == 2, result.output
    assert result.output.startswith(message) and len(result.output.strip().splitlines()) == 1


def test_simulate_dashboard_is_refused_with_folds(tmp_path: Path) -> None:
    argv = ["simulate", "--dashboard", "--folds", "2", "--out", str(tmp_path / "cv")]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: --dashboard: cannot be combined with --folds")


def test_the_served_dashboard_answers_then_stops_on_ctrl_c(consortium: Consortium) -> None:
    command = [sys.executable, "-c", "from cli.app import main; main()"]
    argv = ["coordinator", "dashboard", str(consortium.paths.root), "--port", "0"]
    process = subprocess.Popen(
        [*command, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        found = re.match(
            r"dashboard: (http://127\.0\.0\.1:\d+/) \(read-only; Ctrl-C stops it\)", first
        )
        assert found is not None, first + (process.stderr.read() if process.stderr else "")
        state = httpx.get(found.group(1) + "api/state", timeout=TIMEOUT).json()
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert (state["mode"], state["consortium"], state["run"], state["runs"]) == (
        "consortium",
        "nordic",
        None,
        [],
    )
    assert process.returncode == 0, stderr
    assert stdout.strip() == "dashboard stopped"
