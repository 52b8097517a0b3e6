"""The environment Flower's tools run in: offline, quiet, from this Python environment.

Flower phones home unless told not to (usage telemetry, a PyPI update check) and,
in deployment, installs each run's dependencies from the network. fedcredit turns
all three off wherever it starts Flower: its services (SuperLink, edge, SuperNode),
every ``flwr`` call, the Simulation Engine, the tests and the benchmarks. Ray (the
Simulation Engine's backend) is kept quiet the same way. This module is the one
place those switches are written down.

It also finds Flower's console scripts in the environment fedcredit runs from
(:func:`venv_tool`), and puts that environment's ``bin`` first on a child's PATH
(Flower's services start its other tools by name).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, MutableMapping
from pathlib import Path

__all__ = [
    "OFFLINE_ENV",
    "RAY_QUIET_ENV",
    "SIMULATION_ENV",
    "flower_env",
    "set_offline_defaults",
    "venv_bin",
    "venv_first_path",
    "venv_tool",
]

OFFLINE_ENV: Mapping[str, str] = {
    "FLWR_TELEMETRY_ENABLED": "0",
    "FLWR_DISABLE_UPDATE_CHECK": "1",
    "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
}
"""Flower without network calls of its own: no telemetry, no update check, no
per-run dependency installation."""

RAY_QUIET_ENV: Mapping[str, str] = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_DEDUP_LOGS": "0",
    # Keep Ray from rewriting CUDA_VISIBLE_DEVICES (and from warning that it will stop).
    "RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO": "0",
}
"""Ray without usage statistics, log de-duplication or accelerator rewriting."""

SIMULATION_ENV: Mapping[str, str] = {**OFFLINE_ENV, **RAY_QUIET_ENV}
"""Everything a process that starts Flower's Simulation Engine sets."""


def venv_bin() -> Path:
    """The ``bin`` folder of the Python environment fedcredit runs from."""
    return Path(sys.executable).parent


def venv_tool(name: str) -> str:
    """A console script of this Python environment (Flower's tools), else ``name`` on PATH."""
    executable = venv_bin() / name
    return str(executable) if executable.exists() else name


def venv_first_path(path: str | None = None) -> str:
    """``path`` (default: this process's PATH) with this environment's bin first."""
    rest = os.environ.get("PATH", "") if path is None else path
    return os.pathsep.join([str(venv_bin()), rest])


def flower_env(
    *,
    flwr_home: Path | None = None,
    base: Mapping[str, str] | None = None,
    simulation: bool = False,
) -> dict[str, str]:
    """The environment of a child process that runs Flower.

    Parameters
    ----------
    flwr_home : pathlib.Path, optional
        A private ``FLWR_HOME`` (a consortium's or a node's); inherited when omitted.
    base : mapping, optional
        The environment to start from; this process's by default.
    simulation : bool, default False
        Also quiet Ray (:data:`RAY_QUIET_ENV`), for children that simulate.

    Returns
    -------
    dict
        ``base`` with :data:`OFFLINE_ENV` (and Ray's switches) set and this
        environment's bin first on PATH.
    """
    environment = dict(os.environ if base is None else base)
    environment.update(SIMULATION_ENV if simulation else OFFLINE_ENV)
    environment["PATH"] = venv_first_path(environment.get("PATH", ""))
    if flwr_home is not None:
        environment["FLWR_HOME"] = str(flwr_home)
    return environment


def set_offline_defaults(
    environ: MutableMapping[str, str] | None = None, *, simulation: bool = False
) -> None:
    """Set every switch not already set in ``environ`` (this process's by default).

    For code that starts Flower inside this process (the Simulation Engine, the
    tests): a value the user set explicitly is kept.
    """
    target = os.environ if environ is None else environ
    for key, value in (SIMULATION_ENV if simulation else OFFLINE_ENV).items():
        target.setdefault(key, value)
