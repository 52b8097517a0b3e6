"""The guard in the relay's own process: how a simulation runs the bank-side rules.

A simulated bank's relay hands its requests to the same :class:`BankGuard` code the
guard service runs, without a socket. One guard per bank is kept per worker process
(:func:`guard_for`); secure aggregation's state travels in the node's
``context.state`` (:class:`~participant.guard.sessions.ContextSessions`), because
Flower's Simulation Engine may run a bank's next message in another worker.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from flwr.app import RecordDict

from participant.contract import GuardReply, GuardRequest
from participant.guard.bank_guard import BankGuard
from participant.guard.sessions import SessionStore
from participant.guard.settings import GuardSettings
from privacy.noise_keys import NoiseKeys

__all__ = ["InProcessLink", "guard_for"]


@functools.lru_cache(maxsize=64)
def guard_for(settings: GuardSettings, noise_keys: NoiseKeys | None = None) -> BankGuard:
    """The guard of the bank with ``settings`` in this process (loaded once).

    ``noise_keys``: its noise streams' keys (default: fresh from ``os.urandom``); a
    simulation with reproducible noise passes keys derived from its seed.
    """
    return BankGuard(settings, noise_keys=noise_keys)


@dataclass(frozen=True)
class InProcessLink:
    """A :class:`~participant.contract.GuardLink` to a guard in this process."""

    guard: BankGuard
    sessions: SessionStore

    def ask(self, request: GuardRequest, content: RecordDict) -> tuple[GuardReply, RecordDict]:
        """The guard's answer to ``request``."""
        return self.guard.answer(request, content, self.sessions)
