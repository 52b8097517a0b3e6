"""A bank's privacy budget as it configures it (light: no accounting imports)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["BankBudget", "default_delta"]


def default_delta(n_train: int) -> float:
    """The default delta of a bank: 1 / (10 n_train)."""
    return 1.0 / (10 * n_train)


@dataclass(frozen=True, kw_only=True)
class BankBudget:
    """What a bank configured: its maximum epsilon, optional delta, ledger file."""

    max_epsilon: float
    ledger_path: Path
    delta: float | None = None

    def __post_init__(self) -> None:
        if not self.max_epsilon > 0:
            raise ValueError(f"max_epsilon must be > 0; got {self.max_epsilon}")
