"""The data set embedded in fedcredit (UCI default of credit card clients, CC BY 4.0)."""

from __future__ import annotations

import importlib.resources
from pathlib import Path

__all__ = ["embedded_data_path"]

EMBEDDED_FILE = "uci_default_credit_card.csv.gz"


def embedded_data_path() -> Path:
    """Path of the embedded CSV: Yeh & Lien (2009), UCI repository, CC BY 4.0."""
    return Path(str(importlib.resources.files("credit") / "data" / EMBEDDED_FILE))
