"""A privacy budget: the one definition every layer uses.

A budget is what a bank decides for its own customers: the most epsilon it will
ever spend on its data set and, optionally, its delta (``1 / (10 n_train)`` when
left out). The same type is what the consortium recommends (``consortium.toml``
``[privacy]``, copied into each bank's onboarding bundle), what a bank sets for its
SuperNode (``participant start --max-epsilon``), what a simulation gives each
simulated bank (``--epsilon`` or ``--budgets``), and, with its delta resolved for
the bank's training rows, what the bank's ledger records as its first line.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["PrivacyBudget", "default_delta"]


def default_delta(n_train: int) -> float:
    """The default delta of a bank with ``n_train`` training rows: 1 / (10 n_train)."""
    if n_train < 1:
        raise ValueError(f"n_train must be >= 1; got {n_train}")
    return 1.0 / (10 * n_train)


class PrivacyBudget(BaseModel):
    """A record-level (epsilon, delta) budget.

    Parameters
    ----------
    max_epsilon : float
        Most epsilon ever spent on this data set, > 0 and finite.
    delta : float, optional
        Target delta in (0, 1); ``None`` means 1 / (10 n_train) of the bank that
        uses the budget (see :meth:`for_rows`).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_epsilon: float = Field(gt=0, allow_inf_nan=False)
    delta: float | None = Field(default=None, gt=0, lt=1)

    def for_rows(self, n_train: int) -> PrivacyBudget:
        """This budget with its delta resolved for a bank of ``n_train`` training rows.

        Raises
        ------
        ValueError
            The configured delta is larger than 1 / (10 n_train): a delta that large
            would allow releasing a record outright with noticeable probability.
        """
        ceiling = default_delta(n_train)
        if self.delta is None:
            return self.model_copy(update={"delta": ceiling})
        if self.delta > ceiling:
            raise ValueError(
                f"delta {self.delta:.3g} is larger than 1/(10 n_train) = {ceiling:.3g} for "
                f"{n_train} training rows; choose a smaller delta"
            )
        return self
