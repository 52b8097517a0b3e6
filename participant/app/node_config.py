"""Where a participant finds its rows, from Flower's node and run configuration.

* Deployment: the SuperNode's node config names the file (``data-path``) and, when
  given, the bank's display name (``bank-name``) and schema copy (``schema-path``).
* Simulation through ``flwr run``: Flower's Simulation Engine sets ``partition-id``
  and ``num-partitions``; the run config's ``data``, ``partition``, ``alpha``,
  ``partition-column`` and ``seed`` say how the data set is split into banks.
* ``fedcredit simulate`` writes one file per bank first and passes a
  :class:`PartitionPlan` instead, so each bank reads only its own file.

The node config also says where the bank keeps its signed audit log (``audit-log``,
and ``audit-key`` for its Ed25519 key); without ``audit-log`` it keeps none.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from flwr.app import Context

from credit.errors import ConfigError
from credit.run_config import RunConfig
from participant.app.bank import BankSource
from privacy.budget import PrivacyBudget

__all__ = ["AuditSettings", "PartitionPlan", "audit_settings", "source_from_context"]

DATA_PATH = "data-path"
BANK_NAME = "bank-name"
SCHEMA_PATH = "schema-path"
MAX_EPSILON = "max-epsilon"
DELTA = "delta"
LEDGER_PATH = "ledger-path"
PARTITION_ID = "partition-id"
NUM_PARTITIONS = "num-partitions"
AUDIT_LOG = "audit-log"
AUDIT_KEY = "audit-key"


@dataclass(frozen=True)
class AuditSettings:
    """Where a bank keeps its audit log and signing key, and the name it signs as."""

    log_path: Path
    key_path: Path
    writer: str


def audit_settings(context: Context) -> AuditSettings | None:
    """The bank's audit settings from its node config; None without ``audit-log``.

    ``audit-key`` defaults to the log's path with the suffix ``.key`` (created on
    first use, its public key beside it as ``.pub``).
    """
    node = context.node_config
    if AUDIT_LOG not in node:
        return None
    log_path = Path(str(node[AUDIT_LOG]))
    key_path = Path(str(node[AUDIT_KEY])) if AUDIT_KEY in node else log_path.with_suffix(".key")
    if key_path == log_path:
        raise ConfigError(f"'{AUDIT_KEY}' must differ from '{AUDIT_LOG}'", source="node config")
    name = node.get(BANK_NAME)
    if name is None and DATA_PATH in node:
        name = Path(str(node[DATA_PATH])).stem.split(".")[0]
    return AuditSettings(log_path=log_path, key_path=key_path, writer=f"bank {name or '?'}")


@dataclass(frozen=True)
class PartitionPlan:
    """The banks of a simulation, indexed by Flower's ``partition-id``."""

    banks: tuple[BankSource, ...]

    def __call__(self, context: Context) -> BankSource:
        partition_id = _node_int(context, PARTITION_ID)
        if not 0 <= partition_id < len(self.banks):
            raise ConfigError(
                f"partition-id {partition_id} outside the plan's {len(self.banks)} banks",
                source="node config",
            )
        return self.banks[partition_id]


def source_from_context(context: Context) -> BankSource:
    """Resolve the bank's data source from node config (deployment) or run config."""
    node = context.node_config
    if DATA_PATH in node:
        data_path = Path(str(node[DATA_PATH]))
        schema = Path(str(node[SCHEMA_PATH])) if SCHEMA_PATH in node else None
        name = str(node.get(BANK_NAME, data_path.stem.split(".")[0]))
        budget = _node_budget(context)
        return BankSource(
            name=name,
            data_path=data_path,
            schema_path=schema,
            budget=budget,
            ledger_path=None if budget is None else _ledger_path(context, name),
        )
    if PARTITION_ID not in node:
        raise ConfigError(
            f"node config has neither '{DATA_PATH}' nor '{PARTITION_ID}'; start the SuperNode "
            f"with --node-config '{DATA_PATH}=\"/path/to/bank.csv\"'",
            source="node config",
        )
    config = RunConfig.from_flower(context.run_config)
    return _simulated_source(
        partition_id=_node_int(context, PARTITION_ID),
        num_partitions=_node_int(context, NUM_PARTITIONS),
        config=config,
    )


def _node_budget(context: Context) -> PrivacyBudget | None:
    """The bank's budget from its node config; None when it sets no ``max-epsilon``."""
    node = context.node_config
    if MAX_EPSILON not in node:
        return None
    try:
        max_epsilon = float(node[MAX_EPSILON])
        delta = float(node[DELTA]) if DELTA in node else None
        return PrivacyBudget(max_epsilon=max_epsilon, delta=delta)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid privacy budget: {exc}", source="node config") from exc


def _ledger_path(context: Context, bank: str) -> Path:
    """The ledger the node config names, else ``<bank>.privacy-ledger.jsonl`` beside the data."""
    node = context.node_config
    data_path = Path(str(node[DATA_PATH]))
    return Path(str(node.get(LEDGER_PATH, data_path.parent / f"{bank}.privacy-ledger.jsonl")))


def _node_int(context: Context, key: str) -> int:
    value = context.node_config[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"'{key}' is {value!r}, expected an integer", source="node config")
    return value


@functools.lru_cache(maxsize=4)
def _simulated_source(*, partition_id: int, num_partitions: int, config: RunConfig) -> BankSource:
    from simulations.partition import partition_for_config

    data = partition_for_config(config, num_partitions)
    partitions = data.partitions
    if partition_id >= len(partitions):
        raise ConfigError(
            f"partition-id {partition_id} but the '{config.partition}' split has "
            f"{len(partitions)} banks; "
            f"run with num-supernodes={len(partitions)}",
            source="federation config",
        )
    part = partitions[partition_id]
    return BankSource(
        name=part.name,
        data_path=data.data_path,
        schema_path=data.schema_path,
        rows=tuple(int(r) for r in part.rows),
    )
