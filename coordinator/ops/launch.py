"""Submit a run to the consortium's SuperLink (or resume one), follow it, collect it.

``fedcredit coordinator launch`` builds the run's :class:`~credit.run_config.RunConfig`
from the consortium's run defaults (or, resuming, from the run's recorded settings)
and the operator's flags, records the submission in the run's ``launch.json``
(:mod:`coordinator.ops.runs`), runs ``flwr run --stream`` (:mod:`coordinator.ops.flower_cli`)
and, when every round completed, copies the results to the operator's ``--out``.
Resuming submits a new Flower run with the same run name and ``resume = true``: the
ServerApp continues from the checkpoint of the last completed round, and the banks
find their privacy plan under the same name. An earlier Flower run of the same run
that Flower still lists as live (after a coordinator crash, until its heartbeat runs
out) is stopped first.

A boosting run (``model = "gbdt"``) is launched the same way; it counts trees, not
rounds, and is complete when its ``metrics.json`` says so with every tree grown. It is
not resumed: the ServerApp refuses ``resume`` for boosted trees, so ``--resume`` of a
boosting run is refused here first, naming the checkpoint that keeps its finished trees.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coordinator.app.run_files import (
    LEDGER_DIR,
    METRICS_FILE,
    MODEL_DIR,
    PLOT_FILE,
    REPORT_FILE,
)
from coordinator.ops.consortium import Consortium
from coordinator.ops.flower_cli import RunHandle, started_run_id, submit_run
from coordinator.ops.runs import (
    BOOSTING_CHECKPOINT,
    LAUNCH_FILE,
    completed_rounds,
    fresh_run_folder,
    read_launch,
    require_superlink,
    resolve_run,
    run_progress,
    run_status,
    stop_earlier_submissions,
    write_launch,
)
from credit.errors import ConfigError, OperationFailed
from credit.model_spec import ModelKind
from credit.run_config import BOOSTING_FLAGS, RunConfig

__all__ = [
    "LaunchResult",
    "collect_outputs",
    "launch_run",
    "launched_model",
    "run_config_for",
    "server_error",
    "submit_recorded",
]

AUDIT_DIR = "audit"


@dataclass(frozen=True)
class LaunchResult:
    """How a launch ended.

    ``rounds_done`` and ``rounds_planned`` count ``unit``: federated rounds, or the
    trees of a boosting run (``unit = "trees"``).
    """

    run_name: str
    flower_run_id: int | None
    completed: bool
    rounds_done: int
    rounds_planned: int
    run_dir: Path
    out: Path | None
    status: str
    error: str | None = None
    unit: str = "rounds"


def run_config_for(
    consortium: Consortium,
    *,
    run_name: str,
    resume: bool,
    overrides: Mapping[str, Any],
    recorded: Mapping[str, Any] | None = None,
    command: str = "fedcredit coordinator launch",
) -> dict[str, Any]:
    """The Flower run config of a run: its base, the operator's flags, fixed paths.

    The base is the consortium's run defaults for a new run, and the run's own
    recorded config (``recorded``, Flower's hyphenated form) for a resumed one, so a
    resumed run keeps every setting it started with unless a flag changes it (a
    monitoring run's base is its development run's). ``command`` is named first in
    an error.
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
    config = RunConfig.build(fields, source=command, spelled=_FLAGS)
    return config.to_flower()


_FLAGS = {
    "pdo": "--pdo",
    "base_score": "--base-score",
    "base_odds": "--base-odds",
    **BOOSTING_FLAGS,
}
"""Run settings only a launch flag (or the run's own recorded config) sets: errors name the flag."""


@dataclass(frozen=True)
class _Target:
    """The run a launch submits: its name, its folder and, when resumed, its settings."""

    name: str
    run_dir: Path
    recorded: dict[str, Any] | None = None


def _new_run(consortium: Consortium, run_name: str | None) -> _Target:
    """A fresh run named ``run_name`` (default ``run-<UTC time>``); ConfigError if taken."""
    run_dir = fresh_run_folder(
        consortium, run_name, prefix="run", taken="choose another --run-name or --resume it"
    )
    return _Target(name=run_dir.name, run_dir=run_dir)


def _resumed_run(
    consortium: Consortium, reference: str, *, model: ModelKind | None = None
) -> _Target:
    """The run ``reference`` names, with its recorded settings; it must have a round done.

    Raises
    ------
    ConfigError
        The run is a boosting run (not resumed), ``model`` is not the run's own, or no
        round of it completed.
    """
    run_dir = resolve_run(consortium, reference)
    recorded = read_launch(run_dir).get("config") or None
    kept = ModelKind((recorded or {}).get("model", ModelKind.LOGREG))
    if kept is ModelKind.GBDT:
        raise ConfigError(
            f"run '{run_dir.name}' is a boosting run (model gbdt), and resuming one is not "
            f"supported yet; launch it afresh (its finished trees are in "
            f"{run_dir / BOOSTING_CHECKPOINT})",
            source="--resume",
        )
    if model is not None and ModelKind(model) is not kept:
        raise ConfigError(
            f"a resumed run keeps its model ({kept}); leave --model out or launch a new "
            f"run; got {model}",
            source="--model",
        )
    if completed_rounds(run_dir) == 0:
        raise ConfigError(
            f"run '{run_dir.name}' has no completed round to resume from; launch it afresh",
            source="--resume",
        )
    return _Target(name=run_dir.name, run_dir=run_dir, recorded=recorded)


def launched_model(
    consortium: Consortium, *, model: ModelKind | None, resume: str | None
) -> ModelKind:
    """The model family a launch trains: ``model`` if given, a resumed run's own, else the
    consortium's run default.

    Raises
    ------
    ConfigError
        As :func:`launch_run` for a run that cannot be resumed (a boosting run, another
        ``model``, no completed round).
    """
    if resume is not None:
        recorded = _resumed_run(consortium, resume, model=model).recorded or {}
        return ModelKind(recorded.get("model", ModelKind.LOGREG))
    return model if model is not None else ModelKind(consortium.config.run.model)


class _LaunchRecord:
    """A run's ``launch.json`` with the submission being made; written at every change."""

    def __init__(self, run_dir: Path, config: Mapping[str, Any], *, resume: bool) -> None:
        self.run_dir = run_dir
        self.document = read_launch(run_dir)
        self.document["run_name"] = run_dir.name
        self.document["config"] = dict(config)
        self.submission: dict[str, Any] = {
            "submitted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "resume": resume,
            "flower_run_id": None,
        }
        self.document["submissions"].append(self.submission)
        write_launch(run_dir, self.document)

    def started(self, flower_run_id: int) -> None:
        """Record Flower's run id at once (a crash of the CLI keeps it)."""
        if self.submission["flower_run_id"] != flower_run_id:
            self.submission["flower_run_id"] = flower_run_id
            write_launch(self.run_dir, self.document)

    def follower(self, on_line: Callable[[str], None]) -> Callable[[str], None]:
        """``on_line``, recording the run id from ``flwr run``'s start line on the way."""

        def follow(line: str) -> None:
            if self.submission["flower_run_id"] is None and (run_id := started_run_id(line)):
                self.started(run_id)
            on_line(line)

        return follow

    def forget(self, *, fresh: bool) -> None:
        """Undo the submission Flower refused (a fresh run leaves no folder)."""
        if fresh:
            shutil.rmtree(self.run_dir, ignore_errors=True)
            return
        self.document["submissions"].pop()
        write_launch(self.run_dir, self.document)


def launch_run(
    consortium: Consortium,
    *,
    overrides: Mapping[str, Any],
    run_name: str | None = None,
    resume: str | None = None,
    out: Path | None = None,
    on_line: Callable[[str], None] = print,
) -> LaunchResult:
    """Submit a run (or resume one), follow it to the end and collect its outputs.

    Raises
    ------
    OperationFailed
        The SuperLink is not running, or Flower refused the run.
    ConfigError
        A bad run name or setting (checked before the SuperLink is asked), or nothing to
        resume: a boosting run, or a run with no completed round.
    """
    if resume is None:
        target = _new_run(consortium, run_name)
    else:
        target = _resumed_run(consortium, resume, model=overrides.get("model"))
    config = run_config_for(
        consortium,
        run_name=target.name,
        resume=resume is not None,
        overrides=overrides,
        recorded=target.recorded,
    )
    require_superlink(consortium)
    if resume is not None:
        for flower_id in stop_earlier_submissions(consortium, target.run_dir):
            on_line(f"stopped Flower run {flower_id}: the resumed run replaces it")
    handle = submit_recorded(
        consortium, target.run_dir, config, resume=resume is not None, on_line=on_line
    )
    return _outcome(target, handle, config=config, out=out)


def submit_recorded(
    consortium: Consortium,
    run_dir: Path,
    config: Mapping[str, Any],
    *,
    resume: bool,
    on_line: Callable[[str], None],
) -> RunHandle:
    """Record the submission in ``run_dir``'s ``launch.json``, run ``flwr run``, follow it.

    Flower's run id is recorded as soon as ``flwr run`` prints it.

    Raises
    ------
    OperationFailed
        Flower refused the run (the record is undone: a fresh run leaves no folder).
    """
    record = _LaunchRecord(run_dir, config, resume=resume)
    handle = submit_run(consortium.paths.flwr_home, config, on_line=record.follower(on_line))
    if handle.run_id is None:
        record.forget(fresh=not resume)
        raise OperationFailed(f"Flower did not start the run: {_flower_error(handle.output)}")
    record.started(handle.run_id)
    return handle


def _outcome(
    target: _Target, handle: RunHandle, *, config: Mapping[str, Any], out: Path | None
) -> LaunchResult:
    """How the submitted run ended, from its outputs; results copied to ``out`` if complete."""
    status = run_status(target.run_dir)
    progress = run_progress(target.run_dir, config)
    done, planned = progress.done, progress.planned
    completed = status == "completed" and done == planned
    return LaunchResult(
        run_name=target.name,
        flower_run_id=handle.run_id,
        completed=completed,
        rounds_done=done,
        rounds_planned=planned,
        run_dir=target.run_dir,
        out=collect_outputs(target.run_dir, out) if completed and out is not None else None,
        status=status if status != "not started" or handle.returncode == 0 else "failed",
        error=None if completed else server_error(handle.output),
        unit=progress.unit,
    )


_EXCEPTION = re.compile(
    r"^(?:[A-Za-z_][\w.]*\.)?[A-Z]\w*(?:Error|Failed|Exceeded|Exhausted|Aborted)\b: "
)


def server_error(output: list[str]) -> str | None:
    """The last exception line the ServerApp logged (module path dropped), if any."""
    for line in reversed(output):
        text = line.strip()
        if _EXCEPTION.match(text):
            name, _, message = text.partition(": ")
            return f"{name.rsplit('.', 1)[-1]}: {message}"
    return None


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
    """Copy a finished run's results into ``out``: metrics, model, plot, report, ledgers, audit log.

    The checkpoint and any private key stay in the consortium folder. The model and
    ledger folders replace any earlier copy in ``out`` whole: a file left from an
    earlier run inside the signed model package would make it fail verification.
    """
    out.mkdir(parents=True, exist_ok=True)
    for name in (METRICS_FILE, PLOT_FILE, REPORT_FILE, LAUNCH_FILE):
        if (run_dir / name).is_file():
            shutil.copy2(run_dir / name, out / name)
    for folder in (MODEL_DIR, LEDGER_DIR):
        if (run_dir / folder).is_dir():
            if (out / folder).is_dir():
                shutil.rmtree(out / folder)
            shutil.copytree(run_dir / folder, out / folder)
    audit = run_dir / AUDIT_DIR
    if audit.is_dir():
        (out / AUDIT_DIR).mkdir(exist_ok=True)
        for item in audit.iterdir():
            if item.suffix in {".jsonl", ".pub"}:
                shutil.copy2(item, out / AUDIT_DIR / item.name)
    return out
