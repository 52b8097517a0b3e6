"""The privacy guard keys one noise stream per charged release and purpose."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from participant.guard.privacy_guard import PrivacyGuard, TrainingRequest
from privacy.budget import PrivacyBudget
from privacy.noise_keys import FreshNoiseKeys, NoiseKeys, NoisePurpose, SeededNoiseKeys

N_TRAIN = 4_000


def _request(server_round: int) -> TrainingRequest:
    return TrainingRequest(
        run="run-1",
        server_round=server_round,
        planned_rounds=10,
        local_epochs=1,
        batch_size=64,
        max_grad_norm=1.0,
    )


def _guard(path: Path, keys: NoiseKeys | None) -> PrivacyGuard:
    return PrivacyGuard(
        bank="bank-1",
        budget=PrivacyBudget(max_epsilon=1.0),
        ledger_path=path,
        n_train=N_TRAIN,
        noise_keys=keys,
    )


def _round_draws(guard: PrivacyGuard, server_round: int) -> tuple[np.ndarray, np.ndarray]:
    """A charged round's first DP-SGD noise draws and sampling words."""
    event = guard.charge_round(_request(server_round))
    noise = guard.noise(event, NoisePurpose.DP_SGD_NOISE).standard_normal(8)
    return noise, guard.sampler(event).words(8)


def test_seeded_banks_draw_the_same_noise_for_the_same_charges(tmp_path: Path) -> None:
    keys = SeededNoiseKeys(seed=5, bank="bank-1")
    first = _guard(tmp_path / "a.jsonl", keys)
    second = _guard(tmp_path / "b.jsonl", keys)
    for server_round in (1, 2):
        for mine, theirs in zip(
            _round_draws(first, server_round), _round_draws(second, server_round), strict=True
        ):
            np.testing.assert_array_equal(mine, theirs)


def test_every_charge_and_purpose_has_its_own_stream(tmp_path: Path) -> None:
    guard = _guard(tmp_path / "ledger.jsonl", SeededNoiseKeys(seed=5, bank="bank-1"))
    round_1 = _round_draws(guard, 1)
    round_2 = _round_draws(guard, 2)
    assert not np.array_equal(round_1[0], round_2[0])
    assert not np.array_equal(round_1[1], round_2[1])
    event = guard.ledger.events[-1]
    gaussians = {
        purpose: guard.noise(event, purpose).words(4).tobytes()
        for purpose in NoisePurpose
        if purpose is not NoisePurpose.DP_SGD_SAMPLING
    }
    sampling = guard.sampler(event).words(4).tobytes()
    assert len({*gaussians.values(), sampling}) == len(NoisePurpose)


def test_banks_keyed_by_the_os_draw_different_noise_for_the_same_charges(
    tmp_path: Path,
) -> None:
    first = _guard(tmp_path / "a.jsonl", None)
    second = _guard(tmp_path / "b.jsonl", FreshNoiseKeys())
    assert isinstance(first.noise_keys, FreshNoiseKeys)
    mine, theirs = _round_draws(first, 1), _round_draws(second, 1)
    assert not np.array_equal(mine[0], theirs[0])
    assert not np.array_equal(mine[1], theirs[1])


def test_noise_is_drawn_only_for_the_release_just_charged(tmp_path: Path) -> None:
    guard = _guard(tmp_path / "ledger.jsonl", SeededNoiseKeys(seed=5, bank="bank-1"))
    first = guard.charge_round(_request(1))
    guard.charge_round(_request(2))
    with pytest.raises(ValueError, match="only for the release just charged"):
        guard.noise(first, NoisePurpose.DP_SGD_NOISE)
    with pytest.raises(ValueError, match="only for the release just charged"):
        guard.sampler(first)
