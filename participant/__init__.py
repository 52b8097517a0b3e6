"""What a partner bank runs: data validation, local training, the Flower ClientApp."""

from __future__ import annotations

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
