"""A bank refuses a run of a fedcredit release it did not approve."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from flwr.app import Context, RecordDict

from credit import __version__
from participant.app.approval import UnapprovedApp, check_approved
from participant.app.node_config import NodeConfig

APPROVED_VERSION = "approved-version"


def _context(node_config: dict[str, str | int]) -> NodeConfig:
    context = Context(
        run_id=1, node_id=2, node_config=node_config, state=RecordDict(), run_config={}
    )
    return NodeConfig.from_context(context)


def test_the_code_version_is_the_package_version() -> None:
    pyproject = tomllib.loads(Path(__file__).parents[3].joinpath("pyproject.toml").read_text())
    assert __version__ == pyproject["project"]["version"]


def test_the_approved_release_runs() -> None:
    check_approved(_context({APPROVED_VERSION: __version__, "data-path": "/srv/bank.csv"}))


def test_another_release_is_refused_before_any_data_is_read() -> None:
    with pytest.raises(UnapprovedApp, match=r"approved fedcredit 0\.0\.9; the run ships"):
        check_approved(_context({APPROVED_VERSION: "0.0.9", "data-path": "/nonexistent.csv"}))


def test_simulations_have_nothing_to_approve() -> None:
    check_approved(_context({"partition-id": 0, "num-partitions": 2}))
