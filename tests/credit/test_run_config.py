"""RunConfig: Flower's hyphenated run_config in, a frozen validated model out."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from credit.encoding import EncodingKind, StatsSource
from credit.errors import ConfigError
from credit.models import ModelKind
from credit.run_config import RunConfig

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


@pytest.fixture(scope="module")
def app_config() -> dict[str, Any]:
    """``[tool.flwr.app.config]`` of the project's pyproject.toml."""
    with PYPROJECT.open("rb") as handle:
        config: dict[str, Any] = tomllib.load(handle)["tool"]["flwr"]["app"]["config"]
    return config


def test_from_flower_maps_hyphenated_keys() -> None:
    config = RunConfig.from_flower(
        {
            "num-server-rounds": 3,
            "model": "mlp",
            "encoding": "standardized",
            "feature-stats": "public",
            "quantile-bins": 12,
            "local-epochs": 2,
            "batch-size": 32,
            "learning-rate": 0.05,
            "hidden-sizes": "16, 8",
            "test-fraction": 0.25,
            "min-banks": 3,
            "score-bins": 200,
            "grid-bins": 512,
            "schema": "bank.toml",
            "out-dir": "runs/x",
            "round-timeout": 30.0,
        }
    )

    assert config.rounds == 3
    assert config.model is ModelKind.MLP
    assert config.encoding is EncodingKind.STANDARDIZED
    assert config.feature_stats is StatsSource.PUBLIC
    assert config.quantile_bins == 12
    assert config.local_epochs == 2
    assert config.batch_size == 32
    assert config.learning_rate == 0.05
    assert config.hidden_sizes == (16, 8)
    assert config.test_fraction == 0.25
    assert config.min_banks == 3
    assert config.score_bins == 200
    assert config.grid_bins == 512
    assert config.schema_file == "bank.toml"
    assert config.out_dir == "runs/x"
    assert config.round_timeout == 30.0
    # Untouched keys keep their defaults.
    assert config.seed == 0
    assert config.secure_aggregation is True


def test_empty_run_config_gives_the_defaults() -> None:
    assert RunConfig.from_flower({}) == RunConfig()


@pytest.mark.parametrize(
    "config",
    [
        RunConfig(),
        RunConfig.model_validate(
            {
                "rounds": 4,
                "model": "mlp",
                "hidden_sizes": (7, 5, 3),
                "feature_stats": "public",
                "schema": "s.toml",
                "seed": 11,
                "round_timeout": 12.5,
                "evaluate_every": 2,
            }
        ),
    ],
)
def test_to_flower_round_trips_through_from_flower(config: RunConfig) -> None:
    flower = config.to_flower()

    assert RunConfig.from_flower(flower) == config
    assert "num-server-rounds" in flower
    assert "rounds" not in flower
    assert flower["hidden-sizes"] == ",".join(str(h) for h in config.hidden_sizes)
    assert flower["schema"] == config.schema_file
    assert all("_" not in key for key in flower)
    # Flower config values are scalars: no tuples, lists or None.
    assert all(isinstance(value, str | int | float | bool) for value in flower.values())


def test_every_pyproject_key_parses_to_the_model_defaults(app_config: dict[str, Any]) -> None:
    config = RunConfig.from_flower(app_config)

    assert config == RunConfig()
    # The SuperLink rejects run-config keys the app does not declare ("Invalid run
    # configuration"), so every field must be declared for `coordinator launch`.
    assert set(app_config) == set(config.to_flower())


def test_pyproject_defaults_match_to_flower(app_config: dict[str, Any]) -> None:
    flower = RunConfig().to_flower()

    assert {key: flower[key] for key in app_config} == app_config


@pytest.mark.parametrize("key", ["bogus-key", "num-server-round", "local-epoch"])
def test_unknown_key_is_rejected(key: str) -> None:
    with pytest.raises(ConfigError, match=f"^run config: '{key}': unknown key$") as caught:
        RunConfig.from_flower({key: 1})

    assert caught.value.source == "run config"


def test_unknown_key_error_names_the_key_as_written() -> None:
    """The operator wrote 'bogus-key' in pyproject.toml or --run-config; say so."""
    with pytest.raises(ConfigError, match="'bogus-key'"):
        RunConfig.from_flower({"bogus-key": 1})


INVALID_VALUES = [
    ("num-server-rounds", 0, "greater than or equal to 1"),
    ("score-bins", 101, "must be even"),
    ("score-bins", 0, "greater than or equal to 2"),
    ("hidden-sizes", "a,b", "comma-separated integers"),
    ("learning-rate", 0.0, "greater than 0"),
    ("test-fraction", 1.0, "less than 1"),
    ("quantile-bins", 1, "greater than or equal to 2"),
    ("model", "forest", "'logreg', 'mlp' or 'gbdt'"),
    ("encoding", "random", "'binned', 'standardized' or 'woe'"),
    ("min-banks", 0, "greater than or equal to 1"),
    ("evaluate-every", -2, "greater than or equal to -1"),
    ("decision-cutoff", 1.5, "less than or equal to 1"),
    ("decision-cutoff", 0.333, "multiple of 1/score-bins = 1/100"),
    ("pdo", 0, "greater than 0"),
    ("pdo", float("inf"), "finite number"),
    ("base-odds", -50, "greater than 0"),
    ("base-score", float("nan"), "finite number"),
    ("monitor-quantile", 1.0, "less than 1"),
    ("monitor-quantile", 0.0, "greater than 0"),
]


@pytest.mark.parametrize(("key", "value", "problem"), INVALID_VALUES)
def test_invalid_value_is_rejected(key: str, value: Any, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem) as caught:
        RunConfig.from_flower({key: value})

    assert caught.value.source == "run config"


@pytest.mark.parametrize(("key", "value"), [("num-server-rounds", 0), ("score-bins", 101)])
def test_invalid_value_error_names_the_key_as_written(key: str, value: Any) -> None:
    """'rounds' / 'score_bins' appear nowhere in the operator's configuration."""
    with pytest.raises(ConfigError, match=f"^run config: '{key}': "):
        RunConfig.from_flower({key: value})


def test_the_decision_cutoff_is_a_score_bin_edge() -> None:
    assert RunConfig().decision_cutoff == 0.5
    assert RunConfig.from_flower({"decision-cutoff": 0.3}).decision_cutoff == 0.3
    assert RunConfig.from_flower({"decision-cutoff": 0.335, "score-bins": 200}).score_bins == 200
    with pytest.raises(ConfigError, match=r"1/score-bins = 1/10 .*e\.g\. 0\.3; got 0\.33"):
        RunConfig.from_flower({"decision-cutoff": 0.33, "score-bins": 10})


def test_woe_encoding_needs_federated_feature_statistics() -> None:
    with pytest.raises(ConfigError) as caught:
        RunConfig.from_flower({"encoding": "woe", "feature-stats": "public"})
    message = str(caught.value)
    assert message.startswith("run config: encoding 'woe' needs feature-stats 'federated'")
    assert message.endswith("got feature-stats 'public'") and "\n" not in message
    assert RunConfig.from_flower({"encoding": "woe"}).feature_stats == "federated"


def test_a_monitoring_run_is_not_resumed_and_writes_apart_from_the_run_it_monitors(
    tmp_path: Path,
) -> None:
    development = str(tmp_path / "runs" / "q3")
    config = RunConfig.from_flower({"monitor-run": development, "out-dir": str(tmp_path / "m")})
    assert config.monitor_run == development and config.monitor_quantile == 0.99
    with pytest.raises(ConfigError, match=r"^run config: a monitoring run .* is not resumed"):
        RunConfig.from_flower({"monitor-run": development, "resume": True})
    with pytest.raises(ConfigError, match="writes into its own out-dir") as caught:
        RunConfig.from_flower({"monitor-run": development, "out-dir": development + "/"})
    assert "\n" not in str(caught.value)


def test_the_monitoring_quantiles_default_is_the_drift_flags() -> None:
    from credit.governance.stability import DEFAULT_QUANTILE
    from credit.run_config import MONITOR_QUANTILE

    assert MONITOR_QUANTILE == DEFAULT_QUANTILE == RunConfig().monitor_quantile


def test_local_work_is_steps_by_default_and_epochs_replace_them() -> None:
    assert (RunConfig().local_steps, RunConfig().round_steps) == (50, 50)
    epochs = RunConfig.from_flower({"local-epochs": 3, "local-steps": 50})
    assert (epochs.local_epochs, epochs.round_steps) == (3, 0)
    with pytest.raises(ConfigError, match="a round needs local work"):
        RunConfig.from_flower({"local-epochs": 0, "local-steps": 0})


def test_the_run_message_carries_exactly_one_of_epochs_and_steps() -> None:
    from credit.messages import RunInstructions

    fields = {"run_name": "r", "schema_hash": "h", "test_fraction": 0.2, "seed": 0,
              "planned_rounds": 1, "planned_evaluations": 1, "batch_size": 64,
              "max_grad_norm": 1.0}  # fmt: skip
    assert RunInstructions(**fields, local_epochs=0, local_steps=50).local_steps == 50
    for epochs, steps in ((1, 50), (0, 0)):
        with pytest.raises(ValidationError, match="exactly one of local-epochs and local-steps"):
            RunInstructions(**fields, local_epochs=epochs, local_steps=steps)


def test_the_scorecard_settings_default_to_the_conventional_scaling() -> None:
    config = RunConfig.from_flower({"encoding": "woe", "pdo": 40, "base-odds": 20})
    assert (config.pdo, config.base_score, config.base_odds) == (40.0, 600.0, 20.0)
    assert config.scaling.factor == pytest.approx(40 / np.log(2))
    assert config.builds_scorecard
    assert not RunConfig(encoding="woe", model="mlp").builds_scorecard
    assert not RunConfig().builds_scorecard
    assert RunConfig().to_flower()["base-score"] == 600.0


def test_build_reports_its_source() -> None:
    with pytest.raises(ConfigError, match=r"^fedcredit simulate: 'rounds'"):
        RunConfig.build({"rounds": 0}, source="fedcredit simulate")


def test_config_is_frozen() -> None:
    config = RunConfig()

    with pytest.raises(ValidationError, match="frozen"):
        config.rounds = 3  # type: ignore[misc]
    assert config.rounds == 10


def test_hidden_sizes_accepts_a_tuple_or_a_string() -> None:
    assert RunConfig.from_flower({"hidden-sizes": "64,32,"}).hidden_sizes == (64, 32)
    assert RunConfig.model_validate({"hidden_sizes": [5, 2]}).hidden_sizes == (5, 2)


@pytest.mark.parametrize("key", ["data", "partition", "alpha", "partition-column", "dropout-rate"])
def test_research_settings_are_not_run_config(key: str) -> None:
    """How a simulation splits data or drops banks is the harness's, never a coordinator's."""
    with pytest.raises(ConfigError, match=f"'{key}': unknown key"):
        RunConfig.from_flower({key: 1})


def _scored(config: RunConfig, *, private: bool) -> list[int]:
    return [r for r in range(1, config.rounds + 1) if config.evaluates(r, private=private)]


def test_the_default_cadence_scores_every_round_in_the_clear_and_only_the_last_under_budgets() -> (
    None
):
    config = RunConfig(rounds=4)
    assert config.evaluate_every == -1 and config.to_flower()["evaluate-every"] == -1

    assert _scored(config, private=False) == [1, 2, 3, 4]
    assert _scored(config, private=True) == [4]
    # validation parts: each scored round, then the kept model's final evaluation; under
    # budgets only the last round is scored: nothing to choose, the final one alone
    assert config.announced_evaluations(private=False) == 5
    assert config.announced_evaluations(private=True) == 1
    without = RunConfig(rounds=4, validation_fraction=0)
    assert without.announced_evaluations(private=False) == 4
    assert without.announced_evaluations(private=True) == 1


@pytest.mark.parametrize(("every", "scored"), [(1, [1, 2, 3, 4, 5]), (2, [2, 4, 5]), (0, [5])])
def test_evaluate_every_scores_its_multiples_and_always_the_last_round(
    every: int, scored: list[int]
) -> None:
    config = RunConfig.from_flower({"num-server-rounds": 5, "evaluate-every": every})
    without = RunConfig.from_flower(
        {"num-server-rounds": 5, "evaluate-every": every, "validation-fraction": 0}
    )
    final = 1 if len(scored) > 1 else 0  # the kept model's, when there was a choice
    for private in (False, True):
        assert _scored(config, private=private) == scored
        assert config.announced_evaluations(private=private) == len(scored) + final
        assert without.announced_evaluations(private=private) == len(scored)
    assert config.evaluates(6, private=True)  # past the last round: always


def test_evaluations_are_announced_for_the_planned_rounds() -> None:
    """Banks plan their held-out rows' budget for the rounds they plan (the last always)."""
    config = RunConfig(rounds=6, planned_rounds=4, evaluate_every=3, validation_fraction=0)
    assert config.announced_evaluations(private=True) == 2  # rounds 3 and 4
    validated = RunConfig(rounds=6, planned_rounds=4, evaluate_every=3)
    assert validated.announced_evaluations(private=True) == 3  # and the kept model
