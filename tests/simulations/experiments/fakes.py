"""A fake run function and fabricated run folders: the grid machinery without Flower."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from simulations.experiments import RunRecord, RunTask


def write_run_files(
    folder: Path, *, status: str = "completed", auc: float = 0.7, epsilons: Sequence[float] = ()
) -> None:
    """The files ``fedcredit simulate`` leaves in a run's folder, with made-up numbers."""
    metrics: dict[str, Any] = {
        "status": status,
        "final": {"auc": auc - 0.01, "ks": 0.3},
        "privacy": {f"bank-{i}": {"epsilon": value} for i, value in enumerate(epsilons)},
    }
    (folder / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    exact = {"exact_final": {"auc": auc, "ks": 0.31}}
    (folder / "simulation.json").write_text(json.dumps(exact), encoding="utf-8")


class FakeRuns:
    """A run function that writes a finished run (AUC from the seed and the partition,
    0.02 higher for iid) and counts its calls.

    ``interrupt_at`` raises KeyboardInterrupt at that call (0-based) after writing a
    partial run (no metrics), as Ctrl-C mid-run leaves it; ``fail`` lists seeds whose
    runs exit with code 2.
    """

    def __init__(self, *, interrupt_at: int | None = None, fail: tuple[int, ...] = ()) -> None:
        self.interrupt_at = interrupt_at
        self.fail = fail
        self.calls: list[str] = []

    def __call__(self, task: RunTask) -> RunRecord:
        self.calls.append(task.run.hash)
        assert list(task.folder.iterdir()) == [task.folder / "options.json"]
        if len(self.calls) - 1 == self.interrupt_at:
            (task.folder / "simulate.log").write_text("round 1 ...\n", encoding="utf-8")
            raise KeyboardInterrupt
        seed = int(task.run.options["seed"])
        if seed in self.fail:
            return RunRecord(exit_code=2, wall_seconds=0.5, peak_rss_mb=50.0, error="bad seed")
        epsilon = task.run.options["epsilon"]
        epsilons = [] if epsilon is None else [epsilon * 0.9, epsilon * 0.95]
        iid = task.run.options["partition"] == "iid"
        write_run_files(task.folder, auc=0.7 + seed / 100 + 0.02 * iid, epsilons=epsilons)
        return RunRecord(exit_code=0, wall_seconds=1.5, peak_rss_mb=100.0)
