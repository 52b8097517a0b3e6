"""Privacy budgets of simulated banks: one for all (``--epsilon``) or a TOML file.

In a simulation the harness plays every bank, so it also sets their budgets. The
file form gives each bank its own::

    [default]            # optional: banks not listed below
    max_epsilon = 1.0
    delta = 1e-5         # optional: default 1 / (10 n_train) per bank

    [banks."EDUCATION=other"]
    max_epsilon = 0.5
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from credit.config_files import load_toml_model
from credit.errors import ConfigError
from privacy.budget import PrivacyBudget

__all__ = ["BudgetPolicy", "load_budget_file"]


class BudgetPolicy(BaseModel):
    """Budgets for a simulation's banks: a default and per-bank overrides."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    default: PrivacyBudget | None = None
    banks: dict[str, PrivacyBudget] = Field(default_factory=dict)

    def for_bank(self, bank: str) -> PrivacyBudget | None:
        """The bank's budget, or None when the bank trains without DP."""
        return self.banks.get(bank, self.default)

    def check_banks(self, known: list[str], *, source: str) -> None:
        """Refuse budgets for banks the simulation does not have."""
        unknown = sorted(set(self.banks) - set(known))
        if unknown:
            raise ConfigError(
                f"unknown participant '{unknown[0]}'; this simulation's banks are "
                f"{', '.join(known)}",
                source=source,
            )


def load_budget_file(path: Path) -> BudgetPolicy:
    """Read a budget TOML file; one-line :class:`ConfigError` naming the file otherwise."""
    policy = load_toml_model(BudgetPolicy, path)
    if policy.default is None and not policy.banks:
        raise ConfigError('no budgets: add [default] or [banks."NAME"]', source=str(path))
    return policy
