"""The relay's node config: the guard's socket, nothing of the bank's, parsed strictly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flwr.app import Context, RecordDict
from flwr.common.config import parse_config_args

from credit.errors import ConfigError
from participant.relay.node_config import RelayConfig


def _context(node_config: dict[str, Any]) -> Context:
    return Context(run_id=1, node_id=2, node_config=node_config, state=RecordDict(), run_config={})


def test_to_flower_is_read_back_by_flower_and_parsed_to_the_same_config(tmp_path: Path) -> None:
    config = RelayConfig(guard_socket=tmp_path / "my bank" / "guard.sock")
    as_flower_reads_it = parse_config_args([config.to_flower()])
    assert as_flower_reads_it == {"guard-socket": str(tmp_path / "my bank" / "guard.sock")}
    assert RelayConfig.from_context(_context(as_flower_reads_it)) == config


@pytest.mark.parametrize(
    ("node_config", "message"),
    [
        ({}, "'guard-socket': Field required"),
        ({"guard-socket": "/g.sock", "data-path": "/srv/b.csv"}, "'data-path': unknown key"),
        ({"guard-socket": "/g.sock", "audit-key": "/k"}, "'audit-key': unknown key"),
    ],
)
def test_a_bad_node_config_is_refused_naming_the_key(
    node_config: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        RelayConfig.from_context(_context(node_config))
    assert str(caught.value).startswith("node config: ")


def test_flowers_simulation_keys_are_not_the_banks() -> None:
    config = RelayConfig.from_context(
        _context({"partition-id": 1, "num-partitions": 3, "guard-socket": "/g.sock"})
    )
    assert config == RelayConfig(guard_socket=Path("/g.sock"))
