"""Where a bank keeps its secure-aggregation state between the messages of a run.

The state (per-run encryption key, the round's masking key and self-mask seed, the
shares other banks sealed for this bank) never leaves the bank. The guard service
keeps it in memory (:class:`MemorySessions`). A simulation's in-process guard keeps it
in the node's ``context.state`` (:class:`ContextSessions`), which Flower's Simulation
Engine carries from message to message whichever worker process runs the bank.
The bank's signing key is never part of the kept state: each message's
:class:`~privacy.secagg.signed.Identity` supplies it.

Beside it a store keeps where the run ends for the bank (:class:`RunEnd`): the secure
round whose unmask follows its held-out evaluation of the kept model, after which its
audit log closes the run; and, in a boosting run, the bank's rows' state between two
levels (:mod:`participant.guard.gbdt_state`'s bytes, bound to the bank's rows).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Protocol

from flwr.app import ConfigRecord, Context

from credit import message_keys
from privacy.secagg.protocol import Participant
from privacy.secagg.signed import Identity

__all__ = ["ContextSessions", "MemorySessions", "RunEnd", "SessionStore"]

_STATE = "participant-state"
_RUN_END = "secagg-run-end"
_BOOSTING = "gbdt-state"


@dataclass(frozen=True)
class RunEnd:
    """Where a run ends for the bank: the unmask of ``secure_round``, whose sum holds its
    held-out evaluation of round ``scored_round``'s model (the model the run keeps)."""

    secure_round: int
    scored_round: int


class SessionStore(Protocol):
    """A bank's secure-aggregation sessions, one per Flower run."""

    def session(self, node_id: int, run: int, identity: Identity) -> Participant:
        """This node's state for ``run`` (a new one for a run it has not seen)."""
        ...

    def save(self, participant: Participant) -> None:
        """Keep ``participant``'s state (replacing the run's previous state)."""
        ...

    def end_run_at(self, node_id: int, run: int, end: RunEnd) -> None:
        """Remember where ``run`` ends for this node (replacing an earlier end)."""
        ...

    def run_end(self, node_id: int, run: int) -> RunEnd | None:
        """Where ``run`` ends for this node, if its held-out evaluation was masked."""
        ...

    def boosting_state(self, node_id: int, run: int) -> bytes | None:
        """The node's boosting state in ``run`` (None: it answered no level of it)."""
        ...

    def save_boosting_state(self, node_id: int, run: int, state: bytes) -> None:
        """Keep the node's boosting state in ``run`` (replacing the run's previous one)."""
        ...


class MemorySessions:
    """Sessions in the guard process's memory, by run (the guard service's store)."""

    def __init__(self) -> None:
        self._sessions: dict[tuple[int, int], bytes] = {}
        self._ends: dict[tuple[int, int], RunEnd] = {}
        self._boosting: dict[tuple[int, int], bytes] = {}
        self._lock = threading.Lock()

    def session(self, node_id: int, run: int, identity: Identity) -> Participant:
        with self._lock:
            stored = self._sessions.get((node_id, run))
        if stored is None:
            return Participant(node_id, run, identity)
        return Participant.from_bytes(stored, identity)

    def save(self, participant: Participant) -> None:
        with self._lock:
            self._sessions[(participant.me, participant.run)] = participant.to_bytes()

    def end_run_at(self, node_id: int, run: int, end: RunEnd) -> None:
        with self._lock:
            self._ends[(node_id, run)] = end

    def run_end(self, node_id: int, run: int) -> RunEnd | None:
        with self._lock:
            return self._ends.get((node_id, run))

    def boosting_state(self, node_id: int, run: int) -> bytes | None:
        with self._lock:
            return self._boosting.get((node_id, run))

    def save_boosting_state(self, node_id: int, run: int, state: bytes) -> None:
        with self._lock:
            self._boosting[(node_id, run)] = state


class ContextSessions:
    """Sessions in the node's ``context.state`` (a simulation's in-process guard)."""

    def __init__(self, context: Context) -> None:
        self.context = context

    def session(self, node_id: int, run: int, identity: Identity) -> Participant:
        stored = self.context.state.config_records.get(message_keys.SECAGG)
        if stored is not None and _STATE in stored:
            value = stored[_STATE]
            if not isinstance(value, bytes):
                raise TypeError(f"the node's secure-aggregation state is {type(value).__name__}")
            participant = Participant.from_bytes(value, identity)
            if participant.run == run and participant.me == node_id:
                return participant
        return Participant(node_id, run, identity)

    def save(self, participant: Participant) -> None:
        self.context.state[message_keys.SECAGG] = ConfigRecord({_STATE: participant.to_bytes()})

    def end_run_at(self, node_id: int, run: int, end: RunEnd) -> None:
        self.context.state[_RUN_END] = ConfigRecord(
            {"node": node_id, "run": run, "secure-round": end.secure_round,
             "scored-round": end.scored_round}
        )  # fmt: skip

    def run_end(self, node_id: int, run: int) -> RunEnd | None:
        stored = self.context.state.config_records.get(_RUN_END)
        if stored is None or (stored.get("node"), stored.get("run")) != (node_id, run):
            return None
        secure_round, scored_round = stored["secure-round"], stored["scored-round"]
        if not isinstance(secure_round, int) or not isinstance(scored_round, int):
            raise TypeError("the node's run end is not a pair of rounds")
        return RunEnd(secure_round=secure_round, scored_round=scored_round)

    def boosting_state(self, node_id: int, run: int) -> bytes | None:
        stored = self.context.state.config_records.get(_BOOSTING)
        if stored is None or (stored.get("node"), stored.get("run")) != (node_id, run):
            return None
        state = stored["state"]
        if not isinstance(state, bytes):
            raise TypeError(f"the node's boosting state is {type(state).__name__}")
        return state

    def save_boosting_state(self, node_id: int, run: int, state: bytes) -> None:
        self.context.state[_BOOSTING] = ConfigRecord({"node": node_id, "run": run, "state": state})
