"""The coordinator's checkpoint: round trip, crash safety, and refusals to resume."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flwr.app import ArrayRecord

from coordinator.app.checkpoint import CHECKPOINT_DIR, load_checkpoint, save_checkpoint
from coordinator.app.run_state import (
    BankInfo,
    PendingRound,
    RoundResult,
    RunState,
    ScoreHistograms,
)
from credit.encoding import StatsSource, fit_encoder
from credit.errors import ConfigError
from credit.messages import LedgerEvent, LedgerSummary, Refusal
from credit.metrics import CreditMetrics
from credit.model_spec import ModelSpec
from credit.models import build_model
from credit.run_config import RunConfig
from credit.schema import embedded_schema_path, load_schema


def _metrics(auc: float) -> CreditMetrics:
    return CreditMetrics(
        auc=auc,
        ks=0.41,
        gini=2 * auc - 1,
        brier=0.14,
        log_loss=0.45,
        accuracy=0.81,
        f1=0.52,
        f1_threshold=0.27,
        n_rows=6000,
        default_rate=0.2212,
    )


def _state(config: RunConfig, *, seed: int, rounds: int) -> RunState:
    """A run state after ``rounds`` rounds, with every field a checkpoint keeps set."""
    schema = load_schema(config.schema_file or None)
    encoder = fit_encoder(schema, source=StatsSource.PUBLIC, quantile_bins=config.quantile_bins)
    spec = ModelSpec(kind=config.model, n_inputs=encoder.n_inputs, hidden_sizes=config.hidden_sizes)
    history = [
        RoundResult(
            server_round=1,
            metrics=_metrics(0.7512345678901234),
            train_loss=0.4623,
            banks=("bank-1", "bank-2"),
            seconds=3.25,
            refused=("bank-3",),
            max_epsilon_spent=0.61,
            dropped=("bank-4",),
        ),
        RoundResult(
            server_round=2,
            metrics=_metrics(0.7601),
            train_loss=None,
            banks=("bank-1", "bank-2", "bank-4"),
            seconds=2.5,
            aborted="round 2: 1 bank left after dropouts, 2 needed",
        ),
        RoundResult(  # the run's evaluation cadence skipped its model
            server_round=3,
            metrics=None,
            train_loss=0.4511,
            banks=("bank-1", "bank-2"),
            seconds=1.5,
        ),
    ]
    return RunState(
        config=config,
        schema=schema,
        encoder=encoder,
        spec=spec,
        banks=[
            BankInfo(name="bank-1", node_id=9_000_000_000_000_000_011, n_train=4800),
            BankInfo(name="bank-2", node_id=17, n_train=4790),
        ],
        arrays=ArrayRecord(build_model(spec, seed=seed).state_dict()),
        rounds=history[:rounds],
        privacy={
            "bank-1": LedgerSummary(
                bank="bank-1",
                epsilon=0.61,
                delta=2e-5,
                max_epsilon=1.0,
                accountant="rdp",
                events=(
                    LedgerEvent(
                        round=0,
                        noise_multiplier=20.0,
                        sample_rate=1.0,
                        steps=1,
                        max_grad_norm=4.0,
                        kind="gaussian-release",
                    ),
                ),
            ),
        },
        refusals=[
            Refusal(
                bank="bank-3",
                reason="PrivacyBudgetExceeded",
                spent=0.99,
                requested=1.2,
                maximum=1.0,
                server_round=1,
            )
        ],
        final_scores=ScoreHistograms(
            server_round=2, defaulters=(0.0, 3.0, 7.25), non_defaulters=(12.0, 5.5, 0.0)
        ),
        governance={  # the last model's report (metrics.json's part), kept once it came in
            "governance": {"banks": 2, "decision_cutoff": 0.5, "noisy": True},
            "calibration": {"ece": 0.0201, "bins": [{"lower": 0.0, "count": 12.5}]},
            "fairness": {"SEX": {"groups": {"1": {"n": 3, "tpr": None}}}},
        },
    )


def _arrays(record: ArrayRecord) -> dict[str, np.ndarray]:
    return {name: record[name].numpy() for name in record}


def _assert_same_state(loaded: RunState, saved: RunState) -> None:
    assert list(loaded.arrays) == list(saved.arrays)
    for name, values in _arrays(saved.arrays).items():
        np.testing.assert_array_equal(loaded.arrays[name].numpy(), values)
        assert loaded.arrays[name].numpy().dtype == values.dtype
    assert loaded.encoder == saved.encoder
    assert loaded.spec == saved.spec
    assert loaded.banks == saved.banks
    assert loaded.rounds == saved.rounds
    assert loaded.privacy == saved.privacy
    assert loaded.refusals == saved.refusals
    assert loaded.pending == saved.pending
    assert loaded.final_scores == saved.final_scores
    assert loaded.governance == saved.governance
    assert loaded.schema.schema_hash() == saved.schema.schema_hash()


@pytest.fixture
def config(tmp_path: Path) -> RunConfig:
    return RunConfig(out_dir=str(tmp_path), rounds=5, validation_fraction=0.0)


def test_a_checkpoint_round_trips_everything_a_resume_needs(
    tmp_path: Path, config: RunConfig
) -> None:
    state = _state(config, seed=0, rounds=2)
    folder = save_checkpoint(tmp_path, state, 2)
    assert folder == tmp_path / CHECKPOINT_DIR
    resumed_config = config.model_copy(update={"resume": True})
    loaded, completed = load_checkpoint(tmp_path, resumed_config)
    assert completed == 2
    assert loaded.config is resumed_config
    _assert_same_state(loaded, state)
    assert loaded.stopped is None and loaded.secure_aggregation is None


def test_a_later_checkpoint_replaces_the_earlier_one(tmp_path: Path, config: RunConfig) -> None:
    save_checkpoint(tmp_path, _state(config, seed=0, rounds=1), 1)
    later = _state(config, seed=1, rounds=2)
    save_checkpoint(tmp_path, later, 2)
    loaded, completed = load_checkpoint(tmp_path, config)
    assert completed == 2
    _assert_same_state(loaded, later)
    assert sorted(p.name for p in (tmp_path / CHECKPOINT_DIR).iterdir()) == [
        "arrays-2.npz",
        "state.json",
    ]


class _Crash(Exception):
    """The process dies here (as if killed while writing)."""


def _crash_when_syncing(monkeypatch: pytest.MonkeyPatch, file_prefix: str) -> None:
    """Make ``os.fsync`` of a file whose name starts with ``file_prefix`` crash."""
    real_fsync: Callable[[int], None] = os.fsync

    def fsync(fd: int) -> None:
        if Path(os.readlink(f"/proc/self/fd/{fd}")).name.startswith(file_prefix):
            raise _Crash(file_prefix)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)


@pytest.mark.parametrize(
    "file_prefix",
    ["arrays", "state"],
)
def test_a_crash_while_writing_leaves_the_previous_checkpoint_whole(
    tmp_path: Path, config: RunConfig, monkeypatch: pytest.MonkeyPatch, file_prefix: str
) -> None:
    previous = _state(config, seed=0, rounds=1)
    save_checkpoint(tmp_path, previous, 1)
    _crash_when_syncing(monkeypatch, file_prefix)
    with pytest.raises(_Crash):
        save_checkpoint(tmp_path, _state(config, seed=1, rounds=2), 2)
    monkeypatch.undo()
    loaded, completed = load_checkpoint(tmp_path, config)
    assert completed == 1
    _assert_same_state(loaded, previous)


def _edit_state(folder: Path, **changes: Any) -> None:
    path = folder / "state.json"
    document = json.loads(path.read_text())
    document.update(changes)
    path.write_text(json.dumps(document))


def test_a_checkpoint_of_another_version_is_refused(tmp_path: Path, config: RunConfig) -> None:
    folder = save_checkpoint(tmp_path, _state(config, seed=0, rounds=1), 1)
    _edit_state(folder, version=99)
    with pytest.raises(
        ConfigError, match=re.escape(f"checkpoint {folder} was made with another schema")
    ):
        load_checkpoint(tmp_path, config)


def test_a_checkpoint_of_another_schema_is_refused(tmp_path: Path, config: RunConfig) -> None:
    folder = save_checkpoint(tmp_path, _state(config, seed=0, rounds=1), 1)
    other_schema = tmp_path / "other.toml"
    text = embedded_schema_path().read_text()
    other_schema.write_text(text.replace("min_rows = 50", "min_rows = 60", 1))
    resumed = config.model_copy(update={"schema_file": str(other_schema), "resume": True})
    assert load_schema(other_schema).schema_hash() != load_schema().schema_hash()
    with pytest.raises(
        ConfigError,
        match=re.escape(f"checkpoint {folder} was made with another schema or version; resume"),
    ):
        load_checkpoint(tmp_path, resumed)


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _truncate_state(folder: Path) -> None:
    _truncate(folder / "state.json")


def _arrays_file(folder: Path) -> Path:
    (path,) = folder.glob("arrays-*.npz")
    return path


def _remove_arrays(folder: Path) -> None:
    _arrays_file(folder).unlink()


def _truncate_arrays(folder: Path) -> None:
    _truncate(_arrays_file(folder))


def _forget_array_names(folder: Path) -> None:
    path = folder / "state.json"
    document = json.loads(path.read_text())
    del document["array_names"]
    path.write_text(json.dumps(document))


@pytest.mark.parametrize(
    "damage",
    [
        _truncate_state,
        _remove_arrays,
        _forget_array_names,
        _truncate_arrays,
    ],
    ids=["truncated-state", "missing-arrays", "no-array-names", "truncated-arrays"],
)
def test_an_unreadable_checkpoint_is_a_config_error_naming_the_folder(
    tmp_path: Path, config: RunConfig, damage: Callable[[Path], None]
) -> None:
    folder = save_checkpoint(tmp_path, _state(config, seed=0, rounds=1), 1)
    damage(folder)
    with pytest.raises(ConfigError, match=re.escape(f"checkpoint {folder} is unreadable")):
        load_checkpoint(tmp_path, config)


def test_no_checkpoint_is_a_config_error_saying_there_is_none(
    tmp_path: Path, config: RunConfig
) -> None:
    with pytest.raises(ConfigError, match="no checkpoint to resume from") as error:
        load_checkpoint(tmp_path, config)
    assert str(tmp_path / CHECKPOINT_DIR) in str(error.value)


PENDING = PendingRound(
    server_round=3,
    train_loss=0.4411,
    banks=("bank-1", "bank-2"),
    seconds=1.75,
    refused=("bank-3",),
    max_epsilon_spent=0.72,
    dropped=("bank-4",),
    exchanges={"train": 1.25, "unmask": 0.25},
    epsilon={"bank-1": 0.72},
)


def test_a_round_trained_but_not_yet_evaluated_round_trips_as_pending(
    tmp_path: Path, config: RunConfig
) -> None:
    """Saved right after round 3's aggregation: its metrics come one exchange later."""
    state = _state(config, seed=0, rounds=2)
    state.pending = PENDING
    save_checkpoint(tmp_path, state, 3)
    loaded, completed = load_checkpoint(tmp_path, config)
    assert completed == 3
    _assert_same_state(loaded, state)
    assert loaded.pending == PENDING
    # Its result, once its metrics are in, is the round's full record.
    result = PENDING.result(_metrics(0.77), seconds=0.5, exchanges={"evaluate": 0.5})
    assert result.server_round == 3 and result.metrics.auc == 0.77
    assert result.seconds == 2.25
    assert result.exchanges == {"train": 1.25, "unmask": 0.25, "evaluate": 0.5}
    assert (result.banks, result.refused, result.dropped) == (
        PENDING.banks,
        PENDING.refused,
        PENDING.dropped,
    )


def test_a_version_two_checkpoint_loads_with_no_round_pending(
    tmp_path: Path, config: RunConfig
) -> None:
    """Written before a round's evaluation could come with the next round's training."""
    state = _state(config, seed=0, rounds=2)
    folder = save_checkpoint(tmp_path, state, 2)
    path = folder / "state.json"
    document = json.loads(path.read_text())
    assert document["version"] == 3
    del document["pending"]
    document["version"] = 2
    path.write_text(json.dumps(document))
    loaded, completed = load_checkpoint(tmp_path, config)
    assert completed == 2
    _assert_same_state(loaded, state)
    assert loaded.pending is None


def test_a_round_not_evaluated_round_trips_without_metrics(
    tmp_path: Path, config: RunConfig
) -> None:
    state = _state(config, seed=0, rounds=3)
    folder = save_checkpoint(tmp_path, state, 3)
    document = json.loads((folder / "state.json").read_text())
    assert [r["metrics"] is None for r in document["rounds"]] == [False, False, True]

    loaded, completed = load_checkpoint(tmp_path, config)

    assert completed == 3
    _assert_same_state(loaded, state)
    assert loaded.rounds[-1].metrics is None
    final = loaded.final_metrics()  # the last round whose model was scored
    assert final is not None and final.auc == 0.7601
    assert "not evaluated" in loaded.rounds[-1].progress_line(5)


def test_a_checkpoint_keeping_held_out_counts_loads_without_them(
    tmp_path: Path, config: RunConfig
) -> None:
    """Checkpoints written before held-out counts stopped being sent kept each bank's."""
    state = _state(config, seed=0, rounds=2)
    folder = save_checkpoint(tmp_path, state, 2)
    path = folder / "state.json"
    document = json.loads(path.read_text())
    for bank in document["banks"]:
        bank["n_test"] = 1200
    path.write_text(json.dumps(document))

    loaded, _ = load_checkpoint(tmp_path, config)

    _assert_same_state(loaded, state)
    assert all(not hasattr(bank, "n_test") for bank in loaded.banks)


def test_a_checkpoint_from_before_final_score_histograms_loads_without_them(
    tmp_path: Path, config: RunConfig
) -> None:
    """The run's next scored round brings them; until then the report has no curves."""
    state = _state(config, seed=0, rounds=2)
    folder = save_checkpoint(tmp_path, state, 2)
    path = folder / "state.json"
    document = json.loads(path.read_text())
    assert document["final_scores"]["round"] == 2
    del document["final_scores"]
    path.write_text(json.dumps(document))

    loaded, _ = load_checkpoint(tmp_path, config)

    assert loaded.final_scores is None
    state.final_scores = None
    _assert_same_state(loaded, state)
