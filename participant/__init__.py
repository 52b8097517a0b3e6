"""What a partner bank runs: data validation, local training, the Flower ClientApp."""

from __future__ import annotations

from typing import TYPE_CHECKING

from credit.lazy import lazy_getattr

if TYPE_CHECKING:
    from participant.bank import BankSource, PreparedBank, prepare_bank
    from participant.loading import BankData, load_bank_csv
    from participant.training import TrainSettings, predict_proba, train_locally

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
    "BankData": "participant.loading",
    "BankSource": "participant.bank",
    "PreparedBank": "participant.bank",
    "TrainSettings": "participant.training",
    "load_bank_csv": "participant.loading",
    "predict_proba": "participant.training",
    "prepare_bank": "participant.bank",
    "train_locally": "participant.training",
}


__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())
