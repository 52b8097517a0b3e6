"""Errors raised by the coordinator.

Hierarchy::

    credit.errors.FedcreditError
    └── CoordinatorError
        └── RoundFailed(RuntimeError)   too few banks replied; the run stops cleanly
"""

from __future__ import annotations

from typing import ClassVar

from credit.errors import FedcreditError

__all__ = ["CoordinatorError", "RoundFailed"]


class CoordinatorError(FedcreditError):
    """Root of coordinator-side errors: a run that failed (exit code 1)."""

    exit_code: ClassVar[int] = 1


class RoundFailed(CoordinatorError, RuntimeError):
    """A round got fewer usable replies than the run's minimum.

    Parameters
    ----------
    stage : str
        ``feature-stats``, ``train`` or ``evaluate``.
    server_round : int
        The round (0 for the set-up query).
    received : int
        Usable replies.
    required : int
        The run's ``min_banks``.
    reasons : list of str
        One line per failed bank, from its error reply.
    """

    def __init__(
        self, *, stage: str, server_round: int, received: int, required: int, reasons: list[str]
    ) -> None:
        self.stage = stage
        self.server_round = server_round
        self.received = received
        self.required = required
        self.reasons = reasons
        detail = "; ".join(reasons) if reasons else "no error reported"
        super().__init__(
            f"round {server_round} ({stage}): {received} usable replies, {required} required "
            f"({detail}); the global model is unchanged"
        )
