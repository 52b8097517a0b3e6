"""The coordinator's Flower ServerApp.

``flwr run .`` (what ``fedcredit coordinator launch`` and ``monitor`` call) loads
:data:`app`, which parses ``context.run_config`` into a
:class:`~credit.run_config.RunConfig` and runs one of two kinds of run:

* a training run (``monitor-run`` empty): drives the run
  (:class:`~coordinator.app.run_driver.RunDriver`) and writes its files to
  ``out-dir``; each round's progress line goes to the log ``launch`` streams; with
  ``model = "gbdt"`` a federated boosting run instead
  (:class:`~coordinator.app.boosting_run.BoostingDriver`: one exchange per tree level);
* a stability-monitoring run (``monitor-run`` names a finished run's folder):
  sums the banks' later counts on that run's model and writes ``stability.json``
  and ``stability.png`` to ``out-dir`` (:func:`~coordinator.app.monitor_run.run_monitoring`).

``fedcredit simulate`` builds its own instance with :func:`make_server_app` so that
progress reaches its terminal.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from coordinator.app.monitor_run import run_monitoring
from coordinator.app.run_driver import RunDriver
from coordinator.app.run_files import RunFiles, write_run_outputs
from coordinator.app.run_state import RoundResult
from credit.model_spec import ModelKind
from credit.run_config import RunConfig

__all__ = ["app", "make_server_app", "run_federation"]


def _print_round(result: RoundResult, total: int) -> None:
    print(result.progress_line(total), flush=True)


def _print_event(text: str) -> None:
    print(text, flush=True)


def run_federation(
    grid: Grid,
    config: RunConfig,
    *,
    on_round: Callable[[RoundResult, int], None] = _print_round,
    on_event: Callable[[str], None] = _print_event,
) -> RunFiles:
    """Run every round (or, for ``gbdt``, every tree) and write the outputs; their paths."""
    if config.model is ModelKind.GBDT:
        from coordinator.app.boosting_run import BoostingDriver

        return BoostingDriver(grid, config, on_event=on_event).run()
    started = time.monotonic()
    state = RunDriver(grid, config, on_round=on_round, on_event=on_event).run()
    return write_run_outputs(Path(config.out_dir), state, time.monotonic() - started)


def make_server_app(
    config: RunConfig,
    *,
    on_round: Callable[[RoundResult, int], None] = _print_round,
    on_event: Callable[[str], None] = _print_event,
) -> ServerApp:
    """A ServerApp bound to a fixed configuration (used by ``fedcredit simulate``)."""
    server_app = ServerApp()

    @server_app.main()
    def main(grid: Grid, context: Context) -> None:
        run_federation(grid, config, on_round=on_round, on_event=on_event)

    return server_app


app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Entry point for ``flwr run``: parse the run config once, then train or monitor."""
    config = RunConfig.from_flower(context.run_config)
    if config.monitor_run:
        run_monitoring(grid, config, on_event=_print_event)
        return
    run_federation(grid, config)
