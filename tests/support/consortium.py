"""Run a planned simulation in this process: the fake Grid instead of Ray.

Mirrors :func:`simulations.engine.run_simulated_consortium`: the same plan, the
coordinator's real ServerApp body (:func:`coordinator.app.server_app.run_federation`)
and the banks' real ClientApp (:func:`simulations.engine.simulation_client_app`);
only Flower's transport is replaced by :class:`tests.support.fake_grid.FakeGrid`.

As on Ray, where each ClientApp actor has one CPU and Ray sets ``OMP_NUM_THREADS=1``,
torch runs on one thread during the run. Besides mirroring the engine, this keeps the
tests quick on a busy machine: on 2 cores shared with other work, torch's default two
threads made a 3-bank, 3-round run 5-10 times slower than one thread (same result).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager

from flwr.app import Message, MessageType
from flwr.clientapp.typing import Mod

from coordinator.app.run_files import RunFiles
from coordinator.app.run_state import RoundResult
from coordinator.app.server_app import run_federation
from credit.messages import QueryInstructions
from simulations.engine import PartitionPlan, SimulationPlan, relay_app
from tests.support.fake_grid import FakeGrid

__all__ = [
    "consortium_grid",
    "exchanges",
    "held_out_rows",
    "run_in_process",
    "set_up_exchanges",
    "validation_rows",
]


def set_up_exchanges(*, secure: bool) -> list[str]:
    """A new run's set-up exchanges (``exchanges`` names), federated feature statistics.

    In the clear one query; under secure aggregation the banks join (nothing
    released), advertise round 0's keys, send their masked aggregates, sign round 0's
    survivor set and reveal the shares of round 0 (that exchange also collects round
    1's keys).
    """
    if not secure:
        return ["query:feature-stats"]
    return [
        "query:join",
        "query:secagg-advertise",
        "query:feature-stats",
        "query:secagg-consistency",
        "query:secagg-unmask",
    ]


def held_out_rows(plan: SimulationPlan, banks: Iterable[str] | None = None) -> int:
    """How many rows the plan's banks (or the ones named) hold out, as their guards split.

    The coordinator is not told (see the README's privacy model); a test knows the banks.
    """
    from participant.guard.in_process import guard_for

    wanted = None if banks is None else set(banks)
    return sum(
        len(guard_for(settings).bank.test)
        for settings in plan.banks
        if wanted is None or settings.bank_name in wanted
    )


def validation_rows(plan: SimulationPlan, banks: Iterable[str] | None = None) -> int:
    """How many rows the plan's banks (or the ones named) keep as validation parts."""
    from participant.guard.in_process import guard_for

    wanted = None if banks is None else set(banks)
    return sum(
        len(guard_for(settings).bank.validation)
        for settings in plan.banks
        if wanted is None or settings.bank_name in wanted
    )


def consortium_grid(plan: SimulationPlan, *, run_id: int = 1, mods: Sequence[Mod] = ()) -> FakeGrid:
    """A grid with one node per planned bank, running the simulation's ClientApp.

    ``run_id`` is the Flower run id; a resumed run is a new Flower run (give it another).
    ``mods`` wrap every bank's ClientApp (outermost first, around the simulation's own).
    """
    # simulation_client_app(plan), with ``mods`` around it
    app = relay_app(
        PartitionPlan(plan.banks),
        seed=plan.config.seed,
        dropout_rate=plan.dropout_rate,
        mods=mods,
        reproducible_noise=plan.reproducible_noise,
    )
    return FakeGrid(
        app,
        num_nodes=len(plan.banks),
        run_config=plan.config.to_flower(),
        run_id=run_id,
        seed=plan.config.seed,
    )


def run_in_process(
    plan: SimulationPlan,
    *,
    grid: FakeGrid | None = None,
    on_round: Callable[[RoundResult, int], None] | None = None,
    on_event: Callable[[str], None] | None = None,
) -> RunFiles:
    """Run the plan through ``grid`` (a fresh :func:`consortium_grid` by default)."""
    grid = grid if grid is not None else consortium_grid(plan)
    with grid, _one_torch_thread():
        return run_federation(
            grid,
            plan.config,
            on_round=on_round or (lambda result, total: None),
            on_event=on_event or (lambda text: None),
        )


def exchanges(grid: FakeGrid) -> list[str]:
    """What each exchange of a run through ``grid`` asked, in order.

    One label per push: its messages' kinds (``train``, ``evaluate``, or ``query:`` and
    the task), sorted and joined with ``+`` when an exchange mixes kinds (secure
    aggregation's unmask exchange also sends advertise queries to the banks it does
    not ask to unmask).
    """
    return ["+".join(sorted({_kind(message) for message in push})) for push in grid.pushes]


def _kind(message: Message) -> str:
    kind = message.metadata.message_type
    if kind == MessageType.QUERY:
        return f"query:{QueryInstructions.take(message.content).task}"
    return kind


@contextmanager
def _one_torch_thread() -> Iterator[None]:
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
