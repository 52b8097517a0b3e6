"""Every ``flwr`` command the operator's tools run, in one place.

Each call runs Flower's own CLI from this Python environment, offline (see
:mod:`deploy.flower_env`), with the consortium's private ``FLWR_HOME`` so that the
``consortium`` connection (TLS, the SuperLink's address) is the default:

- :func:`run_flwr` runs a command that answers in JSON (``supernode register``,
  ``supernode unregister``, ``supernode ls``, ``ls``, ``stop``) and returns the reply;
- :func:`submit_run` runs ``flwr run ... --stream``: the ServerApp the SuperLink
  starts for the run writes its outputs into the consortium folder's
  ``runs/<run-name>/``; every log line goes to a callback (the CLI prints round
  lines as ``simulate`` does), and Flower's run id and the exit status come back.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coordinator.ops.layout import CONNECTION
from credit.errors import FedcreditError, OperationFailed
from deploy.flower_env import flower_env, venv_tool

__all__ = [
    "LaunchError",
    "RunHandle",
    "flwr_command",
    "flwr_env",
    "project_dir",
    "run_flwr",
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
    return flower_env(flwr_home=flwr_home)


def run_flwr(flwr_home: Path, *args: str, timeout: float = 60.0) -> dict[str, Any]:
    """Run ``flwr ARGS --format json`` with ``flwr_home``'s connection; its JSON reply.

    Raises
    ------
    OperationFailed
        flwr exits non-zero, reports failure or prints no JSON, or takes longer than
        ``timeout`` seconds; the message carries flwr's own words on one line.
    """
    command = flwr_command(*args, "--format", "json")
    try:
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            env=flwr_env(flwr_home),
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise OperationFailed(f"`flwr {' '.join(args)}` took over {timeout:.0f} s") from exc
    reply = _json_reply(result.stdout)
    if result.returncode != 0 or reply is None or reply.get("success") is False:
        detail = (reply or {}).get("error-message") or result.stderr or result.stdout
        one_line = " ".join(str(detail).split()) or f"exit code {result.returncode}"
        raise OperationFailed(f"`flwr {' '.join(args)}` failed: {one_line}")
    return reply


def _json_reply(stdout: str) -> dict[str, Any] | None:
    """The last JSON object flwr printed (it may print a human line first)."""
    start = stdout.find("{")
    while start != -1:
        try:
            value = json.loads(stdout[start:])
        except json.JSONDecodeError:
            start = stdout.find("{", start + 1)
            continue
        return value if isinstance(value, dict) else None
    return None


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
            if process.stdout is None:  # stdout=PIPE always gives one
                raise OperationFailed("`flwr run` gave no output stream")
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
