"""The operator's dashboard state: a deployed consortium's, or a simulation's output folder.

Both read files only, afresh at every request (a run's view is recomputed only when
one of its files changed): the consortium folder's participant records and runs, the
current run's audit log, checkpoint and ``metrics.json``
(:mod:`~coordinator.ops.dashboard.run_view`). Nothing is stored besides.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from coordinator.app.run_files import METRICS_FILE, REPORT_FILE
from coordinator.ops.consortium import Consortium
from coordinator.ops.dashboard.banks import (
    BankRow,
    OnlineStatus,
    bank_rows,
    registered_banks,
    simulated_banks,
)
from coordinator.ops.dashboard.run_view import (
    AUDIT_LOG,
    AUDIT_PUBLIC_KEY,
    CHECKPOINT_STATE,
    budgets_of,
    read_json,
    run_document,
)
from coordinator.ops.runs import LAUNCH_FILE, RUN_NAME, read_launch, resolve_run, run_progress
from credit.model_spec import ModelKind
from deploy.web import file_signature

__all__ = ["SIMULATION_FILE", "ConsortiumSource", "SimulationSource"]

SIMULATION_FILE = "simulation.json"
"""How a simulation records its banks (:data:`simulations.settings.SIMULATION_FILE`)."""
_FILES = "files/"


class _RunViews:
    """Each run's view, read again only when one of its files changed."""

    def __init__(self) -> None:
        self._views: dict[Path, tuple[tuple[Any, ...], dict[str, Any]]] = {}

    def view(self, run_dir: Path, public_key: Path | None, report_url: str) -> dict[str, Any]:
        """:func:`run_document` of ``run_dir`` as its files are now."""
        files = [
            run_dir / AUDIT_LOG,
            public_key or run_dir / AUDIT_PUBLIC_KEY,
            run_dir / CHECKPOINT_STATE,
            run_dir / METRICS_FILE,
            run_dir / REPORT_FILE,
        ]
        key = (public_key, report_url, file_signature(*files))
        kept = self._views.get(run_dir)
        if kept is None or kept[0] != key:
            kept = (key, run_document(run_dir, public_key=public_key, report_url=report_url))
            self._views[run_dir] = kept
        return kept[1]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _with_banks(run: dict[str, Any], run_dir: Path, banks: list[BankRow]) -> list[dict[str, Any]]:
    budgets = budgets_of(read_json(run_dir / CHECKPOINT_STATE), read_json(run_dir / METRICS_FILE))
    return bank_rows(banks, run, budgets)


class SimulationSource:
    """The dashboard of the simulation writing to ``out_dir`` (``simulate --dashboard``).

    Parameters
    ----------
    out_dir : pathlib.Path
        The simulation's output folder (it may not exist yet).
    """

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = Path(out_dir)
        self._runs = _RunViews()

    def state(self) -> dict[str, Any]:
        """The page's state: the simulated banks, the run, the run itself as the one run."""
        run = self._runs.view(self.out_dir, None, _FILES + REPORT_FILE)
        banks = simulated_banks(read_json(self.out_dir / SIMULATION_FILE))
        return {
            "kind": "coordinator",
            "mode": "simulation",
            "source": str(self.out_dir.absolute()),
            "read_at": _now(),
            "banks": _with_banks(run, self.out_dir, banks),
            "run": run,
            "runs": [_run_row(self.out_dir, run, current=True)],
        }

    def file(self, name: str) -> Path | None:
        """Only the run's ``report.html``."""
        return self.out_dir / REPORT_FILE if name == REPORT_FILE else None


class ConsortiumSource:
    """The dashboard of a deployed consortium (``coordinator dashboard DIR``).

    Parameters
    ----------
    consortium : Consortium
        The loaded consortium folder.
    run : str, optional
        The run to follow (its name or a Flower run id); default: the run launched
        last, looked up again at every request (a new launch is followed at once).
    clock : callable, default time.monotonic
        The time in seconds, for how long the SuperLink's node list is reused.

    Raises
    ------
    ConfigError
        ``run`` names no run of the consortium (``--run``).
    """

    def __init__(
        self,
        consortium: Consortium,
        *,
        run: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.consortium = consortium
        self._pinned = resolve_run(consortium, run, flag="--run") if run else None
        self._online = OnlineStatus(consortium, clock=clock)
        self._runs = _RunViews()

    def state(self) -> dict[str, Any]:
        """The registered banks, the followed run and every run of the consortium."""
        paths = self.consortium.paths
        folders = self._run_folders()
        views = {folder: self._view(folder) for folder in folders}
        current = self._pinned or (folders[-1] if folders else None)
        if current is not None and current not in views:
            views[current] = self._view(current)
        run = views[current] if current is not None else None
        return {
            "kind": "coordinator",
            "mode": "consortium",
            "source": str(paths.root),
            "consortium": self.consortium.config.name,
            "read_at": _now(),
            "banks": self._banks(current, run),
            "run": run,
            "runs": [_run_row(f, views[f], current=f == current) for f in folders],
        }

    def _view(self, folder: Path) -> dict[str, Any]:
        url = f"{_FILES}runs/{folder.name}/{REPORT_FILE}"
        return self._runs.view(folder, self.consortium.paths.audit_public_key, url)

    def _banks(self, current: Path | None, run: dict[str, Any] | None) -> list[dict[str, Any]]:
        banks = registered_banks(self.consortium, self._online)
        if current is None or run is None:
            return bank_rows(banks, None, {})
        return _with_banks(run, current, banks)

    def file(self, name: str) -> Path | None:
        """``runs/<run>/report.html`` of a run of this consortium; nothing else."""
        parts = name.split("/")
        if len(parts) != 3 or parts[0] != "runs" or parts[2] != REPORT_FILE:
            return None
        if not RUN_NAME.match(parts[1]):
            return None
        folder = self.consortium.paths.run(parts[1])
        return folder / REPORT_FILE if (folder / LAUNCH_FILE).is_file() else None

    def _run_folders(self) -> list[Path]:
        """Every launched run's folder, in the order they were first submitted."""
        root = self.consortium.paths.runs
        if not root.is_dir():
            return []
        folders = [p for p in root.iterdir() if (p / LAUNCH_FILE).is_file()]
        return sorted(folders, key=lambda folder: (_submitted(folder), folder.name))


def _submitted(folder: Path) -> str:
    submissions = read_launch(folder).get("submissions", [])
    return str(submissions[0].get("submitted_at", "")) if submissions else ""


def _run_row(folder: Path, run: dict[str, Any], *, current: bool) -> dict[str, Any]:
    """One row of the runs table, from the run's view (what its own log says)."""
    launch = read_json(folder / LAUNCH_FILE)
    config = (launch or {}).get("config") or {}
    done, planned, unit = run["completed_rounds"], run["planned_rounds"], "rounds"
    if config.get("model") == ModelKind.GBDT:  # a boosting run counts its trees
        progress = run_progress(folder, config)
        done, planned, unit = progress.done, progress.planned, progress.unit
    elif planned is None:  # not started: the launch's plan
        planned = config.get("num-server-rounds")
    return {
        "name": folder.name,
        "current": current,
        "status": run["status"],
        "rounds_done": done,
        "rounds_planned": planned,
        "progress_unit": unit,
        "submitted": _submitted(folder) if launch is not None else None,
        "final_auc": (run["final"] or {}).get("auc"),
        "report": run["report"],
        "audit": run["audit"]["verified"] if run["audit"]["present"] else None,
    }
