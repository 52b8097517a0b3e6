"""The relay's node config: where the bank's guard listens, and nothing else.

``fedcredit participant start`` writes it (:meth:`RelayConfig.to_flower`) into the
SuperNode's ``--node-config``; every ClientApp of every run can read it, so it holds
no path to the bank's data, ledger or keys, only the guard's socket.
"""

from __future__ import annotations

from pathlib import Path

from flwr.app import Context
from pydantic import BaseModel, ConfigDict

from credit.config_files import validate_fields

__all__ = ["GUARD_SOCKET", "RelayConfig"]

SOURCE = "node config"
GUARD_SOCKET = "guard-socket"
FLOWER_KEYS = frozenset({"partition-id", "num-partitions"})
"""Keys Flower's Simulation Engine puts into a node config (not fedcredit's)."""


class RelayConfig(BaseModel):
    """A bank's SuperNode configuration, as the relay reads it.

    Parameters
    ----------
    guard_socket : pathlib.Path
        The Unix socket of the bank's guard.
    """

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        alias_generator=lambda name: name.replace("_", "-"),
        populate_by_name=True,
    )

    guard_socket: Path

    @classmethod
    def from_context(cls, context: Context) -> RelayConfig:
        """Parse ``context.node_config`` (Flower's own simulation keys are ignored).

        Raises
        ------
        credit.errors.ConfigError
            No ``guard-socket``, or an unknown key, named.
        """
        entries = {k: v for k, v in context.node_config.items() if k not in FLOWER_KEYS}
        return validate_fields(cls, entries, source=SOURCE)

    def to_flower(self) -> str:
        """The ``--node-config`` string of ``flower-supernode``."""
        path = str(self.guard_socket).replace("\\", "\\\\").replace('"', '\\"')
        return f'{GUARD_SOCKET}="{path}"'
