"""Differential privacy for fedcredit: accounting, the bank's ledger, noise, DP-SGD.

Secure aggregation will live in ``privacy.secagg`` (next capability).
"""

from __future__ import annotations

from privacy.accounting import DpEvent, calibrate_noise_multiplier, epsilon_spent
from privacy.dp_sgd import DpSgdSettings, train_dp_sgd, validate_for_dp
from privacy.errors import LedgerError, PrivacyBudgetExceeded, PrivacyError
from privacy.ledger import PrivacyBudget, PrivacyLedger, RunPlan
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
