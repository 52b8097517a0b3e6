"""Re-check the epsilon each bank reported, from its ledger, with an independent accountant.

Google's ``dp_accounting`` library (not Opacus, which fedcredit uses) recomputes
epsilon for every bank in a run's ``metrics.json`` from the ledger's events alone:
with its RDP accountant (same orders) and with its privacy-loss-distribution (PLD)
accountant, which is tighter. A report passes when the independent RDP value agrees
with the reported one within 2 % and no bank exceeds its maximum.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dp_accounting
from dp_accounting import pld, rdp

from credit.errors import ConfigError
from privacy.accounting import RDP_ORDERS

__all__ = ["TOLERANCE", "BankCheck", "verify_run"]

TOLERANCE = 0.02
_PLD_DISCRETIZATION = 1e-4


@dataclass(frozen=True)
class BankCheck:
    """One bank's reported and independently recomputed epsilon."""

    bank: str
    reported: float
    independent_rdp: float
    independent_pld: float
    max_epsilon: float
    delta: float

    @property
    def agrees(self) -> bool:
        """Reported and independent RDP epsilon agree within :data:`TOLERANCE`."""
        if self.independent_rdp == 0:
            return self.reported == 0
        return abs(self.reported - self.independent_rdp) <= TOLERANCE * self.independent_rdp

    @property
    def within_budget(self) -> bool:
        """The independent epsilon is at most the bank's maximum (with rounding slack)."""
        return min(self.independent_rdp, self.independent_pld) <= self.max_epsilon * (1 + 1e-6)


def verify_run(run_dir: Path) -> list[BankCheck]:
    """Recompute every bank's epsilon from ``run_dir/metrics.json``.

    Raises
    ------
    ConfigError
        No readable ``metrics.json``, or it has no privacy ledgers.
    """
    metrics_path = run_dir / "metrics.json"
    try:
        document = json.loads(metrics_path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(
            "no metrics.json; pass a run's output folder", source=str(run_dir)
        ) from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"unreadable metrics.json ({exc})", source=str(metrics_path)) from exc
    ledgers = document.get("privacy") or {}
    if not ledgers:
        raise ConfigError(
            "the run has no privacy ledgers (it was not run with --epsilon or --budgets)",
            source=str(metrics_path),
        )
    return [_check(bank, ledger) for bank, ledger in sorted(ledgers.items())]


def _check(bank: str, ledger: dict[str, Any]) -> BankCheck:
    delta = float(ledger["delta"])
    events = ledger["events"]
    if events:
        composed = dp_accounting.ComposedDpEvent(
            [
                dp_accounting.SelfComposedDpEvent(
                    dp_accounting.PoissonSampledDpEvent(
                        float(e["sample_rate"]),
                        dp_accounting.GaussianDpEvent(float(e["noise_multiplier"])),
                    ),
                    int(e["steps"]),
                )
                for e in events
            ]
        )
        rdp_accountant = rdp.RdpAccountant(list(RDP_ORDERS))
        rdp_accountant.compose(composed)
        pld_accountant = pld.PLDAccountant(value_discretization_interval=_PLD_DISCRETIZATION)
        pld_accountant.compose(composed)
        independent_rdp = float(rdp_accountant.get_epsilon(delta))
        independent_pld = float(pld_accountant.get_epsilon(delta))
    else:
        independent_rdp = independent_pld = 0.0
    return BankCheck(
        bank=bank,
        reported=float(ledger["epsilon"]),
        independent_rdp=independent_rdp,
        independent_pld=independent_pld,
        max_epsilon=float(ledger["max_epsilon"]),
        delta=delta,
    )
