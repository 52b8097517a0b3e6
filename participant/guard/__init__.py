"""The bank's guard: every rule that protects the bank, in the bank's own installed code.

- :mod:`~participant.guard.bank_guard`: ``BankGuard``, a handler per request kind,
  every request answered or refused (and refusals recorded);
- :mod:`~participant.guard.handlers`: feature statistics, enrolment, training,
  evaluation and secure aggregation's queries, one reply each;
- :mod:`~participant.guard.settings`: the bank's settings and its fixed hold-out split;
- :mod:`~participant.guard.server`: the guard service's Unix socket;
- :mod:`~participant.guard.in_process`: the guard in the relay's process (simulations);
- :mod:`~participant.guard.local_update`: one round of local training (``LocalUpdate``);
- :mod:`~participant.guard.training`: plain SGD and scoring;
- :mod:`~participant.guard.privacy_guard`: the bank's budget held against every release,
  and one noise stream per charged release (keys: :mod:`privacy.noise_keys`);
- :mod:`~participant.guard.setup_release`: the set-up release under a budget (coarse
  cells, noise, what a budget too small would need);
- :mod:`~participant.guard.replay`: a repeated round answered with the result paid for;
- :mod:`~participant.guard.secagg_client`, :mod:`~participant.guard.sessions`: secure
  aggregation, the bank's side, and where its state is kept;
- :mod:`~participant.guard.bank`: the bank's rows, validated and split;
- :mod:`~participant.guard.approval`: only the approved fedcredit release is answered;
- :mod:`~participant.guard.audit_trail`: the bank's signed audit log;
- :mod:`~participant.guard.gbdt_level`: a boosting level's query answered (the bank's
  rows coded on the run's edges; :mod:`~participant.guard.gbdt_bank` decides).

The package door is :mod:`participant`; import the module you need from here.
"""

from __future__ import annotations

__all__: list[str] = []
