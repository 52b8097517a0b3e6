"""What a partner bank runs.

``participant.guard`` is the bank's guard, which takes every decision that protects the
bank (handlers, local training, the privacy guard, the bank's side of secure
aggregation, its audit trail); ``participant.relay`` is the Flower ClientApp, a relay
from each message to the guard; ``participant.contract`` is what the two share;
``participant.node`` sets up and runs the bank's node (keys, data check, the guard
service and its SuperNode).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from credit.lazy import lazy_getattr

if TYPE_CHECKING:
    from participant.guard.bank import BankSource, PreparedBank, prepare_bank
    from participant.guard.training import TrainSettings, predict_proba, train_locally

__all__ = [
    "BankSource",
    "PreparedBank",
    "TrainSettings",
    "predict_proba",
    "prepare_bank",
    "train_locally",
]

# Exports resolve on first use (see credit.lazy).
_EXPORTS = {
    "BankSource": "participant.guard.bank",
    "PreparedBank": "participant.guard.bank",
    "TrainSettings": "participant.guard.training",
    "predict_proba": "participant.guard.training",
    "prepare_bank": "participant.guard.bank",
    "train_locally": "participant.guard.training",
}


__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())
