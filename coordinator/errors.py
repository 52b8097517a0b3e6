"""Errors raised by the coordinator.

Hierarchy::

    credit.errors.FedcreditError
    └── CoordinatorError
        ├── RoundFailed(RuntimeError)   too few banks replied; the run stops cleanly
        ├── RoundAborted(RuntimeError)  dropouts left too few banks in one round: the
        │                               model stays as it was and the run goes on
        └── RunStopped(RuntimeError)    too few banks accept training (budgets spent):
                                        the last completed round's model is final

``RoundAborted`` and ``RunStopped`` are raised and caught inside the run driver;
only ``RoundFailed`` ends a run as a failure.
"""

from __future__ import annotations

from typing import ClassVar

from credit.errors import FedcreditError

__all__ = ["CoordinatorError", "RoundAborted", "RoundFailed", "RunStopped"]


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


class RoundAborted(CoordinatorError, RuntimeError):
    """A round lost too many banks to dropouts; nothing was summed, the model is unchanged.

    Parameters
    ----------
    server_round : int
        The aborted round.
    stage : str
        Where it was aborted (``advertise``, ``train``, ``unmask``).
    remaining : int
        Banks still in the round.
    required : int
        Banks the round needs (``min_banks``, or the secure-aggregation threshold).
    reason : str, optional
        Why, when it is not the count of banks left (e.g. shares that reconstruct nothing).
    """

    def __init__(
        self,
        *,
        server_round: int,
        stage: str,
        remaining: int,
        required: int,
        reason: str | None = None,
    ) -> None:
        self.server_round = server_round
        self.stage = stage
        self.remaining = remaining
        self.required = required
        why = reason or f"{remaining} bank(s) left, {required} required"
        super().__init__(
            f"round {server_round}: aborted at '{stage}': {why}; the global model is unchanged"
        )


class RunStopped(CoordinatorError, RuntimeError):
    """Too few banks accept a round because their privacy budgets are spent.

    Parameters
    ----------
    server_round : int
        The round that could not run.
    refused : int
        Banks that refused it.
    accepted : int
        Banks that accepted it.
    required : int
        The run's ``min_banks``.
    """

    def __init__(self, *, server_round: int, refused: int, accepted: int, required: int) -> None:
        self.server_round = server_round
        super().__init__(
            f"round {server_round}: {refused} bank(s) refused (privacy budget spent), "
            f"{accepted} accepted, {required} needed; "
            f"the model of round {server_round - 1} is final"
        )
