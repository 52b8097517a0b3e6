"""What both operations layers (the operator's and the bank's) need to deploy.

- :mod:`~deploy.flower_env`: the environment Flower's tools run in (offline, quiet,
  from this Python environment);
- :mod:`~deploy.services`: detached background services with pid and log files;
- :mod:`~deploy.bundle`: the onboarding bundle the operator writes and the bank checks;
- :mod:`~deploy.web`: the dashboards' read-only web server, shared by operator and bank.

Import the module you need; this package exports nothing itself.
"""

from __future__ import annotations

__all__: list[str] = []
