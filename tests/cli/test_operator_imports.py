"""The operator's run commands start without torch, matplotlib or Opacus.

``fedcredit coordinator launch``, ``monitor``, ``list`` and ``stop`` only talk to the SuperLink and
read the consortium folder; the training stack is the ServerApp's business, in its
own process. Each command runs in a fresh interpreter (imports are per process)
against an initialised consortium with no SuperLink running: ``list`` shows the
runs, ``launch`` and ``stop`` fail fast with exit code 1.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from coordinator.ops.consortium import Consortium, ConsortiumConfig
from coordinator.ops.provisioning import init_consortium

HEAVY = ("torch", "matplotlib", "opacus")
TIMEOUT = 120

# Runs `fedcredit ARGV` in this interpreter, then reports the exit code and which
# heavy modules were imported, as one JSON line after the command's own output.
PROBE = f"""
import json, sys
from cli.app import main
sys.argv = ["fedcredit", *json.loads(sys.argv[1])]
try:
    main()
    code = 0
except SystemExit as exit:
    code = exit.code if isinstance(exit.code, int) else 1
heavy = [name for name in {HEAVY!r} if name in sys.modules]
print("\\n" + json.dumps({{"exit": code, "heavy": heavy}}))
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def consortium(tmp_path_factory: pytest.TempPathFactory) -> Consortium:
    """A consortium folder whose SuperLink port nobody listens on."""
    config = ConsortiumConfig.model_validate(
        {"name": "nordic", "hosts": ["fl.example"], "superlink_port": _free_port()}
    )
    return init_consortium(tmp_path_factory.mktemp("ops") / "consortium", config)


def _commands(root: Path) -> dict[str, tuple[list[str], int]]:
    """Name -> (argv after ``fedcredit``, expected exit code)."""
    return {
        "coordinator --help": (["coordinator", "--help"], 0),
        "coordinator list --help": (["coordinator", "list", "--help"], 0),
        "coordinator list": (["coordinator", "list", str(root)], 0),
        "coordinator launch": (["coordinator", "launch", str(root), "--rounds", "1"], 1),
        "coordinator stop": (["coordinator", "stop", str(root), "run-x"], 1),
        "coordinator members": (["coordinator", "members", str(root)], 2),  # no bank yet
        "coordinator monitor": (["coordinator", "monitor", str(root), "--run", "run-x"], 2),
        # reads the folder, then refuses to listen beyond loopback
        "coordinator dashboard": (["coordinator", "dashboard", str(root), "--host", "0.0.0.0"], 2),
    }


@pytest.fixture(scope="module")
def probes(consortium: Consortium) -> dict[str, tuple[int, dict[str, object], str]]:
    """Every command in its own fresh interpreter, all at once; name -> (rc, report, stderr)."""
    commands = _commands(consortium.paths.root)
    started = {
        name: subprocess.Popen(
            [sys.executable, "-c", PROBE, json.dumps(argv)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        for name, (argv, _) in commands.items()
    }
    finished = {}
    try:
        for name, process in started.items():
            stdout, stderr = process.communicate(timeout=TIMEOUT)
            report = json.loads(stdout.strip().splitlines()[-1])
            finished[name] = (process.returncode, report, stderr)
    finally:
        for process in started.values():
            if process.poll() is None:
                process.kill()
                process.communicate()
    return finished


# list, launch and stop read the run folders with coordinator.ops.runs, which takes
# CHECKPOINT_DIR from coordinator.app.checkpoint; that module and run_state import
# ModelSpec from credit.model_spec, not credit.models, so no command pulls in torch.
# Every command must pass: a heavy import anywhere on the path fails its case.
@pytest.mark.parametrize("command", _commands(Path("DIR")))
def test_operator_command_never_imports_the_training_stack(
    probes: dict[str, tuple[int, dict[str, object], str]], command: str
) -> None:
    returncode, report, stderr = probes[command]

    assert returncode == 0, stderr  # the probe itself ran to the end
    assert report["heavy"] == [], f"`fedcredit {command}` imported {report['heavy']}"


@pytest.mark.parametrize(("command", "expected"), [
    (name, code) for name, (_, code) in _commands(Path("DIR")).items()
])  # fmt: skip
def test_operator_command_ends_as_expected_without_a_superlink(
    probes: dict[str, tuple[int, dict[str, object], str]], command: str, expected: int
) -> None:
    _, report, stderr = probes[command]

    assert report["exit"] == expected, stderr
    if expected == 1:
        assert stderr.splitlines() == [stderr.strip()], stderr
        assert "the SuperLink of" in stderr and "is not running" in stderr
