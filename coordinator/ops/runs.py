"""The consortium's runs as their folders record them: find, list and stop them.

A run is known by its **run name** (``run-YYYYmmdd-HHMMSS`` unless the operator
names it). Its outputs live in ``DIR/runs/<run-name>/``: the ServerApp writes
metrics, model, checkpoint and audit log there, and ``launch.json`` records every
submission with Flower's run id (:mod:`coordinator.ops.launch` writes it). A run is
named by its run name or by any of its Flower run ids. A run counts rounds, or trees
when it is a boosting run (``model = "gbdt"``: :func:`run_progress`).
"""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coordinator.app.checkpoint import CHECKPOINT_DIR
from coordinator.app.monitor_names import STABILITY_FILE
from coordinator.app.run_files import METRICS_FILE
from coordinator.ops.consortium import Consortium
from coordinator.ops.flower_cli import run_flwr
from coordinator.ops.layout import CONNECTION
from credit.errors import ConfigError, OperationFailed
from credit.model_spec import ModelKind

__all__ = [
    "BOOSTING_CHECKPOINT",
    "LAUNCH_FILE",
    "RUN_NAME",
    "RunProgress",
    "RunSummary",
    "completed_rounds",
    "fresh_run_folder",
    "list_runs",
    "read_launch",
    "require_superlink",
    "resolve_run",
    "run_progress",
    "run_status",
    "stop_earlier_submissions",
    "stop_run",
    "write_launch",
]

LAUNCH_FILE = "launch.json"
"""Each run's record of its config and submissions, in its folder."""
RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
"""What a run name may be: it names a folder."""
_LIVE = frozenset({"pending", "starting", "running"})
BOOSTING_CHECKPOINT = "boosting-checkpoint.json"
"""A boosting run's finished trees: ``coordinator.app.boosting_checkpoint.CHECKPOINT_FILE``
(a test pins them equal; the operator's operations do not import that module)."""


@dataclass(frozen=True)
class RunProgress:
    """How far a run got: ``done`` of ``planned`` ``unit`` (``rounds``, or ``trees``)."""

    done: int
    planned: int
    unit: str


@dataclass(frozen=True)
class RunSummary:
    """One row of ``coordinator list``."""

    run_name: str
    flower_run_ids: tuple[int, ...]
    status: str
    rounds_done: int
    rounds_planned: int
    submitted_at: str
    unit: str = "rounds"


def _superlink_reachable(consortium: Consortium) -> bool:
    host, port = consortium.superlink_dial_host.strip("[]"), consortium.config.superlink_port
    try:
        with socket.create_connection((host, port), timeout=2.0):
            return True
    except OSError:
        return False


def require_superlink(consortium: Consortium) -> None:
    if not _superlink_reachable(consortium):
        raise OperationFailed(
            f"the SuperLink of {consortium.paths.root} is not running "
            f"({consortium.config.superlink_address}); "
            f"start it with `fedcredit coordinator start {consortium.paths.root}`"
        )


def read_launch(run_dir: Path) -> dict[str, Any]:
    path = run_dir / LAUNCH_FILE
    try:
        document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"run_name": run_dir.name, "submissions": []}
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"unreadable launch record: {exc}", source=str(path)) from exc
    return document


def write_launch(run_dir: Path, document: Mapping[str, Any]) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    temporary = run_dir / (LAUNCH_FILE + ".tmp")
    temporary.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    temporary.replace(run_dir / LAUNCH_FILE)


def _known_runs(consortium: Consortium) -> list[Path]:
    runs = consortium.paths.runs
    if not runs.is_dir():
        return []
    return sorted(p for p in runs.iterdir() if (p / LAUNCH_FILE).is_file())


def resolve_run(consortium: Consortium, reference: str, *, flag: str = "--resume") -> Path:
    """The folder of a run given its run name or one of its Flower run ids.

    ``flag`` is the option an unknown run is named by in the error.
    """
    candidate = consortium.paths.run(reference)
    if RUN_NAME.match(reference) and (candidate / LAUNCH_FILE).is_file():
        return candidate
    for run_dir in _known_runs(consortium):
        ids = [s.get("flower_run_id") for s in read_launch(run_dir)["submissions"]]
        if reference in {str(i) for i in ids if i is not None}:
            return run_dir
    known = ", ".join(p.name for p in _known_runs(consortium)) or "none yet"
    raise ConfigError(
        f"unknown run '{reference}' (runs: {known}); see `fedcredit coordinator list "
        f"{consortium.paths.root}`",
        source=flag,
    )


def run_progress(run_dir: Path, config: Mapping[str, Any]) -> RunProgress:
    """The rounds (a boosting run's trees) the run in ``run_dir`` of ``config`` (its Flower
    run config) completed and planned; a monitoring run plans none."""
    if config.get("model") == ModelKind.GBDT:
        return RunProgress(_trees_grown(run_dir), int(config.get("trees", 0)), "trees")
    planned = 0 if config.get("monitor-run") else int(config.get("num-server-rounds", 0))
    return RunProgress(completed_rounds(run_dir), planned, "rounds")


def _trees_grown(run_dir: Path) -> int:
    """The trees a boosting run finished: its ``metrics.json``'s, else its checkpoint's."""
    metrics = _json_object(run_dir / METRICS_FILE)
    if isinstance(metrics.get("trees"), int):
        return int(metrics["trees"])
    trees = _json_object(run_dir / BOOSTING_CHECKPOINT).get("trees")
    return len(trees) if isinstance(trees, list) else 0


def _json_object(path: Path) -> dict[str, Any]:
    """The JSON object in ``path`` ({}: missing, unreadable or not an object)."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return document if isinstance(document, dict) else {}


def completed_rounds(run_dir: Path) -> int:
    state = run_dir / CHECKPOINT_DIR / "state.json"
    try:
        return int(json.loads(state.read_text(encoding="utf-8"))["completed_round"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def run_status(run_dir: Path) -> str:
    """What a run's outputs say: its ``metrics.json`` status, or ``completed`` for a
    monitoring run that wrote its report; else interrupted (a round checkpointed) or
    not started."""
    if (run_dir / STABILITY_FILE).is_file():
        return "completed"
    try:
        metrics = json.loads((run_dir / METRICS_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        started = completed_rounds(run_dir) or (run_dir / BOOSTING_CHECKPOINT).is_file()
        return "interrupted" if started else "not started"
    return str(metrics.get("status", "unknown"))


def _flower_statuses(consortium: Consortium) -> dict[int, str]:
    """Flower's status of every run the SuperLink knows ({} when it cannot say)."""
    if not _superlink_reachable(consortium):
        return {}
    try:
        runs = run_flwr(consortium.paths.flwr_home, "ls", CONNECTION)["runs"]
        return {int(run["run-id"]): str(run["status"]) for run in runs}
    except (OperationFailed, ValueError, KeyError, TypeError):
        return {}


def list_runs(consortium: Consortium) -> list[RunSummary]:
    """Every run launched from this consortium folder, oldest first.

    A run whose latest Flower run is still pending, starting or running shows
    Flower's status; otherwise the status its outputs record.
    """
    live = _flower_statuses(consortium)
    rows = []
    for run_dir in _known_runs(consortium):
        record = read_launch(run_dir)
        submissions = record.get("submissions", [])
        ids = tuple(int(s["flower_run_id"]) for s in submissions if s.get("flower_run_id"))
        flower = live.get(ids[-1], "") if ids else ""
        progress = run_progress(run_dir, record.get("config", {}))
        rows.append(
            RunSummary(
                run_name=run_dir.name,
                flower_run_ids=ids,
                status=flower if flower in _LIVE else run_status(run_dir),
                rounds_done=progress.done,
                rounds_planned=progress.planned,
                submitted_at=submissions[0]["submitted_at"] if submissions else "",
                unit=progress.unit,
            )
        )
    return rows


def fresh_run_folder(
    consortium: Consortium, run_name: str | None, *, prefix: str, taken: str
) -> Path:
    """The (not yet created) folder of a new run named ``run_name`` (default
    ``<prefix>-<UTC time>``).

    Raises
    ------
    ConfigError
        The name is not a folder name, or a run of that name exists (the error ends
        with ``taken``: what to do instead).
    """
    name = run_name or time.strftime(f"{prefix}-%Y%m%d-%H%M%S", time.gmtime())
    if not RUN_NAME.match(name):
        raise ConfigError(
            "use letters, digits, '.', '_' or '-' (at most 64 characters)", source="--run-name"
        )
    run_dir = consortium.paths.run(name)
    if run_dir.exists():
        raise ConfigError(f"run '{name}' exists in {run_dir}; {taken}", source="--run-name")
    return run_dir


def stop_earlier_submissions(consortium: Consortium, run_dir: Path) -> list[int]:
    """Stop the run's earlier Flower runs that Flower still counts as live; return their ids.

    A resumed run supersedes them. After a coordinator crash the SuperLink lists the
    crashed Flower run as running until its heartbeat runs out (about a minute), and
    the banks' SuperNodes go on pulling its messages meanwhile.

    Raises
    ------
    OperationFailed
        An earlier Flower run is still live after ``flwr stop``.
    """
    live = _flower_statuses(consortium)
    submissions = read_launch(run_dir).get("submissions", [])
    ids = [int(s["flower_run_id"]) for s in submissions if s.get("flower_run_id")]
    stopped = []
    for flower_id in (i for i in ids if live.get(i) in _LIVE):
        try:
            run_flwr(consortium.paths.flwr_home, "stop", str(flower_id), CONNECTION)
        except OperationFailed:  # it may have ended on its own in the meantime
            if _flower_statuses(consortium).get(flower_id) in _LIVE:
                raise
            continue
        stopped.append(flower_id)
    return stopped


def stop_run(consortium: Consortium, reference: str) -> int:
    """Stop a run's latest Flower run; return its Flower run id."""
    require_superlink(consortium)
    run_dir = resolve_run(consortium, reference)
    ids = [s["flower_run_id"] for s in read_launch(run_dir)["submissions"] if s["flower_run_id"]]
    if not ids:
        raise ConfigError(f"run '{run_dir.name}' was never started by Flower", source="RUN")
    flower_id = int(ids[-1])
    run_flwr(consortium.paths.flwr_home, "stop", str(flower_id), CONNECTION)
    return flower_id
