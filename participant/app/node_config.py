"""The bank's node config: what its SuperNode tells the ClientApp, parsed once.

``fedcredit participant start`` writes the node config (:meth:`NodeConfig.to_flower`)
and Flower hands it to every message's ClientApp as ``context.node_config``; the
ClientApp reads it back with :meth:`NodeConfig.from_context` and, below that, works
with typed values only. It is the bank's own configuration: nothing in it comes from
the coordinator. In a simulation the Simulation Engine's node config holds only
Flower's ``partition-id`` and ``num-partitions``, and the simulation's own wiring
says where each simulated bank's rows are (see :mod:`simulations.engine`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flwr.app import Context
from pydantic import BaseModel, ConfigDict, Field, model_validator

from credit.config_files import validate_fields
from credit.errors import ConfigError
from participant.app.bank import BankSource
from privacy.budget import PrivacyBudget

__all__ = ["AuditSettings", "NodeConfig", "node_source"]

SOURCE = "node config"
FLOWER_KEYS = frozenset({"partition-id", "num-partitions"})
"""Keys Flower's Simulation Engine puts into a node config (not fedcredit's)."""


def _hyphenated(name: str) -> str:
    return name.replace("_", "-")


@dataclass(frozen=True)
class AuditSettings:
    """Where a bank keeps its audit log and signing key, and the name it signs as."""

    log_path: Path
    key_path: Path
    writer: str


class NodeConfig(BaseModel):
    """A bank's SuperNode configuration.

    Parameters
    ----------
    data_path : pathlib.Path, optional
        The bank's data file (CSV, plain or gzip); absent in simulations.
    bank_name : str, optional
        The bank's name; default: the data file's name without suffixes.
    schema_path : pathlib.Path, optional
        The consortium's dataset schema; the embedded schema when absent.
    max_epsilon, delta : float, optional
        The bank's privacy budget (no ``max-epsilon``: no differential privacy).
    ledger_path : pathlib.Path, optional
        The bank's privacy ledger; default ``<bank>.privacy-ledger.jsonl`` beside the data.
    audit_log, audit_key : pathlib.Path, optional
        The bank's signed audit log (none without ``audit-log``) and its Ed25519 key
        (default: the log's path with ``.key``).
    approved_version : str, optional
        The fedcredit release the bank approved (see :mod:`participant.app.approval`).
    """

    model_config = ConfigDict(
        frozen=True, extra="forbid", alias_generator=_hyphenated, populate_by_name=True
    )

    data_path: Path | None = None
    bank_name: str | None = Field(default=None, min_length=1)
    schema_path: Path | None = None
    max_epsilon: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    delta: float | None = Field(default=None, gt=0, lt=1)
    ledger_path: Path | None = None
    audit_log: Path | None = None
    audit_key: Path | None = None
    approved_version: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> NodeConfig:
        if self.delta is not None and self.max_epsilon is None:
            raise ValueError("'delta' needs 'max-epsilon'")
        if self.audit_key is not None and self.audit_key == self.audit_log:
            raise ValueError("'audit-key' must differ from 'audit-log'")
        return self

    @classmethod
    def from_context(cls, context: Context) -> NodeConfig:
        """Parse ``context.node_config`` (Flower's own simulation keys are ignored).

        Raises
        ------
        ConfigError
            An unknown key (a mistyped ``max-epsilon`` must not mean "no privacy") or
            a bad value, named with the key.
        """
        entries = {k: v for k, v in context.node_config.items() if k not in FLOWER_KEYS}
        return validate_fields(cls, entries, source=SOURCE)

    def to_flower(self) -> str:
        """The ``--node-config`` string of ``flower-supernode`` (space-separated TOML pairs)."""
        entries = self.model_dump(by_alias=True, exclude_none=True, mode="json")
        return " ".join(f"{key}={_toml_value(value)}" for key, value in entries.items())

    @property
    def name(self) -> str | None:
        """The bank's name: ``bank-name``, else the data file's stem."""
        if self.bank_name is not None:
            return self.bank_name
        return None if self.data_path is None else self.data_path.name.split(".")[0]

    @property
    def budget(self) -> PrivacyBudget | None:
        """The bank's privacy budget; None without ``max-epsilon``."""
        if self.max_epsilon is None:
            return None
        return PrivacyBudget(max_epsilon=self.max_epsilon, delta=self.delta)

    def bank_source(self) -> BankSource:
        """Where the bank's rows, schema, budget and ledger are.

        Raises
        ------
        ConfigError
            The node config names no ``data-path``.
        """
        if self.data_path is None or self.name is None:
            raise ConfigError(
                "no 'data-path': start the SuperNode with "
                "--node-config 'data-path=\"/path/to/bank.csv\"' (fedcredit participant start "
                "does); simulations run with `fedcredit simulate`",
                source=SOURCE,
            )
        budget = self.budget
        ledger = self.ledger_path or self.data_path.parent / f"{self.name}.privacy-ledger.jsonl"
        return BankSource(
            name=self.name,
            data_path=self.data_path,
            schema_path=self.schema_path,
            budget=budget,
            ledger_path=ledger if budget is not None else None,
        )

    def audit_settings(self) -> AuditSettings | None:
        """Where the bank's audit log and key are; None without ``audit-log``."""
        if self.audit_log is None:
            return None
        key = self.audit_key or self.audit_log.with_suffix(".key")
        return AuditSettings(
            log_path=self.audit_log, key_path=key, writer=f"bank {self.name or '?'}"
        )


def node_source(context: Context) -> BankSource:
    """The bank's data source from its node config (a deployed SuperNode)."""
    return NodeConfig.from_context(context).bank_source()


def _toml_value(value: Any) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(float(value)) if isinstance(value, float) else str(value)
