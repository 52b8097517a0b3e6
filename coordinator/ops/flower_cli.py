"""Every ``flwr`` command the operator's tools run, in one place.

Each call runs Flower's own CLI from this Python environment, offline (see
:mod:`deploy.flower_env`), with the consortium's private ``FLWR_HOME`` so that the
``consortium`` connection (TLS, the SuperLink's address) is the default:

- :func:`run_flwr` runs a command that answers in JSON (``supernode register``,
  ``supernode unregister``, ``supernode ls``, ``ls``, ``stop``) and returns the reply;
- :func:`submit_run` runs ``flwr run ... --stream`` on a staging copy of the
  project's packages (:func:`app_bundle_dir`: the app bundle is built from it): the
  ServerApp the SuperLink starts for the run writes its outputs into the consortium
  folder's ``runs/<run-name>/``; every log line goes to a callback (the CLI prints
  round lines as ``simulate`` does), and Flower's run id and the exit status come back.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import tomllib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coordinator.ops.layout import CONNECTION
from credit.errors import FedcreditError, OperationFailed
from deploy.flower_env import flower_env, venv_tool

__all__ = [
    "LaunchError",
    "RunHandle",
    "app_bundle_dir",
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


@contextmanager
def app_bundle_dir(root: Path | None = None) -> Iterator[Path]:
    """A temporary folder holding what the app bundle is built from, and nothing else.

    ``flwr run APP`` walks every file below ``APP`` before it filters them (a source
    folder's ``.venv`` alone holds tens of thousands) and ships what its patterns
    keep, tests and benchmarks included. The folder holds ``pyproject.toml`` and the
    packages it installs (``[tool.setuptools.packages.find] include``), without
    bytecode caches: the ServerApp and the relay ClientApp, and no other code.
    """
    source = root or project_dir()
    with tempfile.TemporaryDirectory(prefix="fedcredit-app-") as folder:
        staged = Path(folder)
        shutil.copy2(source / "pyproject.toml", staged / "pyproject.toml")
        for package in app_packages(source):
            shutil.copytree(
                source / package,
                staged / package,
                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
            )
        yield staged


def app_packages(root: Path) -> list[str]:
    """The top-level packages ``pyproject.toml`` installs (its ``packages.find`` include)."""
    document = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = document["tool"]["setuptools"]["packages"]["find"]["include"]
    return sorted({pattern.rstrip("*").rstrip(".") for pattern in patterns})


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
    """Run ``flwr run APP consortium --run-config FILE --stream`` and follow its log.

    ``APP`` is ``app_dir``, by default a staging copy of the project's packages
    (:func:`app_bundle_dir`).
    """
    if app_dir is not None:
        return _submit_from(app_dir, flwr_home, run_config, on_line)
    with app_bundle_dir() as staged:
        return _submit_from(staged, flwr_home, run_config, on_line)


def _submit_from(
    app: Path, flwr_home: Path, run_config: Mapping[str, Any], on_line: Callable[[str], None]
) -> RunHandle:
    """``flwr run APP ...`` with ``run_config`` written to a temporary TOML file."""
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
