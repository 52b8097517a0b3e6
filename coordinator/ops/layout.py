"""Where everything of one consortium lives: the folder ``fedcredit coordinator init`` makes.

::

    DIR/
      consortium.toml            the consortium config (see coordinator.ops.consortium)
      ca/ca.crt, ca/ca.key       the consortium's certificate authority (key 0600)
      tls/server.pem, server.key the SuperLink's and edge's server certificate
      flwr-home/config.toml      a private FLWR_HOME: the "consortium" connection
      state/superlink.db         the SuperLink's persistent database
      edge/nginx.conf            the edge proxy's configuration (fleet API only)
      services/                  pid and log files of the SuperLink and the edge
      audit/coordinator.key|.pub the coordinator's Ed25519 audit-signing key
      members.json               the member list banks pin (names and audit keys)
      participants/<bank>/       registered key, node id and onboarding bundle
      runs/<run-name>/           each run's outputs, checkpoint and audit log

Both the consortium commands and the launch and service code use these paths and
nothing else, so the folder stays movable only as a whole (paths written into
``flwr-home/config.toml`` and ``edge/nginx.conf`` are absolute).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["CONNECTION", "ConsortiumPaths"]

CONNECTION = "consortium"
"""The name of the SuperLink connection in ``flwr-home/config.toml``."""


@dataclass(frozen=True)
class ConsortiumPaths:
    """The files and folders of the consortium folder ``root``."""

    root: Path

    @classmethod
    def of(cls, root: Path) -> ConsortiumPaths:
        """Paths for the consortium folder ``root`` (made absolute)."""
        return cls(root.expanduser().resolve())

    @property
    def config_file(self) -> Path:
        return self.root / "consortium.toml"

    @property
    def ca_cert(self) -> Path:
        return self.root / "ca" / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.root / "ca" / "ca.key"

    @property
    def server_cert(self) -> Path:
        return self.root / "tls" / "server.pem"

    @property
    def server_key(self) -> Path:
        return self.root / "tls" / "server.key"

    @property
    def flwr_home(self) -> Path:
        return self.root / "flwr-home"

    @property
    def database(self) -> Path:
        return self.root / "state" / "superlink.db"

    @property
    def edge_config(self) -> Path:
        return self.root / "edge" / "nginx.conf"

    @property
    def services(self) -> Path:
        return self.root / "services"

    @property
    def audit_key(self) -> Path:
        return self.root / "audit" / "coordinator.key"

    @property
    def audit_public_key(self) -> Path:
        return self.root / "audit" / "coordinator.pub"

    @property
    def members(self) -> Path:
        """The consortium's member list (:class:`~privacy.secagg.members.MemberList`)."""
        return self.root / "members.json"

    @property
    def participants(self) -> Path:
        return self.root / "participants"

    def participant(self, bank: str) -> Path:
        """The folder of one registered bank."""
        return self.participants / bank

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    def run(self, run_name: str) -> Path:
        """The output folder of one run."""
        return self.runs / run_name
