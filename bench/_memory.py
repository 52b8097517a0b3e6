"""Peak memory of a process tree (this process and all its descendants), from /proc.

Ray runs ClientApps in worker processes started by its raylet, which the driver
starts: the tree under the benchmark's own process holds the whole simulation. The
sampler adds up the resident set sizes of every process in the tree every 0.2 s
(:func:`simulations.experiments.subprocess_run.tree_rss_bytes`, which experiment
grids use too); shared pages are counted once per process, so the figure is an upper
bound.
"""

from __future__ import annotations

import os
import threading
from types import TracebackType

from simulations.experiments.subprocess_run import tree_rss_bytes

__all__ = ["PeakMemory", "tree_rss_bytes"]


class PeakMemory:
    """Context manager sampling :func:`tree_rss_bytes` of this process until exit."""

    def __init__(self, interval: float = 0.2) -> None:
        self.interval = interval
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    @property
    def peak_mb(self) -> float:
        """The peak in MiB."""
        return round(self.peak_bytes / 2**20, 1)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_bytes = max(self.peak_bytes, tree_rss_bytes(os.getpid()))
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
