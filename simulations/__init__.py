"""The research harness: simulated consortia on Flower's Simulation Engine."""

from __future__ import annotations

from simulations.engine import SimulationPlan, plan_simulation, run_simulated_consortium
from simulations.partition import Partition, partition_rows

__all__ = [
    "Partition",
    "SimulationPlan",
    "partition_rows",
    "plan_simulation",
    "run_simulated_consortium",
]
