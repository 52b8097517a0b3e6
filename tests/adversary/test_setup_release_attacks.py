"""A malicious coordinator asks for the per-class set-up release in ways that would leak.

The set-up release carries each model input's counts per class (default or not) over
its cells. A coordinator that reads one bank's exact per-class counts on a fine grid
learns the label of every customer alone in a cell. Against the bank's guard:

* a bank with a budget noises its counts on at most its policy's coarse cells per
  class, whatever grid the coordinator asks for, and charges one release of
  sensitivity sqrt(F) from its own schema (F = 19 model inputs here);
* a grid finer than any bank computes is refused as malformed;
* a second set-up release in the same run (to average the noise away) is refused;
* a bank that requires secure aggregation refuses to release its counts in the clear
  (where the coordinator would read them one bank at a time), and logs the refusal.
  The same request to a bank that allows plain releases and has no budget shows what
  the refusal prevents: the exact per-class counts give away the label of a customer
  alone in a grid cell.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from flwr.app import ArrayRecord, MessageType, RecordDict

from credit import message_keys as keys
from credit.feature_stats import MAX_GRID_BINS, FeatureStats, grid_edges, transform_values
from credit.messages import Task, feature_stats_from_record
from credit.records import record_of
from credit.schema import DatasetSchema
from participant.guard.bank_guard import BankGuard
from participant.relay.client_app import GuardRefused
from privacy.accounting import DpEvent, epsilon_by_rows
from privacy.ledger import read_ledger
from tests.participant.guard.bank_messages import (
    acme_settings,
    context,
    guarded_app,
    message,
    run_instructions,
)

N_ROWS = 600


def _set_up_query(schema: DatasetSchema, grid_bins: int) -> RecordDict:
    content = RecordDict()
    run_instructions(schema).query(Task.FEATURE_STATS, grid_bins=grid_bins).put(content)
    return content


def _ask(guard: BankGuard, content: RecordDict) -> RecordDict:
    reply = guarded_app(guard)(message(MessageType.QUERY, content), context())
    if reply.has_error():
        raise GuardRefused(reply.error.reason)
    return reply.content


def _released(reply: RecordDict, schema: DatasetSchema, grid_bins: int) -> FeatureStats:
    record = record_of(reply, keys.FEATURE_STATS, ArrayRecord)
    return feature_stats_from_record(record, schema=schema, grid_bins=grid_bins)


def test_a_grid_finer_than_the_bank_s_policy_is_noised_on_the_policy_s_cells(
    tmp_path: Path, schema: DatasetSchema, write_bank_csv: Callable[..., Path]
) -> None:
    """The finest grid a bank computes, 65,536 cells: the reply still holds at most 64
    distinct counts per numeric input and class, and the release costs its share."""
    guard = BankGuard(acme_settings(write_bank_csv(N_ROWS), max_epsilon=1.0))

    released = _released(_ask(guard, _set_up_query(schema, MAX_GRID_BINS)), schema, MAX_GRID_BINS)

    for numeric in released.numeric.values():
        for counts in (numeric.cells.events, numeric.cells.non_events):
            runs = counts.reshape(64, MAX_GRID_BINS // 64)
            np.testing.assert_array_equal(runs, runs[:, :1].repeat(MAX_GRID_BINS // 64, axis=1))
    (release,) = _setup_releases(guard)
    assert release.max_grad_norm == pytest.approx(math.sqrt(19))
    contents = read_ledger(_ledger(guard))
    assert epsilon_by_rows(contents.events, contents.delta)["train"] <= 0.1  # its share


def _ledger(guard: BankGuard) -> Path:
    path = guard.settings.ledger_path
    assert path is not None
    return path


def _setup_releases(guard: BankGuard) -> list[DpEvent]:
    events = read_ledger(_ledger(guard)).events
    return [event for event in events if event.kind == "gaussian-release"]


def test_a_grid_finer_than_any_bank_computes_is_refused(
    tmp_path: Path, schema: DatasetSchema, write_bank_csv: Callable[..., Path]
) -> None:
    guard = BankGuard(acme_settings(write_bank_csv(N_ROWS), max_epsilon=None))
    content = _set_up_query(schema, 64)
    content[keys.CONFIG]["grid-bins"] = MAX_GRID_BINS + 1

    with pytest.raises(GuardRefused, match="grid-bins"):
        _ask(guard, content)


def test_a_second_set_up_release_in_one_run_is_refused(
    tmp_path: Path, schema: DatasetSchema, write_bank_csv: Callable[..., Path]
) -> None:
    """Averaging two noisy releases of the same run would halve the noise variance."""
    guard = BankGuard(acme_settings(write_bank_csv(N_ROWS), max_epsilon=1.0))
    _ask(guard, _set_up_query(schema, 1024))
    ledger = _ledger(guard)
    spent = ledger.read_text()

    with pytest.raises(GuardRefused, match="already made its set-up release"):
        _ask(guard, _set_up_query(schema, 1024))

    assert ledger.read_text() == spent


def test_a_bank_that_requires_secure_aggregation_refuses_a_plain_set_up_release(
    tmp_path: Path, schema: DatasetSchema, write_bank_csv: Callable[..., Path]
) -> None:
    data = write_bank_csv(N_ROWS)
    audit = tmp_path / "audit.jsonl"
    settings = acme_settings(data, max_epsilon=None, audit_log=audit)
    requiring = BankGuard(settings.model_copy(update={"require_secure_aggregation": True}))
    replies: list[RecordDict] = []

    with pytest.raises(GuardRefused, match="set-up aggregates only through secure aggregation"):
        replies.append(_ask(requiring, _set_up_query(schema, MAX_GRID_BINS)))

    assert replies == []
    last = json.loads(audit.read_text(encoding="utf-8").splitlines()[-1])
    assert last["event"] == "refusal" and last["data"]["kind"] == "plain-update"

    # What the refusal prevents: the exact per-class counts of a bank without a budget
    # show the label of a customer whose value is alone in its grid cell.
    allowing = BankGuard(acme_settings(data, max_epsilon=None))
    released = _released(
        _ask(allowing, _set_up_query(schema, MAX_GRID_BINS)), schema, MAX_GRID_BINS
    )
    train = allowing.bank.train
    target, label = _alone_in_a_cell(train, schema, "BILL_AMT1")
    cells = released.numeric["BILL_AMT1"].cells
    assert (cells.events[target], cells.non_events[target]) == ((1, 0) if label else (0, 1))


def _alone_in_a_cell(frame: pd.DataFrame, schema: DatasetSchema, name: str) -> tuple[int, int]:
    """A grid cell holding one training row's value, and that row's label."""
    feature = next(f for f in schema.numeric if f.name == name)
    values = transform_values(frame[name].to_numpy(np.float64), feature.transform)
    cells = np.clip(
        np.searchsorted(grid_edges(feature, MAX_GRID_BINS), values, side="right") - 1,
        0,
        MAX_GRID_BINS - 1,
    )
    unique, counts = np.unique(cells, return_counts=True)
    cell = int(unique[counts == 1][0])
    row = int(np.flatnonzero(cells == cell)[0])
    return cell, int(frame[schema.target].iloc[row])


def test_a_budgeted_release_costs_the_same_whatever_the_grid(
    tmp_path: Path, schema: DatasetSchema, write_bank_csv: Callable[..., Path]
) -> None:
    """The charge depends on the bank's schema (F) and budget share, not on the grid."""
    data = write_bank_csv(N_ROWS)
    releases = []
    for grid_bins in (2, 1024, MAX_GRID_BINS):
        ledger = tmp_path / f"ledger-{grid_bins}.jsonl"
        guard = BankGuard(acme_settings(data, max_epsilon=1.0, ledger_path=ledger))
        _ask(guard, _set_up_query(schema, grid_bins))
        releases += [(e.noise_multiplier, e.max_grad_norm) for e in _setup_releases(guard)]
    assert len(releases) == 3 and len(set(releases)) == 1
    assert releases[0][1] == pytest.approx(math.sqrt(19))
