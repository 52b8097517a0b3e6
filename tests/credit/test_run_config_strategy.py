"""RunConfig's strategy and its options: Flower's defaults, one strategy's options only."""

from __future__ import annotations

from typing import Any

import pytest

from credit.errors import ConfigError
from credit.run_config import RunConfig
from credit.strategy import Strategy


def test_the_default_strategy_is_fedavg_with_no_server_step_and_no_mu() -> None:
    config = RunConfig()
    assert config.strategy is Strategy.FEDAVG
    assert (config.effective_server_learning_rate, config.round_proximal_mu) == (0.0, 0.0)


def test_flowers_run_config_sets_a_strategy_and_its_options() -> None:
    config = RunConfig.from_flower(
        {
            "strategy": "fedadam",
            "server-learning-rate": 0.05,
            "server-beta1": 0.8,
            "server-beta2": 0.95,
            "server-tau": 0.01,
        }
    )
    assert config.strategy is Strategy.FEDADAM
    assert config.effective_server_learning_rate == 0.05
    assert (config.server_beta1, config.server_beta2, config.server_tau) == (0.8, 0.95, 0.01)
    assert RunConfig.from_flower(config.to_flower()) == config


@pytest.mark.parametrize(
    ("strategy", "rate"),
    [(Strategy.FEDADAM, 0.1), (Strategy.FEDYOGI, 0.01), (Strategy.FEDAVGM, 1.0)],
)
def test_an_unset_server_learning_rate_is_flowers_default(strategy: Strategy, rate: float) -> None:
    momentum = {"server_momentum": 0.9} if strategy is Strategy.FEDAVGM else {}
    assert RunConfig(strategy=strategy, **momentum).effective_server_learning_rate == rate


def test_fedprox_sends_its_mu_and_the_digest_covers_the_strategy() -> None:
    fedprox = RunConfig(strategy=Strategy.FEDPROX, proximal_mu=0.01)
    assert fedprox.round_proximal_mu == 0.01
    assert fedprox.digest() != RunConfig().digest()
    assert fedprox.digest() != RunConfig(strategy=Strategy.FEDPROX, proximal_mu=0.1).digest()


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        (
            {"proximal-mu": 0.01},
            "run config: 'proximal-mu': is an option of strategy fedprox only; the run's "
            "strategy is 'fedavg'",
        ),
        (
            {"strategy": "fedadam", "server-momentum": 0.9},
            "run config: 'server-momentum': is an option of strategy fedavgm only",
        ),
        (
            {"strategy": "fedavgm", "server-momentum": 0.9, "server-tau": 0.1},
            "run config: 'server-tau': is an option of strategy fedadam, fedyogi only",
        ),
        (
            {"strategy": "fedprox"},
            "run config: strategy fedprox with proximal-mu 0 is plain FedAvg",
        ),
        (
            {"strategy": "fedavgm"},
            "run config: strategy fedavgm with server-momentum 0 and server-learning-rate 1",
        ),
        (
            {"strategy": "fedprox", "proximal-mu": float("inf")},
            "run config: 'proximal-mu': Input should be a finite number",
        ),
        (
            {"strategy": "fedyogi", "server-beta2": 1.0},
            "run config: 'server-beta2': Input should be less than 1",
        ),
        (
            {"strategy": "fedadam", "server-learning-rate": -0.1},
            "run config: 'server-learning-rate': Input should be greater than or equal to 0",
        ),
        ({"strategy": "fedsgd"}, "run config: 'strategy': Input should be 'fedavg', 'fedprox'"),
    ],
)
def test_a_bad_strategy_setting_is_one_line_naming_the_key(
    fields: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ConfigError) as error:
        RunConfig.from_flower(fields)
    assert str(error.value).startswith(problem), str(error.value)
    assert "\n" not in str(error.value)
