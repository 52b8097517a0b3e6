"""A consortium's ``[run]`` defaults choose the strategy of the runs ``launch`` submits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from coordinator.ops.consortium import ConsortiumConfig, load_consortium
from coordinator.ops.launch import run_config_for
from coordinator.ops.provisioning import init_consortium
from credit.errors import ConfigError


def _launched(tmp_path: Path, run: dict[str, Any]) -> dict[str, Any]:
    config = ConsortiumConfig.model_validate({"name": "nordic", "hosts": ["fl.x"], "run": run})
    consortium = init_consortium(tmp_path / "consortium", config)
    reloaded = load_consortium(consortium.paths.root)  # through consortium.toml
    return run_config_for(reloaded, run_name="q3", resume=False, overrides={})


def test_the_consortiums_strategy_reaches_the_run_config(tmp_path: Path) -> None:
    config = _launched(tmp_path, {"strategy": "fedyogi", "server_learning_rate": 0.02})
    assert (config["strategy"], config["server-learning-rate"]) == ("fedyogi", 0.02)
    assert config["server-beta1"] == 0.9  # Flower's default


def test_a_strategy_option_of_another_strategy_is_refused_at_launch(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'proximal_mu': is an option of strategy fedprox only"):
        _launched(tmp_path, {"strategy": "fedadam", "proximal_mu": 0.1})
