"""Where a bank keeps its secure-aggregation state between the messages of a run.

The state (per-run encryption key, the round's masking key and self-mask seed, the
shares other banks sealed for this bank) never leaves the bank. The guard service
keeps it in memory (:class:`MemorySessions`). A simulation's in-process guard keeps it
in the node's ``context.state`` (:class:`ContextSessions`), which Flower's Simulation
Engine carries from message to message whichever worker process runs the bank.
The bank's signing key is never part of the kept state: each message's
:class:`~privacy.secagg.signed.Identity` supplies it.
"""

from __future__ import annotations

import threading
from typing import Protocol

from flwr.app import ConfigRecord, Context

from credit import message_keys
from privacy.secagg.protocol import Participant
from privacy.secagg.signed import Identity

__all__ = ["ContextSessions", "MemorySessions", "SessionStore"]

_STATE = "participant-state"


class SessionStore(Protocol):
    """A bank's secure-aggregation sessions, one per Flower run."""

    def session(self, node_id: int, run: int, identity: Identity) -> Participant:
        """This node's state for ``run`` (a new one for a run it has not seen)."""
        ...

    def save(self, participant: Participant) -> None:
        """Keep ``participant``'s state (replacing the run's previous state)."""
        ...


class MemorySessions:
    """Sessions in the guard process's memory, by run (the guard service's store)."""

    def __init__(self) -> None:
        self._sessions: dict[tuple[int, int], bytes] = {}
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
