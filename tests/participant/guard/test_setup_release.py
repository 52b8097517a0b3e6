"""The set-up release under a budget: per-class coarse cells, no clipping, the bank's share,
a clear refusal.

Before issue 12 a bank noised each of the coordinator's 1,024 grid cells with a fixed
noise multiplier of 20 and clipped the noisy counts at zero: about 0.17 epsilon at any
budget, so a bank with max epsilon 0.1 refused every run ("would reach inf").
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from flwr.app import ArrayRecord, MessageType, RecordDict
from pydantic import ValidationError

from credit import message_keys as keys
from credit.feature_stats import (
    FeatureStats,
    coarse_cells,
    compute_feature_stats,
    grid_edges,
    merge_cells,
    numeric_from_cells,
    spread_cells,
)
from credit.loading import load_bank_csv
from credit.messages import Refusal, Task, feature_stats_from_record
from credit.records import record_of
from credit.schema import DatasetSchema
from participant.guard import privacy_guard
from participant.guard.bank_guard import BankGuard
from participant.guard.privacy_guard import PrivacyGuard, TrainingRequest
from participant.guard.settings import GuardSettings, SetupReleasePolicy
from privacy.accounting import epsilon_by_rows
from privacy.budget import PrivacyBudget
from privacy.errors import PrivacyBudgetExceeded
from tests.participant.guard.bank_messages import (
    JoinedBank,
    acme_settings,
    context,
    guarded_app,
    run_instructions,
)

N_ROWS = 1_000
GRID_BINS = 1024


def _request(**changes: object) -> TrainingRequest:
    fields: dict[str, object] = {
        "run": "run-1",
        "server_round": 0,
        "planned_rounds": 10,
        "local_epochs": 1,
        "batch_size": 64,
        "max_grad_norm": 1.0,
    }
    fields.update(changes)
    return TrainingRequest(**fields)  # type: ignore[arg-type]


def _guard(path: Path, max_epsilon: float, n_train: int = N_ROWS, **policy: float) -> PrivacyGuard:
    return PrivacyGuard(
        bank="bank-1",
        budget=PrivacyBudget(max_epsilon=max_epsilon),
        ledger_path=path,
        n_train=n_train,
        setup=SetupReleasePolicy(**policy),  # type: ignore[arg-type]
    )


@pytest.fixture
def stats(schema: DatasetSchema, write_bank_csv: Callable[..., Path]) -> FeatureStats:
    """A bank's exact statistics on the coordinator's default grid (1,024 cells)."""
    frame = load_bank_csv(write_bank_csv(N_ROWS), schema).frame
    return compute_feature_stats(frame, schema, GRID_BINS)


# -- coarse cells (credit.feature_stats helpers) --------------------------------------


@pytest.mark.parametrize(
    ("grid_bins", "cells", "sizes"),
    [(1024, 64, {16}), (1000, 64, {15, 16}), (70, 64, {1, 2}), (32, 64, {1}), (5, 64, {1})],
)
def test_grid_cells_are_merged_into_even_runs(grid_bins: int, cells: int, sizes: set[int]) -> None:
    bounds = coarse_cells(grid_bins, cells)
    assert bounds[0] == 0 and bounds[-1] == grid_bins
    assert len(bounds) == min(cells, grid_bins) + 1
    assert set(np.diff(bounds).tolist()) == sizes
    histogram = np.arange(grid_bins, dtype=np.float64)
    merged = merge_cells(histogram, bounds)
    assert merged.sum() == pytest.approx(histogram.sum())
    spread = spread_cells(merged, bounds)
    assert spread.shape == (grid_bins,)
    np.testing.assert_allclose(merge_cells(spread, bounds), merged)


# -- the release --------------------------------------------------------------------


def test_a_budgeted_release_keeps_the_grid_and_noises_coarse_cells(
    tmp_path: Path, schema: DatasetSchema, stats: FeatureStats
) -> None:
    """The reply has the coordinator's 1,024 cells per numeric feature and class, constant
    over each run of 16 (64 coarse cells), and the noise on the coarse counts of either
    class, and on every level count, has the calibrated deviation for F = 19 inputs."""
    guard = _guard(tmp_path / "ledger.jsonl", max_epsilon=1.0)
    noisy = guard.release_feature_stats(stats, schema, _request())
    (release,) = guard.ledger.events
    assert stats.features == 19 == len(schema.input_features)  # 13 numeric, 6 categorical
    deviation = release.noise_multiplier * math.sqrt(19)
    assert release.max_grad_norm == pytest.approx(math.sqrt(19))
    bounds = coarse_cells(GRID_BINS, 64)
    noise = []
    for name, exact in stats.numeric.items():
        released = noisy.numeric[name].cells
        for got, was in (
            (released.events, exact.cells.events),
            (released.non_events, exact.cells.non_events),
        ):
            assert got.shape == (GRID_BINS,)
            cells = got.reshape(64, 16)
            np.testing.assert_array_equal(cells, cells[:, :1].repeat(16, axis=1))
            noise.append(merge_cells(got, bounds) - merge_cells(was, bounds))
    for name, exact_levels in stats.categorical.items():
        released_levels = noisy.categorical[name]
        noise.append(released_levels.events - exact_levels.events)
        noise.append(released_levels.non_events - exact_levels.non_events)
    # 13 features x 2 classes x 64 coarse cells and 6 x 2 x 11 levels: the sample
    # deviation is within 10 % of the calibrated one
    assert np.std(np.concatenate(noise)) == pytest.approx(deviation, rel=0.1)


def test_a_policy_of_32_cells_noises_32_cells_per_class(
    tmp_path: Path, schema: DatasetSchema, stats: FeatureStats
) -> None:
    guard = _guard(tmp_path / "ledger.jsonl", max_epsilon=1.0, max_bins=32)
    noisy = guard.release_feature_stats(stats, schema, _request())
    for numeric in noisy.numeric.values():
        for counts in (numeric.cells.events, numeric.cells.non_events):
            assert len(np.unique(counts)) <= 32
            cells = counts.reshape(32, 32)
            np.testing.assert_array_equal(cells, cells[:, :1].repeat(32, axis=1))


def test_the_bank_clips_nothing_and_derives_its_moments_from_the_noisy_histogram(
    tmp_path: Path, schema: DatasetSchema, stats: FeatureStats
) -> None:
    """Noise before clipping: empty cells come back negative as often as positive (the
    coordinator clips only the banks' sum), and the moments are the noisy class-summed
    histogram's."""
    guard = _guard(tmp_path / "ledger.jsonl", max_epsilon=1.0)
    noisy = guard.release_feature_stats(stats, schema, _request())
    by_name = {feature.name: feature for feature in schema.numeric}
    bounds = coarse_cells(GRID_BINS, 64)
    empty_cells, values = [], []
    for name, exact in stats.numeric.items():
        released = noisy.numeric[name]
        for got, was in (
            (released.cells.events, exact.cells.events),
            (released.cells.non_events, exact.cells.non_events),
        ):
            empty_cells.append(spread_cells(merge_cells(was, bounds), bounds) == 0)
            values.append(got)
        derived = numeric_from_cells(released.cells, grid_edges(by_name[name], GRID_BINS))
        np.testing.assert_array_equal(
            released.histogram, released.cells.events + released.cells.non_events
        )
        assert released.total == pytest.approx(derived.total)
        assert released.total_squares == pytest.approx(derived.total_squares)
        assert released.count == derived.count
    empty = np.concatenate(values)[np.concatenate(empty_cells)]
    assert empty.size > 1_000  # 1,000 rows leave most coarse cells of most features empty
    assert 0.4 < float((empty < 0).mean()) < 0.6


@pytest.mark.parametrize("max_epsilon", [0.1, 0.5, 1.0, 4.0])
@pytest.mark.parametrize("share", [0.1, 0.2])
def test_the_release_alone_costs_the_bank_s_share_of_its_budget(
    tmp_path: Path,
    schema: DatasetSchema,
    stats: FeatureStats,
    max_epsilon: float,
    share: float,
) -> None:
    guard = _guard(tmp_path / "ledger.jsonl", max_epsilon=max_epsilon, budget_share=share)
    guard.release_feature_stats(stats, schema, _request())
    (release,) = guard.ledger.events
    assert release.kind == "gaussian-release" and (release.sample_rate, release.steps) == (1, 1)
    cost = epsilon_by_rows(guard.ledger.events, guard.ledger.delta)["train"]
    assert share * max_epsilon * 0.995 <= cost <= share * max_epsilon
    # ... and the planned rounds, calibrated after it, spend the rest.
    for server_round in range(1, 11):
        guard.charge_round(_request(server_round=server_round))
    assert 0.97 * max_epsilon < guard.ledger.epsilon <= max_epsilon


def test_the_fixed_noise_multiplier_is_gone(
    tmp_path: Path, schema: DatasetSchema, stats: FeatureStats
) -> None:
    """The old release used noise multiplier 20 whatever the budget."""
    assert not hasattr(privacy_guard, "STATS_NOISE_MULTIPLIER")
    multipliers = set()
    for max_epsilon in (0.5, 1.0, 2.0):
        guard = _guard(tmp_path / f"ledger-{max_epsilon}.jsonl", max_epsilon=max_epsilon)
        guard.release_feature_stats(stats, schema, _request())
        multipliers.add(guard.ledger.events[0].noise_multiplier)
    assert len(multipliers) == 3 and 20.0 not in multipliers


def test_a_budget_of_0_1_pays_for_the_set_up_and_ten_rounds(
    tmp_path: Path, schema: DatasetSchema, stats: FeatureStats
) -> None:
    """Refused before (the fixed release alone cost about 0.17)."""
    guard = _guard(tmp_path / "ledger.jsonl", max_epsilon=0.1, n_train=379)  # smallest EDUCATION
    guard.release_feature_stats(stats, schema, _request())
    for server_round in range(1, 11):
        guard.charge_round(_request(server_round=server_round))
    assert [e.kind for e in guard.ledger.events] == ["gaussian-release"] + ["dp-sgd"] * 10
    assert guard.ledger.epsilon <= 0.1


# -- refusing a budget too small for any run ------------------------------------------


def test_a_budget_too_small_is_refused_with_what_the_set_up_and_a_round_cost(
    tmp_path: Path, schema: DatasetSchema, stats: FeatureStats
) -> None:
    guard = _guard(tmp_path / "ledger.jsonl", max_epsilon=0.001)
    with pytest.raises(PrivacyBudgetExceeded) as refused:
        guard.release_feature_stats(stats, schema, _request())
    refusal = refused.value
    assert guard.ledger.events == () and guard.ledger.plans == ()
    assert math.isfinite(refusal.requested) and refusal.requested > 0.001
    detail = refusal.detail or ""
    assert detail.startswith("max epsilon 0.001 cannot pay for the set-up release (epsilon ≥ 0.00")
    assert "at noise multiplier 1000; its share is 0.0001)" in detail
    assert "and one round of DP-SGD (epsilon ≥ 0.00" in detail
    assert "raise the budget or the bank's set-up share, or use public feature statistics" in detail
    assert "\n" not in detail and len(detail) < 400
    assert str(refusal) == f"bank 'bank-1' refused round 0: {detail}; no training took place"


def test_a_share_too_small_for_the_release_is_refused_though_the_budget_is_not(
    tmp_path: Path, schema: DatasetSchema, stats: FeatureStats
) -> None:
    """Max epsilon 0.01 covers the release at the largest noise (about 0.0018 for 1,000
    rows), but not at a 10 % share."""
    guard = _guard(tmp_path / "ledger.jsonl", max_epsilon=0.01)
    with pytest.raises(PrivacyBudgetExceeded, match=r"its share is 0\.001\)"):
        guard.release_feature_stats(stats, schema, _request())
    generous = _guard(tmp_path / "other.jsonl", max_epsilon=0.01, budget_share=0.5)
    generous.release_feature_stats(stats, schema, _request())
    assert len(generous.ledger.events) == 1


def test_rounds_that_do_not_fit_after_the_release_are_refused_with_their_cost(
    tmp_path: Path, schema: DatasetSchema, stats: FeatureStats
) -> None:
    """A second run: its release fits its share, but the first run spent the rest."""
    guard = _guard(tmp_path / "ledger.jsonl", max_epsilon=0.1)
    guard.release_feature_stats(stats, schema, _request(run="run-0"))
    for server_round in range(1, 11):
        guard.charge_round(_request(run="run-0", server_round=server_round))
    before = guard.ledger.events
    with pytest.raises(PrivacyBudgetExceeded) as refused:
        guard.release_feature_stats(stats, schema, _request())
    detail = refused.value.detail or ""
    assert detail.startswith("max epsilon 0.1 cannot pay for the set-up release (epsilon 0.01,")
    assert "; the set-up and all 10 planned rounds after 0.1 spent: epsilon ≥ 0.1" in detail
    assert detail.endswith(
        "raise the budget or plan fewer rounds, or use public feature statistics"
    )
    assert refused.value.requested > 0.1 and guard.ledger.events == before


def test_a_run_without_set_up_release_names_the_round_s_cost(tmp_path: Path) -> None:
    """Public feature statistics: no release, and the refusal says what one round costs."""
    guard = _guard(tmp_path / "ledger.jsonl", max_epsilon=0.001)
    with pytest.raises(PrivacyBudgetExceeded) as refused:
        guard.charge_round(_request(server_round=1))
    detail = refused.value.detail or ""
    assert detail.startswith("max epsilon 0.001 cannot pay for one round of DP-SGD (epsilon ≥ ")
    assert "set-up" not in detail and detail.endswith("raise the budget or plan fewer rounds")


# -- through the bank's handlers -----------------------------------------------------


def _set_up(settings: GuardSettings, schema: DatasetSchema, grid_bins: int) -> RecordDict:
    """The reply of a bank with ``settings`` to a new run's feature-stats query."""
    guard = BankGuard(settings)
    bank = JoinedBank(app=guarded_app(guard), context=context(), guard=guard)
    content = RecordDict()
    run_instructions(schema, planned_rounds=10).query(Task.FEATURE_STATS, grid_bins=grid_bins).put(
        content
    )
    return bank.send(MessageType.QUERY, content).content


def test_the_bank_s_policy_reaches_its_reply(
    tmp_path: Path, schema: DatasetSchema, write_bank_csv: Callable[..., Path]
) -> None:
    settings = acme_settings(write_bank_csv(600), max_epsilon=1.0)
    settings = settings.model_copy(update={"setup": SetupReleasePolicy(max_bins=32)})
    reply = _set_up(settings, schema, grid_bins=1000)
    released = feature_stats_from_record(
        record_of(reply, keys.FEATURE_STATS, ArrayRecord), schema=schema, grid_bins=1000
    )
    bounds = coarse_cells(1000, 32)
    for numeric in released.numeric.values():
        for counts in (numeric.cells.events, numeric.cells.non_events):
            assert counts.shape == (1000,)
            for start, stop in itertools.pairwise(bounds):
                assert np.ptp(counts[start:stop]) == 0


def test_the_refusal_reaching_the_coordinator_names_both_costs(
    tmp_path: Path, schema: DatasetSchema, write_bank_csv: Callable[..., Path]
) -> None:
    settings = acme_settings(write_bank_csv(600), max_epsilon=0.001)
    refusal = Refusal.take(_set_up(settings, schema, grid_bins=1024))
    assert refusal.detail is not None and math.isfinite(refusal.requested)
    text = refusal.text()
    assert text.startswith(
        "bank 'acme' refused round 0 (PrivacyBudgetExceeded): max epsilon 0.001 cannot pay "
        "for the set-up release (epsilon ≥ "
    )
    assert "one round of DP-SGD (epsilon ≥ " in text and "inf" not in text


# -- the policy ------------------------------------------------------------------------


def test_the_setup_policy_defaults_and_bounds(tmp_path: Path) -> None:
    assert SetupReleasePolicy() == SetupReleasePolicy(max_bins=64, budget_share=0.1)
    settings = acme_settings(tmp_path / "acme.csv", max_epsilon=1.0)
    assert settings.setup == SetupReleasePolicy()
    for wrong in ({"max_bins": 31}, {"max_bins": 65}, {"budget_share": 0}, {"budget_share": 0.6}):
        with pytest.raises(ValidationError):
            SetupReleasePolicy(**wrong)
