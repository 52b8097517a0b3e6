"""Submit a run to the consortium's SuperLink with ``flwr run`` and follow it.

The operator's machine runs the SuperLink; the ServerApp it starts for the run writes
its outputs (metrics, model, checkpoint, audit log) into the consortium folder's
``runs/<run-name>/``. :func:`submit_run` streams the run's log, hands every line to a
callback (the CLI prints round lines as ``simulate`` does) and returns Flower's run
id and whether the run finished.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coordinator.ops.layout import CONNECTION
from credit.errors import FedcreditError
from deploy.services import OFFLINE_ENV, venv_tool

__all__ = [
    "LaunchError",
    "RunHandle",
    "flwr_command",
    "project_dir",
    "started_run_id",
    "submit_run",
    "toml_line",
]

_STARTED = re.compile(r"Successfully started run (\d+)")


class LaunchError(FedcreditError):
    """``flwr run`` could not submit or finish the run."""


@dataclass(frozen=True)
class RunHandle:
    """A submitted run: Flower's id and the exit status of the streaming client."""

    run_id: int | None
    returncode: int
    output: list[str]


def project_dir() -> Path:
    """The fedcredit project folder (``flwr run`` builds the app bundle from it)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "pyproject.toml").is_file():
        raise LaunchError(
            f"no pyproject.toml in {root}: launch needs fedcredit's source folder "
            "(install it with `pip install -e .`)"
        )
    return root


def toml_line(key: str, value: Any) -> str:
    """One ``key = value`` TOML line for a scalar run-config value."""
    if isinstance(value, bool):
        rendered = "true" if value else "false"
    elif isinstance(value, int | float):
        rendered = repr(value)
    else:
        escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
        rendered = f'"{escaped}"'
    return f"{key} = {rendered}"


def flwr_command(*args: str) -> list[str]:
    """``flwr`` from the same environment as this Python."""
    return [venv_tool("flwr"), *args]


def flwr_env(flwr_home: Path) -> dict[str, str]:
    """The environment ``flwr`` commands run in: the consortium's FLWR_HOME, offline."""
    return {**os.environ, **OFFLINE_ENV, "FLWR_HOME": str(flwr_home)}


def started_run_id(line: str) -> int | None:
    """Flower's run id if ``line`` is ``flwr run``'s "Successfully started run N"."""
    match = _STARTED.search(line)
    return int(match.group(1)) if match else None


def submit_run(
    flwr_home: Path,
    run_config: Mapping[str, Any],
    *,
    on_line: Callable[[str], None],
    app_dir: Path | None = None,
) -> RunHandle:
    """Run ``flwr run APP consortium --run-config FILE --stream`` and follow its log."""
    app = app_dir or project_dir()
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as handle:
        handle.write("\n".join(toml_line(k, v) for k, v in run_config.items()) + "\n")
        config_path = Path(handle.name)
    command = flwr_command(
        "run", str(app), CONNECTION, "--run-config", str(config_path), "--stream"
    )
    output: list[str] = []
    run_id = None
    try:
        with subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            env=flwr_env(flwr_home),
            cwd=app,
        ) as process:
            assert process.stdout is not None
            for raw in process.stdout:
                line = raw.rstrip("\n")
                output.append(line)
                if run_id is None:
                    run_id = started_run_id(line)
                on_line(line)
            returncode = process.wait()
    finally:
        config_path.unlink(missing_ok=True)
    return RunHandle(run_id=run_id, returncode=returncode, output=output)
