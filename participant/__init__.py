"""What a partner bank runs.

``participant.app`` is the Flower ClientApp runtime (handlers, local training, the
privacy guard, the bank's side of secure aggregation, its audit trail);
``participant.node`` sets up and runs the bank's node (keys, data check, SuperNode).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from credit.lazy import lazy_getattr

if TYPE_CHECKING:
    from participant.app.bank import BankSource, PreparedBank, prepare_bank
    from participant.app.training import TrainSettings, predict_proba, train_locally

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
    "BankSource": "participant.app.bank",
    "PreparedBank": "participant.app.bank",
    "TrainSettings": "participant.app.training",
    "predict_proba": "participant.app.training",
    "prepare_bank": "participant.app.bank",
    "train_locally": "participant.app.training",
}


__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())
