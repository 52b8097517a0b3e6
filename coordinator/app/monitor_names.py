"""The files a monitoring run writes into its folder: names only.

:mod:`coordinator.app.monitor_files` writes them; the operator's commands
(:mod:`coordinator.ops.monitoring`) read these names to collect a deployed monitoring
run's results without importing the runtime.
"""

from __future__ import annotations

__all__ = ["PLOT_FILE", "STABILITY_FILE"]

STABILITY_FILE = "stability.json"
"""The report: thresholds, the consortium's comparison, who took part, ledger summaries."""
PLOT_FILE = "stability.png"
"""PSI and CSI per characteristic as bars, with the 0.1 and 0.25 thresholds."""
