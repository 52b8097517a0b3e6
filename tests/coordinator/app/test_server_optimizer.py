"""Server optimisers against Flower's own strategies (the oracle), and their checkpoint.

Each case gives Flower's ``FedAdam``, ``FedYogi`` or ``FedAvgM`` the banks' train
replies (``configure_train`` then ``aggregate_train``, as Flower's Grid loop calls
them) and gives :class:`ServerOptimizer` the weighted mean of the same replies (what
fedcredit's aggregation hands it, computed by the same Flower function plain FedAvg
uses); the new global models must agree, for one round and over several rounds in
which each strategy keeps its moments.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flwr.app import (
    Array,
    ArrayRecord,
    ConfigRecord,
    Message,
    MessageType,
    Metadata,
    MetricRecord,
    RecordDict,
)
from flwr.common.constant import SUPERLINK_NODE_ID
from flwr.serverapp.strategy import FedAdam, FedAvgM, FedYogi
from flwr.serverapp.strategy.strategy_utils import aggregate_arrayrecords
from flwr.supercore.task_identity import TaskIdentity

from coordinator.app.checkpoint import CHECKPOINT_DIR, load_checkpoint, save_checkpoint
from coordinator.app.server_optimizer import OptimizerState, ServerOptimizer
from credit.run_config import RunConfig
from credit.strategy import Strategy
from tests.coordinator.app.test_checkpoint import _state

SHAPES = {"linear.weight": (1, 7), "linear.bias": (1,)}
BANKS = (1200, 300, 45)  # training rows: the updates' weights
FlowerStrategy = FedAdam | FedYogi | FedAvgM


@pytest.fixture(autouse=True)
def _serverapp_identity() -> Iterator[None]:
    """Flower's process-wide task identity, which its strategies' messages read (as the
    ServerApp runtime sets it; restored afterwards, as ``tests.support.fake_grid`` does)."""
    names = ("_task_id", "_run_id", "_node_id")
    saved = {name: vars(TaskIdentity)[name] for name in names}
    TaskIdentity.task_id = 1
    TaskIdentity.run_id = 7
    TaskIdentity.node_id = SUPERLINK_NODE_ID
    yield
    for name, value in saved.items():
        setattr(TaskIdentity, name, value)


class _Nodes:
    """What Flower's ``configure_train`` asks of a Grid: the connected nodes."""

    def get_node_ids(self) -> list[int]:
        return list(range(1, len(BANKS) + 1))


def _arrays(rng: np.random.Generator, scale: float = 1.0) -> ArrayRecord:
    return ArrayRecord(
        {
            name: Array(rng.normal(0, scale, shape).astype(np.float32))
            for name, shape in SHAPES.items()
        }
    )


def _reply(node: int, arrays: ArrayRecord, rows: int) -> Message:
    """A bank's train reply as Flower's strategies read it: arrays and num-examples."""
    metadata = Metadata(
        run_id=7,
        message_id=f"reply-{node}",
        src_node_id=node,
        dst_node_id=0,
        reply_to_message_id=f"train-{node}",
        group_id="1",
        created_at=time.time(),
        ttl=3600.0,
        message_type=MessageType.TRAIN,
    )
    content = RecordDict({"arrays": arrays, "metrics": MetricRecord({"num-examples": rows})})
    return Message(content, metadata=metadata)


def _updates(rng: np.random.Generator, current: ArrayRecord) -> list[ArrayRecord]:
    """Each bank's new weights: the global model plus its own (non-IID) drift."""
    return [
        ArrayRecord(
            {
                name: Array(
                    (current[name].numpy() + rng.normal(0.1 * bank, 0.05, SHAPES[name])).astype(
                        np.float32
                    )
                )
                for name in SHAPES
            }
        )
        for bank in range(len(BANKS))
    ]


def _mean(updates: list[ArrayRecord]) -> ArrayRecord:
    """The weighted mean fedcredit's plain aggregation computes (Flower's function)."""
    weighted = [
        RecordDict({"arrays": arrays, "metrics": MetricRecord({"num-examples": rows})})
        for arrays, rows in zip(updates, BANKS, strict=True)
    ]
    return aggregate_arrayrecords(weighted, "num-examples")


def _pair(case: str) -> tuple[FlowerStrategy, ServerOptimizer]:
    """Flower's strategy and ours with the same (non-default where possible) settings."""
    if case == "fedadam":
        settings: dict[str, Any] = {"eta": 0.05, "beta_1": 0.8, "beta_2": 0.95, "tau": 1e-2}
        ours = ServerOptimizer(
            strategy=Strategy.FEDADAM, learning_rate=0.05, beta1=0.8, beta2=0.95, tau=1e-2
        )
        return FedAdam(min_available_nodes=1, **settings), ours
    if case == "fedadam-defaults":
        return FedAdam(min_available_nodes=1), ServerOptimizer.of_run(
            RunConfig(strategy=Strategy.FEDADAM)
        ) or pytest.fail("no optimiser")
    if case == "fedyogi":
        flower = FedYogi(min_available_nodes=1, eta=0.03, beta_1=0.85, beta_2=0.9, tau=1e-3)
        ours = ServerOptimizer(
            strategy=Strategy.FEDYOGI, learning_rate=0.03, beta1=0.85, beta2=0.9, tau=1e-3
        )
        return flower, ours
    if case == "fedyogi-defaults":
        return FedYogi(min_available_nodes=1), ServerOptimizer.of_run(
            RunConfig(strategy=Strategy.FEDYOGI)
        ) or pytest.fail("no optimiser")
    if case == "fedavgm":
        flower_m = FedAvgM(min_available_nodes=1, server_learning_rate=0.7, server_momentum=0.9)
        ours = ServerOptimizer(strategy=Strategy.FEDAVGM, learning_rate=0.7, momentum=0.9)
        return flower_m, ours
    # FedAvgM without momentum: a scaled step, no state
    flower_m = FedAvgM(min_available_nodes=1, server_learning_rate=1.5)
    return flower_m, ServerOptimizer(strategy=Strategy.FEDAVGM, learning_rate=1.5)


CASES = ["fedadam", "fedadam-defaults", "fedyogi", "fedyogi-defaults", "fedavgm", "fedavgm-lr"]


def _flower_round(
    flower: FlowerStrategy, server_round: int, current: ArrayRecord, updates: list[ArrayRecord]
) -> ArrayRecord:
    """One round of Flower's strategy: configure_train with ``current``, aggregate_train."""
    flower.configure_train(server_round, current, ConfigRecord(), _Nodes())  # type: ignore[arg-type]
    replies = [
        _reply(node, arrays, rows)
        for node, (arrays, rows) in enumerate(zip(updates, BANKS, strict=True), start=1)
    ]
    new, _ = flower.aggregate_train(server_round, replies)
    assert new is not None
    return new


def _assert_close(ours: ArrayRecord, flower: ArrayRecord) -> None:
    assert list(ours) == list(flower)
    for name in ours:
        np.testing.assert_allclose(
            ours[name].numpy(), flower[name].numpy().astype(np.float32), rtol=1e-6, atol=1e-7
        )


@pytest.mark.parametrize("case", CASES)
def test_one_round_equals_flowers_aggregate_train(case: str) -> None:
    rng = np.random.default_rng(11)
    flower, ours = _pair(case)
    current = _arrays(rng)
    updates = _updates(rng, current)

    expected = _flower_round(flower, 1, current, updates)
    step = ours.step(1, current, _mean(updates), None)

    _assert_close(step.arrays, expected)
    moved = sum(
        float(np.abs(step.arrays[n].numpy() - _mean(updates)[n].numpy()).sum()) for n in SHAPES
    )
    assert moved > 1e-3  # not plain FedAvg: the step differs from the mean


@pytest.mark.parametrize("case", CASES)
def test_five_rounds_with_kept_moments_equal_flowers(case: str) -> None:
    """Our state carried from round to round (through its checkpoint form) gives Flower's."""
    rng = np.random.default_rng(5)
    flower, ours = _pair(case)
    current = _arrays(rng)
    state: OptimizerState | None = None
    for server_round in range(1, 6):
        updates = _updates(rng, current)
        expected = _flower_round(flower, server_round, current, updates)
        step = ours.step(server_round, current, _mean(updates), state)
        _assert_close(step.arrays, expected)
        state = OptimizerState.from_flat(step.state.flat())  # as a checkpoint restores it
        current = step.arrays


@pytest.mark.parametrize("strategy", [Strategy.FEDADAM, Strategy.FEDYOGI, Strategy.FEDAVGM])
def test_the_new_model_keeps_the_global_models_dtypes(strategy: Strategy) -> None:
    """Flower's FedAdam returns float64; the banks' float32 updates must still match."""
    rng = np.random.default_rng(2)
    current = _arrays(rng)
    ours = ServerOptimizer(strategy=strategy, learning_rate=0.1, momentum=0.5)
    step = ours.step(3, current, _mean(_updates(rng, current)), None)
    assert {step.arrays[n].numpy().dtype for n in SHAPES} == {np.dtype(np.float32)}


def test_an_aggregate_of_other_arrays_is_refused() -> None:
    rng = np.random.default_rng(0)
    current = _arrays(rng)
    other = ArrayRecord({"linear.weight": current["linear.weight"]})
    ours = ServerOptimizer(strategy=Strategy.FEDADAM, learning_rate=0.1)
    with pytest.raises(ValueError, match="are not the global model's"):
        ours.step(1, current, other, None)


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"strategy": Strategy.FEDAVG, "learning_rate": 1.0}, "takes no server step"),
        ({"strategy": Strategy.FEDADAM, "learning_rate": 0.0}, "learning_rate must be > 0"),
        ({"strategy": Strategy.FEDADAM, "learning_rate": 0.1, "beta2": 1.0}, "beta2 must be"),
        ({"strategy": Strategy.FEDYOGI, "learning_rate": 0.1, "tau": 0.0}, "tau must be > 0"),
    ],
)
def test_bad_settings_are_refused(settings: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        ServerOptimizer(**settings)


def test_the_optimizers_moments_round_trip_through_the_checkpoint(tmp_path: Path) -> None:
    config = RunConfig(
        out_dir=str(tmp_path), rounds=5, validation_fraction=0.0, strategy=Strategy.FEDADAM
    )
    state = _state(config, seed=0, rounds=2)
    rng = np.random.default_rng(9)
    ours = ServerOptimizer.of_run(config)
    assert ours is not None
    aggregated = ArrayRecord(
        {
            name: Array(state.arrays[name].numpy() + rng.normal(0, 0.1, value.shape))
            for name, value in ((n, state.arrays[n].numpy()) for n in state.arrays)
        }
    )
    state.server_optimizer = ours.step(2, state.arrays, aggregated, None).state
    save_checkpoint(tmp_path, state, 2)
    save_checkpoint(tmp_path, state, 3)  # the earlier round's moments file is removed

    loaded, _ = load_checkpoint(tmp_path, config.model_copy(update={"resume": True}))

    assert loaded.server_optimizer is not None
    saved = state.server_optimizer.flat()
    assert list(loaded.server_optimizer.flat()) == list(saved)
    for key, value in loaded.server_optimizer.flat().items():
        np.testing.assert_array_equal(value, saved[key])
        assert value.dtype == saved[key].dtype
    assert sorted(p.name for p in (tmp_path / CHECKPOINT_DIR).iterdir()) == [
        "arrays-3.npz",
        "optimizer-3.npz",
        "state.json",
    ]


def test_a_checkpoint_without_moments_loads_with_none(tmp_path: Path) -> None:
    config = RunConfig(out_dir=str(tmp_path), rounds=5, validation_fraction=0.0)
    save_checkpoint(tmp_path, _state(config, seed=0, rounds=1), 1)
    loaded, _ = load_checkpoint(tmp_path, config)
    assert loaded.server_optimizer is None
