"""Errors raised by the privacy package.

Hierarchy::

    credit.errors.FedcreditError
    └── PrivacyError
        ├── PrivacyBudgetExceeded(RuntimeError)   a release would pass the bank's maximum
        │   └── RunPlanChanged                    a round asks for another mechanism than planned
        └── LedgerError(ValueError)               a ledger file is unreadable or inconsistent
            ├── TornLedger                        its last line was cut by an interrupted write
            └── SplitChanged                      the bank's hold-out split is not the ledger's
"""

from __future__ import annotations

from pathlib import Path

from credit.errors import FedcreditError

__all__ = [
    "LedgerError",
    "PrivacyBudgetExceeded",
    "PrivacyError",
    "RunPlanChanged",
    "SplitChanged",
    "TornLedger",
]


class PrivacyError(FedcreditError):
    """Root of privacy errors."""


class PrivacyBudgetExceeded(PrivacyError, RuntimeError):
    """A bank refused a release that would take its spend past its maximum epsilon.

    Parameters
    ----------
    bank : str
        The refusing bank.
    spent : float
        Epsilon spent before the request.
    requested : float
        Epsilon the bank would have spent in total after the request.
    maximum : float
        The bank's ``max_epsilon``.
    server_round : int
        The refused round.
    detail : str, optional
        One line explaining the refusal in the bank's terms (e.g. what the set-up
        release and one round would cost at the most noise the bank adds); it
        replaces the arithmetic in the message and travels in the bank's refusal.
    """

    def __init__(
        self,
        *,
        bank: str,
        spent: float,
        requested: float,
        maximum: float,
        server_round: int,
        detail: str | None = None,
    ) -> None:
        self.bank = bank
        self.spent = spent
        self.requested = requested
        self.maximum = maximum
        self.server_round = server_round
        self.detail = detail
        super().__init__(self._describe())

    def _describe(self) -> str:
        if self.detail is not None:
            return (
                f"bank '{self.bank}' refused round {self.server_round}: {self.detail}; "
                "no training took place"
            )
        return (
            f"bank '{self.bank}' refused round {self.server_round}: epsilon would reach "
            f"{self.requested:.4f} (spent {self.spent:.4f}, maximum {self.maximum:.4f}); "
            "no training took place"
        )


class RunPlanChanged(PrivacyBudgetExceeded):
    """A round asks for another batch size, epoch count or clipping norm than its run's plan.

    The run's noise was calibrated for its plan; a round that runs another mechanism
    is refused (nothing charged) so every charged event is the planned one and
    ``fedcredit privacy verify`` can check it.

    Parameters
    ----------
    planned, asked : str
        The plan's and the round's batch size, local epochs and clipping norm, as text.
    **refusal
        As :class:`PrivacyBudgetExceeded` (``requested`` is the spend so far: nothing
        more is released).
    """

    def __init__(
        self,
        *,
        planned: str,
        asked: str,
        bank: str,
        spent: float,
        maximum: float,
        server_round: int,
    ) -> None:
        self.planned = planned
        self.asked = asked
        super().__init__(
            bank=bank, spent=spent, requested=spent, maximum=maximum, server_round=server_round
        )

    def _describe(self) -> str:
        return (
            f"bank '{self.bank}' refused round {self.server_round}: the run's privacy plan "
            f"fixed {self.planned}, the round asks for {self.asked}; a run keeps its plan "
            "(start a new run to change them); no training took place"
        )


class LedgerError(PrivacyError, ValueError):
    """A privacy ledger file is unreadable, edited or belongs to another bank."""


class TornLedger(LedgerError):
    """The ledger's last line was cut off by an interrupted write.

    Parameters
    ----------
    message : str
        One line naming the file, the line and the repair command.
    path : pathlib.Path
        The ledger file.
    line : int
        The torn line's number (1-based).
    """

    def __init__(self, message: str, *, path: Path, line: int) -> None:
        super().__init__(message)
        self.path = path
        self.line = line


class SplitChanged(LedgerError):
    """The bank's hold-out split differs from the one its ledger is bound to.

    Parameters
    ----------
    path : pathlib.Path
        The ledger file.
    recorded, requested : str
        The split digest the ledger records and the one now asked for.
    """

    def __init__(self, *, path: Path, recorded: str, requested: str) -> None:
        self.path = path
        self.recorded = recorded
        self.requested = requested
        super().__init__(
            f"{path}: the ledger is bound to hold-out split {recorded}; the bank's data and "
            f"hold-out now give split {requested}: restore them, or start a new ledger for "
            "a new data set or hold-out (training rows must never become test rows)"
        )
