"""The bank's Flower ClientApp runtime: what runs for each message, one module per job.

- :mod:`~participant.app.client_app`: the ClientApp, a handler per kind of request;
- :mod:`~participant.app.handlers`: feature statistics, enrolment, training,
  evaluation and secure aggregation's queries, one reply each;
- :mod:`~participant.app.local_update`: one round of local training (``LocalUpdate``);
- :mod:`~participant.app.training`: plain SGD and scoring;
- :mod:`~participant.app.privacy_guard`: the bank's budget held against every release;
- :mod:`~participant.app.replay`: a repeated round answered with the result paid for;
- :mod:`~participant.app.secagg_client`: secure aggregation, the bank's side;
- :mod:`~participant.app.bank`: the bank's rows, validated and split;
- :mod:`~participant.app.node_config`: the SuperNode's node config, parsed once;
- :mod:`~participant.app.approval`: only the approved fedcredit release runs;
- :mod:`~participant.app.audit_trail`: the bank's signed audit log.

The package door is :mod:`participant`; import the module you need from here.
"""

from __future__ import annotations

__all__: list[str] = []
