"""Errors raised by the privacy package.

Hierarchy::

    credit.errors.FedcreditError
    └── PrivacyError
        ├── PrivacyBudgetExceeded(RuntimeError)   a release would pass the bank's maximum
        └── LedgerError(ValueError)               a ledger file is unreadable or inconsistent
"""

from __future__ import annotations

from credit.errors import FedcreditError

__all__ = ["LedgerError", "PrivacyBudgetExceeded", "PrivacyError"]


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
    """

    def __init__(
        self, *, bank: str, spent: float, requested: float, maximum: float, server_round: int
    ) -> None:
        self.bank = bank
        self.spent = spent
        self.requested = requested
        self.maximum = maximum
        self.server_round = server_round
        super().__init__(
            f"bank '{bank}' refused round {server_round}: epsilon would reach {requested:.4f} "
            f"(spent {spent:.4f}, maximum {maximum:.4f}); no training took place"
        )


class LedgerError(PrivacyError, ValueError):
    """A privacy ledger file is unreadable, edited or belongs to another bank."""
