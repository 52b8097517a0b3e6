"""The research harness: simulated consortia on Flower's Simulation Engine.

Research-only behaviour lives here and reaches the banks' ClientApp only through the
simulation's own wiring: which file each simulated bank reads (:class:`PartitionPlan`),
its simulated budget (``budgets``), simulated dropouts (a Flower mod,
:mod:`simulations.dropouts`), with ``--reproducible-noise``, DP noise keyed from
the seed (:mod:`simulations.noise`), and the banks' secure-aggregation counters read
from their session store (:mod:`simulations.secagg_costs`). Nothing here is a field
the coordinator sends.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from credit.lazy import lazy_getattr

if TYPE_CHECKING:
    from simulations.engine import (
        PartitionPlan,
        SimulationPlan,
        plan_simulation,
        run_simulated_consortium,
        simulation_client_app,
    )
    from simulations.partition import Partition, partition_rows
    from simulations.settings import PartitionScheme, PartitionSettings

__all__ = [
    "Partition",
    "PartitionPlan",
    "PartitionScheme",
    "PartitionSettings",
    "SimulationPlan",
    "partition_rows",
    "plan_simulation",
    "run_simulated_consortium",
    "simulation_client_app",
]

# Exports resolve on first use (see credit.lazy): the CLI imports the light settings only.
_EXPORTS = {
    "Partition": "simulations.partition",
    "PartitionPlan": "simulations.engine",
    "PartitionScheme": "simulations.settings",
    "PartitionSettings": "simulations.settings",
    "SimulationPlan": "simulations.engine",
    "partition_rows": "simulations.partition",
    "plan_simulation": "simulations.engine",
    "run_simulated_consortium": "simulations.engine",
    "simulation_client_app": "simulations.engine",
}


__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())
