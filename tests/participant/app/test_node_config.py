"""The bank's node config: parsed once, strictly, and written the way Flower reads it back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flwr.app import Context, RecordDict
from flwr.common.config import parse_config_args

from credit.errors import ConfigError
from participant.app.node_config import NodeConfig, node_source
from privacy.budget import PrivacyBudget


def _context(node_config: dict[str, Any]) -> Context:
    return Context(run_id=1, node_id=2, node_config=node_config, state=RecordDict(), run_config={})


def test_to_flower_is_read_back_by_flower_and_parsed_to_the_same_config(tmp_path: Path) -> None:
    config = NodeConfig(
        data_path=tmp_path / "my bank" / "loans.csv.gz",
        bank_name="bank-a",
        max_epsilon=2.5,
        delta=1e-6,
        ledger_path=tmp_path / "ledger.jsonl",
        audit_log=tmp_path / "audit.jsonl",
        approved_version="0.1.0",
    )
    as_flower_reads_it = parse_config_args([config.to_flower()])
    assert as_flower_reads_it["max-epsilon"] == 2.5
    assert NodeConfig.from_context(_context(as_flower_reads_it)) == config


def test_a_bank_source_with_defaults_from_the_data_path(tmp_path: Path) -> None:
    source = node_source(_context({"data-path": str(tmp_path / "acme.csv.gz"), "max-epsilon": 1}))
    assert source.name == "acme"
    assert source.budget == PrivacyBudget(max_epsilon=1.0)
    assert source.ledger_path == tmp_path / "acme.privacy-ledger.jsonl"
    assert node_source(_context({"data-path": "/srv/b.csv"})).ledger_path is None


@pytest.mark.parametrize(
    ("node_config", "message"),
    [
        ({"data-path": "/srv/b.csv", "max-epsilom": 1.0}, "'max-epsilom': unknown key"),
        ({"data-path": "/b.csv", "max-epsilon": -1.0}, "'max-epsilon': Input should be greater"),
        ({"data-path": "/srv/b.csv", "delta": 1e-6}, "'delta' needs 'max-epsilon'"),
        ({"audit-log": "/a.jsonl", "audit-key": "/a.jsonl"}, "must differ from 'audit-log'"),
    ],
)
def test_a_bad_node_config_is_refused_naming_the_key(
    node_config: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        NodeConfig.from_context(_context(node_config))
    assert str(caught.value).startswith("node config: ")


def test_a_node_without_data_is_told_how_to_start() -> None:
    with pytest.raises(ConfigError, match="no 'data-path': start the SuperNode with"):
        node_source(_context({"partition-id": 0, "num-partitions": 3}))


def test_flowers_simulation_keys_are_not_the_banks() -> None:
    config = NodeConfig.from_context(_context({"partition-id": 1, "num-partitions": 3}))
    assert config == NodeConfig()
