"""Differential privacy for fedcredit: accounting, the bank's ledger, noise, DP-SGD.

Secure aggregation lives in ``privacy.secagg``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from credit.lazy import lazy_getattr

if TYPE_CHECKING:
    from privacy.accounting import DpEvent, calibrate_noise_multiplier, epsilon_spent
    from privacy.budget import PrivacyBudget
    from privacy.dp_sgd import DpSgdSettings, train_dp_sgd, validate_for_dp
    from privacy.errors import LedgerError, PrivacyBudgetExceeded, PrivacyError
    from privacy.ledger import PrivacyLedger, RunPlan
    from privacy.noise import SecureGaussian

__all__ = [
    "DpEvent",
    "DpSgdSettings",
    "LedgerError",
    "PrivacyBudget",
    "PrivacyBudgetExceeded",
    "PrivacyError",
    "PrivacyLedger",
    "RunPlan",
    "SecureGaussian",
    "calibrate_noise_multiplier",
    "epsilon_spent",
    "train_dp_sgd",
    "validate_for_dp",
]

# Exports resolve on first use (see credit.lazy).
_EXPORTS = {
    "DpEvent": "privacy.accounting",
    "DpSgdSettings": "privacy.dp_sgd",
    "LedgerError": "privacy.errors",
    "PrivacyBudget": "privacy.budget",
    "PrivacyBudgetExceeded": "privacy.errors",
    "PrivacyError": "privacy.errors",
    "PrivacyLedger": "privacy.ledger",
    "RunPlan": "privacy.ledger",
    "SecureGaussian": "privacy.noise",
    "calibrate_noise_multiplier": "privacy.accounting",
    "epsilon_spent": "privacy.accounting",
    "train_dp_sgd": "privacy.dp_sgd",
    "validate_for_dp": "privacy.dp_sgd",
}


__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())
