"""Consortium operations: what ``fedcredit coordinator`` does, one module per job.

- :mod:`~coordinator.ops.layout`: where everything of one consortium folder lives;
- :mod:`~coordinator.ops.consortium`: ``consortium.toml``, parsed once, and the loaded folder;
- :mod:`~coordinator.ops.provisioning`: ``init``: the folder, CA and certificates, keys,
  the Flower connection and the edge config;
- :mod:`~coordinator.ops.pki`: the consortium CA and its certificates;
- :mod:`~coordinator.ops.edge`: the nginx edge proxy (Fleet API only);
- :mod:`~coordinator.ops.services`: starting, stopping and showing SuperLink and edge;
- :mod:`~coordinator.ops.flower_cli`: every ``flwr`` subprocess call;
- :mod:`~coordinator.ops.members`: onboarding and revoking banks;
- :mod:`~coordinator.ops.launch`: submitting, following and collecting a run;
- :mod:`~coordinator.ops.monitoring`: a stability-monitoring run of a finished run;
- :mod:`~coordinator.ops.runs`: the runs as their folders record them (list, stop);
- :mod:`~coordinator.ops.dashboard`: the live dashboard's state, read from those folders.

Operations import only constants and light modules from :mod:`coordinator.app` (the
ServerApp runtime), never torch or matplotlib: the operator's commands start quickly.
Import the module you need; this package exports nothing itself.
"""

from __future__ import annotations

__all__: list[str] = []
