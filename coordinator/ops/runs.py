"""Launch, follow, list, stop and resume the consortium's federated runs.

A run is known by its **run name** (``run-YYYYmmdd-HHMMSS`` unless the operator
names it). Its outputs live in ``DIR/runs/<run-name>/``: the ServerApp writes
metrics, model, checkpoint and audit log there, and ``launch.json`` records every
submission with Flower's run id. Resuming submits a new Flower run with the same
run name and ``resume = true``: the ServerApp continues from the checkpoint of the
last completed round, and the banks find their privacy plan under the same name.
When a run completes, its results are copied to the operator's ``--out`` folder.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coordinator.app.checkpoint import CHECKPOINT_DIR
from coordinator.app.run_files import LEDGER_DIR, METRICS_FILE, MODEL_DIR, PLOT_FILE
from coordinator.ops.consortium import Consortium
from coordinator.ops.flower_cli import started_run_id, submit_run
from coordinator.ops.layout import CONNECTION
from coordinator.ops.members import run_flwr
from credit.errors import ConfigError, OperationFailed
from credit.run_config import RunConfig

__all__ = [
    "LaunchResult",
    "RunSummary",
    "collect_outputs",
    "launch_run",
    "list_runs",
    "resolve_run",
    "stop_run",
]

LAUNCH_FILE = "launch.json"
_LIVE = frozenset({"pending", "starting", "running"})
AUDIT_DIR = "audit"
_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class LaunchResult:
    """How a launch ended."""

    run_name: str
    flower_run_id: int | None
    completed: bool
    rounds_done: int
    rounds_planned: int
    run_dir: Path
    out: Path | None
    status: str
    error: str | None = None


@dataclass(frozen=True)
class RunSummary:
    """One row of ``coordinator list``."""

    run_name: str
    flower_run_ids: tuple[int, ...]
    status: str
    rounds_done: int
    rounds_planned: int
    submitted_at: str


def _superlink_reachable(consortium: Consortium) -> bool:
    host, port = consortium.superlink_dial_host.strip("[]"), consortium.config.superlink_port
    try:
        with socket.create_connection((host, port), timeout=2.0):
            return True
    except OSError:
        return False


def _require_superlink(consortium: Consortium) -> None:
    if not _superlink_reachable(consortium):
        raise OperationFailed(
            f"the SuperLink of {consortium.paths.root} is not running "
            f"({consortium.config.superlink_address}); "
            f"start it with `fedcredit coordinator start {consortium.paths.root}`"
        )


def _read_launch(run_dir: Path) -> dict[str, Any]:
    path = run_dir / LAUNCH_FILE
    try:
        document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"run_name": run_dir.name, "submissions": []}
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"unreadable launch record: {exc}", source=str(path)) from exc
    return document


def _write_launch(run_dir: Path, document: Mapping[str, Any]) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    temporary = run_dir / (LAUNCH_FILE + ".tmp")
    temporary.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    temporary.replace(run_dir / LAUNCH_FILE)


def _known_runs(consortium: Consortium) -> list[Path]:
    runs = consortium.paths.runs
    if not runs.is_dir():
        return []
    return sorted(p for p in runs.iterdir() if (p / LAUNCH_FILE).is_file())


def resolve_run(consortium: Consortium, reference: str) -> Path:
    """The folder of a run given its run name or one of its Flower run ids."""
    candidate = consortium.paths.run(reference)
    if _RUN_NAME.match(reference) and (candidate / LAUNCH_FILE).is_file():
        return candidate
    for run_dir in _known_runs(consortium):
        ids = [s.get("flower_run_id") for s in _read_launch(run_dir)["submissions"]]
        if reference in {str(i) for i in ids if i is not None}:
            return run_dir
    known = ", ".join(p.name for p in _known_runs(consortium)) or "none yet"
    raise ConfigError(
        f"unknown run '{reference}' (runs: {known}); see `fedcredit coordinator list "
        f"{consortium.paths.root}`",
        source="--resume",
    )


def _completed_rounds(run_dir: Path) -> int:
    state = run_dir / CHECKPOINT_DIR / "state.json"
    try:
        return int(json.loads(state.read_text(encoding="utf-8"))["completed_round"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def _run_status(run_dir: Path) -> str:
    try:
        metrics = json.loads((run_dir / METRICS_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return "interrupted" if _completed_rounds(run_dir) else "not started"
    return str(metrics.get("status", "unknown"))


def run_config_for(
    consortium: Consortium,
    *,
    run_name: str,
    resume: bool,
    overrides: Mapping[str, Any],
    recorded: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The Flower run config of a run: its base, the operator's flags, fixed paths.

    The base is the consortium's run defaults for a new run, and the run's own
    recorded config (``recorded``, Flower's hyphenated form) for a resumed one, so a
    resumed run keeps every setting it started with unless a flag changes it.
    """
    paths = consortium.paths
    if recorded:
        base = RunConfig.from_flower(recorded).model_dump(by_alias=True)
    else:
        base = consortium.config.run.model_dump()
    fields: dict[str, Any] = {
        **base,
        **{key: value for key, value in overrides.items() if value is not None},
        "schema": str(consortium.schema_path),
        "out_dir": str(paths.run(run_name)),
        "run_name": run_name,
        "resume": resume,
        "audit_key": str(paths.audit_key),
    }
    config = RunConfig.build(fields, source="fedcredit coordinator launch")
    return config.to_flower()


def launch_run(
    consortium: Consortium,
    *,
    overrides: Mapping[str, Any],
    run_name: str | None = None,
    resume: str | None = None,
    out: Path | None = None,
    on_line: Callable[[str], None] = print,
) -> LaunchResult:
    """Submit a run (or resume one), follow it to the end and collect its outputs."""
    _require_superlink(consortium)
    if resume is not None:
        run_dir = resolve_run(consortium, resume)
        name = run_dir.name
        if _completed_rounds(run_dir) == 0:
            raise ConfigError(
                f"run '{name}' has no completed round to resume from; launch it afresh",
                source="--resume",
            )
        recorded = _read_launch(run_dir).get("config") or None
    else:
        recorded = None
        name = run_name or time.strftime("run-%Y%m%d-%H%M%S", time.gmtime())
        if not _RUN_NAME.match(name):
            raise ConfigError(
                "use letters, digits, '.', '_' or '-' (at most 64 characters)",
                source="--run-name",
            )
        run_dir = consortium.paths.run(name)
        if run_dir.exists():
            raise ConfigError(
                f"run '{name}' exists in {run_dir}; choose another --run-name or --resume it",
                source="--run-name",
            )
    config = run_config_for(
        consortium,
        run_name=name,
        resume=resume is not None,
        overrides=overrides,
        recorded=recorded,
    )
    record = _read_launch(run_dir)
    record["run_name"] = name
    record["config"] = config
    submission: dict[str, Any] = {
        "submitted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "resume": resume is not None,
        "flower_run_id": None,
    }
    record["submissions"].append(submission)
    _write_launch(run_dir, record)

    def follow(line: str) -> None:
        if submission["flower_run_id"] is None and (started := started_run_id(line)):
            submission["flower_run_id"] = started  # recorded at once: a crash keeps it
            _write_launch(run_dir, record)
        on_line(line)

    handle = submit_run(consortium.paths.flwr_home, config, on_line=follow)
    if handle.run_id is None:
        _forget_submission(run_dir, record, fresh=resume is None)
        raise OperationFailed(f"Flower did not start the run: {_flower_error(handle.output)}")
    if handle.run_id is not None and submission["flower_run_id"] != handle.run_id:
        submission["flower_run_id"] = handle.run_id
        _write_launch(run_dir, record)
    planned = int(config["num-server-rounds"])
    status = _run_status(run_dir)
    done = _completed_rounds(run_dir)
    completed = status == "completed" and done == planned
    collected = collect_outputs(run_dir, out) if completed and out is not None else None
    return LaunchResult(
        run_name=name,
        flower_run_id=handle.run_id,
        completed=completed,
        rounds_done=done,
        rounds_planned=planned,
        run_dir=run_dir,
        out=collected,
        status=status if status != "not started" or handle.returncode == 0 else "failed",
        error=None if completed else _server_error(handle.output),
    )


_EXCEPTION = re.compile(
    r"^(?:[A-Za-z_][\w.]*\.)?[A-Z]\w*(?:Error|Failed|Exceeded|Exhausted|Aborted)\b: "
)


def _server_error(output: list[str]) -> str | None:
    """The last exception line the ServerApp logged (module path dropped), if any."""
    for line in reversed(output):
        text = line.strip()
        if _EXCEPTION.match(text):
            name, _, message = text.partition(": ")
            return f"{name.rsplit('.', 1)[-1]}: {message}"
    return None


def _forget_submission(run_dir: Path, record: dict[str, Any], *, fresh: bool) -> None:
    """Undo the record of a submission Flower refused (a fresh run leaves no folder)."""
    if fresh:
        shutil.rmtree(run_dir, ignore_errors=True)
        return
    record["submissions"].pop()
    _write_launch(run_dir, record)


def _flower_error(output: list[str]) -> str:
    """The most telling line of a failed ``flwr run``."""
    for line in output:
        if "[code:" in line or "Error" in line or "error" in line:
            text = line.strip(" │╭╮╰╯─")
            if text and text != "Error":
                return text
    tail = [line.strip() for line in output if line.strip()]
    return tail[-1] if tail else "no output from flwr run"


def collect_outputs(run_dir: Path, out: Path) -> Path:
    """Copy a finished run's results into ``out``: metrics, model, plot, ledgers, audit log.

    The checkpoint and any private key stay in the consortium folder.
    """
    out.mkdir(parents=True, exist_ok=True)
    for name in (METRICS_FILE, PLOT_FILE, LAUNCH_FILE):
        if (run_dir / name).is_file():
            shutil.copy2(run_dir / name, out / name)
    for folder in (MODEL_DIR, LEDGER_DIR):
        if (run_dir / folder).is_dir():
            shutil.copytree(run_dir / folder, out / folder, dirs_exist_ok=True)
    audit = run_dir / AUDIT_DIR
    if audit.is_dir():
        (out / AUDIT_DIR).mkdir(exist_ok=True)
        for item in audit.iterdir():
            if item.suffix in {".jsonl", ".pub"}:
                shutil.copy2(item, out / AUDIT_DIR / item.name)
    return out


def _flower_statuses(consortium: Consortium) -> dict[int, str]:
    """Flower's status of every run the SuperLink knows ({} when it cannot say)."""
    if not _superlink_reachable(consortium):
        return {}
    try:
        runs = run_flwr(consortium, "ls", CONNECTION)["runs"]
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
        record = _read_launch(run_dir)
        submissions = record.get("submissions", [])
        ids = tuple(int(s["flower_run_id"]) for s in submissions if s.get("flower_run_id"))
        flower = live.get(ids[-1], "") if ids else ""
        rows.append(
            RunSummary(
                run_name=run_dir.name,
                flower_run_ids=ids,
                status=flower if flower in _LIVE else _run_status(run_dir),
                rounds_done=_completed_rounds(run_dir),
                rounds_planned=int(record.get("config", {}).get("num-server-rounds", 0)),
                submitted_at=submissions[0]["submitted_at"] if submissions else "",
            )
        )
    return rows


def stop_run(consortium: Consortium, reference: str) -> int:
    """Stop a run's latest Flower run; return its Flower run id."""
    _require_superlink(consortium)
    run_dir = resolve_run(consortium, reference)
    ids = [s["flower_run_id"] for s in _read_launch(run_dir)["submissions"] if s["flower_run_id"]]
    if not ids:
        raise ConfigError(f"run '{run_dir.name}' was never started by Flower", source="RUN")
    flower_id = int(ids[-1])
    run_flwr(consortium, "stop", str(flower_id), CONNECTION)
    return flower_id
