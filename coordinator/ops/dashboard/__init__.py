"""The operator's live dashboard: ``fedcredit coordinator dashboard`` and ``simulate --dashboard``.

- :mod:`~coordinator.ops.dashboard.run_view`: one run from its audit log, checkpoint
  and ``metrics.json``;
- :mod:`~coordinator.ops.dashboard.banks`: the registered (or simulated) banks, online
  or not, with their spend;
- :mod:`~coordinator.ops.dashboard.sources`: the state of a deployed consortium or of a
  simulation's output folder;
- :mod:`~coordinator.ops.dashboard.page`: the page.

The web server is :mod:`deploy.web`'s, shared with the bank's dashboard.
"""

from __future__ import annotations

from coordinator.ops.dashboard.page import coordinator_page
from coordinator.ops.dashboard.sources import ConsortiumSource, SimulationSource

__all__ = ["ConsortiumSource", "SimulationSource", "coordinator_page"]
