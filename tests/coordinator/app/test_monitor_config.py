"""A monitoring run's configuration: the development run's settings, its own few."""

from __future__ import annotations

from pathlib import Path

import pytest

from coordinator.app.monitor_run import OWN_FIELDS, monitoring_config
from credit.errors import ConfigError
from credit.run_config import RunConfig


def test_the_banks_settings_are_the_development_runs_whatever_was_submitted(
    tmp_path: Path,
) -> None:
    development = RunConfig(
        out_dir=str(tmp_path / "q3"), run_name="q3", test_fraction=0.3, validation_fraction=0.1,
        seed=4, score_bins=50, secure_aggregation=True, min_banks=2, resume=True,
    )  # fmt: skip
    submitted = RunConfig(
        out_dir=str(tmp_path / "m1"), run_name="m1", test_fraction=0.5, validation_fraction=0.0,
        seed=9, score_bins=100, secure_aggregation=False, min_banks=3, round_timeout=30.0,
        monitor_run=str(tmp_path / "q3"), monitor_quantile=0.9,
    )  # fmt: skip

    config = monitoring_config(development, submitted)

    for name in OWN_FIELDS:
        assert getattr(config, name) == getattr(submitted, name), name
    banks_check = ("test_fraction", "validation_fraction", "seed", "score_bins", "schema_file")
    for name in banks_check:
        assert getattr(config, name) == getattr(development, name), name
    assert config.resume is False


def test_a_monitoring_run_writing_into_the_run_it_monitors_is_refused(tmp_path: Path) -> None:
    development = RunConfig(out_dir=str(tmp_path / "q3"))
    submitted = RunConfig(out_dir=str(tmp_path / "q3"), monitor_run="", run_name="m1")
    submitted = submitted.model_copy(update={"monitor_run": str(tmp_path / "q3")})

    with pytest.raises(ConfigError, match=r"^monitoring run of .*q3: a monitoring run writes"):
        monitoring_config(development, submitted)
