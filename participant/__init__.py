"""What a partner bank runs: data validation, local training, the Flower ClientApp."""

from __future__ import annotations

from typing import TYPE_CHECKING

from credit.lazy import lazy_getattr

if TYPE_CHECKING:
    from credit.loading import BankData, load_bank_csv
    from participant.app.bank import BankSource, PreparedBank, prepare_bank
    from participant.app.training import TrainSettings, predict_proba, train_locally

__all__ = [
    "BankData",
    "BankSource",
    "PreparedBank",
    "TrainSettings",
    "load_bank_csv",
    "predict_proba",
    "prepare_bank",
    "train_locally",
]

# Exports resolve on first use (see credit.lazy).
_EXPORTS = {
    "BankData": "credit.loading",
    "BankSource": "participant.app.bank",
    "PreparedBank": "participant.app.bank",
    "TrainSettings": "participant.app.training",
    "load_bank_csv": "credit.loading",
    "predict_proba": "participant.app.training",
    "prepare_bank": "participant.app.bank",
    "train_locally": "participant.app.training",
}


__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())
