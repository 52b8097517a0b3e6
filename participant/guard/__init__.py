"""The bank's Flower ClientApp runtime: what runs for each message, one module per job.

- :mod:`~participant.guard.client_app`: the ClientApp, a handler per kind of request;
- :mod:`~participant.guard.handlers`: feature statistics, enrolment, training,
  evaluation and secure aggregation's queries, one reply each;
- :mod:`~participant.guard.local_update`: one round of local training (``LocalUpdate``);
- :mod:`~participant.guard.training`: plain SGD and scoring;
- :mod:`~participant.guard.privacy_guard`: the bank's budget held against every release;
- :mod:`~participant.guard.replay`: a repeated round answered with the result paid for;
- :mod:`~participant.guard.secagg_client`: secure aggregation, the bank's side;
- :mod:`~participant.guard.bank`: the bank's rows, validated and split;
- :mod:`~participant.guard.node_config`: the SuperNode's node config, parsed once;
- :mod:`~participant.guard.approval`: only the approved fedcredit release runs;
- :mod:`~participant.guard.audit_trail`: the bank's signed audit log.

The package door is :mod:`participant`; import the module you need from here.
"""

from __future__ import annotations

__all__: list[str] = []
