"""The attacker's target: a bank's held-out customer, and the bank's file with its label flipped."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from credit.encoding import FeatureEncoder, StatsSource, fit_encoder
from credit.schema import DatasetSchema
from participant.guard.bank_guard import BankGuard
from tests.participant.guard.bank_messages import acme_settings


@pytest.fixture
def attack(
    tmp_path: Path, schema: DatasetSchema, write_bank_csv: Callable[..., Path]
) -> tuple[Path, Path, pd.DataFrame, FeatureEncoder]:
    """Two neighbouring bank files (the target's label flipped) and the attacker's view.

    The target is one of the bank's held-out customers, which the test (not the
    attacker, who does not know the bank's secret salt) picks for it.
    """
    original = write_bank_csv(600, name="acme")
    guard = BankGuard(acme_settings(original, max_epsilon=None))
    held_out = guard.bank.test
    encoder = fit_encoder(schema, source=StatsSource.PUBLIC)
    codes = encoder.transform(held_out)
    unique = [i for i in range(len(codes)) if (codes == codes[i]).all(axis=1).sum() == 1]
    target = held_out.iloc[[unique[0]]]
    frame = pd.read_csv(original)
    flipped = frame.copy()
    row = flipped[schema.id_column] == target[schema.id_column].iloc[0]
    flipped.loc[row, schema.target] = 1 - flipped.loc[row, schema.target]
    neighbour = tmp_path / "acme-flipped.csv"
    flipped.to_csv(neighbour, index=False)
    return original, neighbour, target, encoder
