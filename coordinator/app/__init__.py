"""The coordinator's Flower ServerApp runtime: what runs inside a run, one module per job.

- :mod:`~coordinator.app.server_app`: the ServerApp (``flwr run``) and ``run_federation``;
- :mod:`~coordinator.app.run_driver`: one run from set-up through its rounds to its end;
- :mod:`~coordinator.app.run_setup`: a new run's set-up, or a resumed run's checkpoint;
- :mod:`~coordinator.app.evaluations`: the models' evaluations, rounds settled, the run's end;
- :mod:`~coordinator.app.instructions`: the run's and each round's settings sent to banks;
- :mod:`~coordinator.app.joining`: banks joining a run, the encoder, the aggregation chosen;
- :mod:`~coordinator.app.aggregation`: the ``Aggregation`` interface and plain FedAvg;
- :mod:`~coordinator.app.secagg_server`: secure aggregation, the coordinator's side;
- :mod:`~coordinator.app.bank_replies`: bank replies read and sorted (refusals, ledgers);
- :mod:`~coordinator.app.exchange`: sending a stage's messages, polling briskly;
- :mod:`~coordinator.app.run_state`: banks, round results and the run's state;
- :mod:`~coordinator.app.checkpoint`: the state after each round, for resuming;
- :mod:`~coordinator.app.run_files`: ``metrics.json``, the model, the plot, ledgers;
- :mod:`~coordinator.app.audit_trail`: the coordinator's signed audit log;
- :mod:`~coordinator.app.boosting`: federated boosting, one summed exchange per tree level;
- :mod:`~coordinator.app.boosting_checkpoint`: a boosting run's trees after each tree;
- :mod:`~coordinator.app.boosting_flower`: one boosting level's sum over Flower's Grid;
- :mod:`~coordinator.app.boosting_run`: a ``gbdt`` run over Flower, and its outputs;
- :mod:`~coordinator.app.boosting_package`: a ``gbdt`` run's model folder, signed.

The package door is :mod:`coordinator`; import the module you need from here.
"""

from __future__ import annotations

__all__: list[str] = []
