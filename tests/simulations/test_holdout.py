"""Simulated banks' hold-out: one salt from the simulation's seed, never sent or written."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from flwr.app import Context, Message

from credit.run_config import RunConfig
from participant.contract import encode_content
from participant.guard.bank import prepare_bank
from participant.guard.settings import HoldOut
from privacy.budget import PrivacyBudget
from simulations.budgets import BudgetPolicy
from simulations.engine import SimulationPlan, plan_simulation
from simulations.settings import PartitionScheme, PartitionSettings
from tests.support.consortium import consortium_grid, run_in_process


def _held_out_ids(plan: SimulationPlan) -> set[int]:
    """The customers every bank of ``plan`` holds out, together."""
    ids: set[int] = set()
    for bank in plan.banks:
        ids |= set(prepare_bank(bank.source(), bank.holdout).test["ID"].tolist())
    return ids


@pytest.mark.parametrize(
    "partition",
    [PartitionSettings(), PartitionSettings(partition=PartitionScheme.COLUMN)],
    ids=["iid", "column"],
)
def test_simulated_banks_and_the_centralised_run_hold_out_the_same_customers(
    tmp_path: Path, partition: PartitionSettings
) -> None:
    def centralised(name: str, seed: int) -> SimulationPlan:
        """``fedcredit simulate --banks 1 --no-secure-aggregation``."""
        config = RunConfig(out_dir=str(tmp_path / name), seed=seed, secure_aggregation=False)
        return plan_simulation(config, n_banks=1)

    federated = plan_simulation(
        RunConfig(out_dir=str(tmp_path / "federated"), seed=5), n_banks=4, partition=partition
    )
    pooled, other_seed = centralised("centralised", 5), centralised("other-seed", 6)

    expected = HoldOut.for_simulation(fraction=0.2, seed=5, validation_fraction=0.2)
    assert len(federated.banks) > 1 and {bank.holdout for bank in federated.banks} == {expected}
    assert pooled.banks[0].holdout == expected
    assert _held_out_ids(federated) == _held_out_ids(pooled)
    assert _held_out_ids(other_seed) != _held_out_ids(pooled)


def test_the_salt_never_appears_in_a_runs_messages_or_files(
    tmp_path: Path, embedded_frame: pd.DataFrame, caplog: pytest.LogCaptureFixture
) -> None:
    """A small private, securely aggregated run: every message both ways, every file."""
    source = tmp_path / "data.csv"
    embedded_frame.iloc[:1200].to_csv(source, index=False)
    out = tmp_path / "out"
    config = RunConfig(out_dir=str(out), rounds=1, seed=11, batch_size=128)
    plan = plan_simulation(
        config,
        n_banks=3,
        partition=PartitionSettings(data=str(source)),
        budgets=BudgetPolicy(default=PrivacyBudget(max_epsilon=4.0)),
    )
    carried: list[bytes] = []

    def record(message: Message, context: Context, call_next: Callable[..., Message]) -> Message:
        reply = call_next(message, context)
        carried.extend([encode_content(message.content)])
        if reply.has_content():
            carried.append(encode_content(reply.content))
        return reply

    caplog.set_level("DEBUG")
    run_in_process(plan, grid=consortium_grid(plan, mods=[record]))

    salt = HoldOut.for_simulation(fraction=0.2, seed=11).salt.get_secret_value()
    files = [path.read_bytes() for path in out.rglob("*") if path.is_file()]
    assert len(carried) > 4 and any(path.suffix == ".jsonl" for path in out.rglob("*"))
    for blob in [*carried, *files, caplog.text.encode()]:
        for needle in (salt.encode(), salt.upper().encode(), bytes.fromhex(salt)):
            assert needle not in blob
