"""The consortium folder's config: ``consortium.toml``, parsed once, and the loaded folder.

``DIR/consortium.toml`` is the operator's single source of truth: the consortium's
name, the hosts banks dial, where the SuperLink and the edge proxy listen, the
dataset schema, run defaults and the privacy budget recommended to banks. It is
parsed once into a frozen :class:`ConsortiumConfig`; every error names the file and
the key. Example::

    name = "northern-credit"
    hosts = ["fl.northern-credit.example"]
    admin_host = "127.0.0.1"
    superlink_port = 9092
    edge_host = "0.0.0.0"
    edge_port = 9443
    edge_address = "fl.northern-credit.example:9443"
    schema = "schema.toml"

    [run]
    rounds = 10
    model = "logreg"
    min_banks = 2

    [privacy]
    max_epsilon = 3.0

:func:`load_consortium` reads the folder (see :mod:`coordinator.ops.layout`);
:mod:`coordinator.ops.provisioning` creates it.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from coordinator.ops.layout import ConsortiumPaths
from credit.config_files import read_toml, validate_fields
from credit.run_config import RunConfig
from privacy.budget import PrivacyBudget

__all__ = [
    "RUN_DEFAULT_FIELDS",
    "Consortium",
    "ConsortiumConfig",
    "RunDefaults",
    "build_config",
    "load_consortium",
]

_NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
"""The member list's rule (:class:`~privacy.secagg.members.MemberList`): the consortium's
name is part of every bank's signed secure-aggregation message."""


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


RUN_DEFAULT_FIELDS = (
    "rounds",
    "model",
    "min_banks",
    "local_epochs",
    "local_steps",
    "batch_size",
    "learning_rate",
    "secure_aggregation",
    "secagg_threshold_fraction",
    "strategy",
    "proximal_mu",
    "server_learning_rate",
    "server_momentum",
    "server_beta1",
    "server_beta2",
    "server_tau",
)
"""The :class:`~credit.run_config.RunConfig` fields a consortium sets defaults for."""


def _run_config_subset(names: tuple[str, ...]) -> type[_Section]:
    """A frozen section with ``names``' types, defaults and bounds taken from RunConfig."""
    fields: dict[str, Any] = {
        name: (RunConfig.model_fields[name].annotation, copy.deepcopy(RunConfig.model_fields[name]))
        for name in names
    }
    return create_model("RunConfigSubset", __base__=_Section, __module__=__name__, **fields)


class RunDefaults(_run_config_subset(RUN_DEFAULT_FIELDS)):  # type: ignore[misc]
    """Defaults of every run ``fedcredit coordinator launch`` submits (``[run]``).

    The fields are :data:`RUN_DEFAULT_FIELDS`, with the types, defaults and bounds
    of :class:`credit.run_config.RunConfig`, which receives them (rounds 10, model
    ``logreg``, min_banks 2, local_epochs 0 (steps), local_steps 50, batch_size 64,
    learning_rate 0.01, secure_aggregation on, secagg_threshold_fraction 2/3, strategy
    ``fedavg`` and its options at Flower's defaults: :mod:`credit.strategy`). A strategy's
    options are checked against the strategy when a run is launched.
    """


class ConsortiumConfig(BaseModel):
    """The contents of ``consortium.toml``.

    Parameters
    ----------
    name : str
        The consortium's name: lower-case letters, digits and ``-`` (1-63), the rule of
        the member list, which carries it (banks sign it into every secure-aggregation
        message).
    hosts : tuple of str
        DNS names or IP addresses partner banks use to reach the edge; all go into
        the server certificate.
    admin_host : str, default 127.0.0.1
        Interface the SuperLink binds (Fleet, Control and Runtime APIs): loopback or
        an admin-only network, never the partner network.
    superlink_port : int, default 9092
        The SuperLink's port on ``admin_host``.
    edge_host : str, default 0.0.0.0
        Interface the edge proxy listens on for partner banks.
    edge_port : int, default 9443
        The edge proxy's port.
    edge_address : str
        ``host:port`` banks dial; default ``{hosts[0]}:{edge_port}``.
    schema : str, default ``schema.toml``
        The dataset schema, a file name inside the consortium folder.
    run : RunDefaults
        Defaults of each run.
    privacy : PrivacyBudget, optional
        Privacy budget recommended to banks (written into their bundles).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    name: str = Field(pattern=_NAME_PATTERN)
    hosts: tuple[str, ...] = Field(min_length=1)
    admin_host: str = "127.0.0.1"
    superlink_port: int = Field(default=9092, ge=1, le=65535)
    edge_host: str = "0.0.0.0"
    edge_port: int = Field(default=9443, ge=1, le=65535)
    edge_address: str = ""
    schema_file: str = Field(default="schema.toml", alias="schema")
    run: RunDefaults = RunDefaults()
    privacy: PrivacyBudget | None = None

    @model_validator(mode="after")
    def _check(self) -> Self:
        if any(not host.strip() or " " in host for host in self.hosts):
            raise ValueError(f"hosts must be DNS names or IP addresses; got {list(self.hosts)}")
        schema = Path(self.schema_file)
        if schema.is_absolute() or len(schema.parts) != 1:
            raise ValueError(
                f"'schema' must be a file name inside the consortium folder; got '{schema}'"
            )
        if self.superlink_port == self.edge_port and self.admin_host == self.edge_host:
            raise ValueError("the SuperLink and the edge cannot share one address and port")
        if not self.edge_address:
            host = self.hosts[0]
            shown = f"[{host}]" if ":" in host else host
            object.__setattr__(self, "edge_address", f"{shown}:{self.edge_port}")
        return self

    @property
    def superlink_address(self) -> str:
        """``host:port`` of the SuperLink for local tools (bind-all maps to loopback)."""
        return f"{_dialable(self.admin_host)}:{self.superlink_port}"

    def to_toml(self) -> str:
        """The TOML text of this config (unset optional values are left out)."""
        data = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        return tomli_w.dumps(data)


def _dialable(host: str) -> str:
    """The address to connect to for a bind address (0.0.0.0 and :: mean loopback)."""
    if host in {"0.0.0.0", ""}:
        return "127.0.0.1"
    if host in {"::", "[::]"}:
        return "[::1]"
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


@dataclass(frozen=True)
class Consortium:
    """A loaded consortium folder.

    Attributes
    ----------
    config : ConsortiumConfig
        The parsed ``consortium.toml``.
    paths : ConsortiumPaths
        Where everything lives.
    config_sha256 : str
        SHA-256 of ``consortium.toml``'s bytes (banks receive it in their bundle).
    """

    config: ConsortiumConfig
    paths: ConsortiumPaths
    config_sha256: str

    @property
    def schema_path(self) -> Path:
        """The consortium's dataset schema file."""
        return self.paths.root / self.config.schema_file

    @property
    def superlink_dial_host(self) -> str:
        """Host local tools and the edge connect to for the SuperLink."""
        return _dialable(self.config.admin_host)

    @property
    def edge_dial_host(self) -> str:
        """Host to connect to for the edge from this machine."""
        return _dialable(self.config.edge_host)


def load_consortium(root: Path) -> Consortium:
    """Read and validate the consortium folder ``root``.

    Raises
    ------
    ConfigError
        The folder is not a consortium folder, or ``consortium.toml`` cannot be read,
        is not valid TOML or breaks a rule; the message names the file and the key.
    """
    paths = ConsortiumPaths.of(root)
    file = read_toml(
        paths.config_file,
        if_missing=f"{paths.root} is not a consortium folder: run "
        f"`fedcredit coordinator init {root} --name NAME --host HOST` first",
    )
    config = validate_fields(ConsortiumConfig, file.table, source=str(file.path))
    return Consortium(config=config, paths=paths, config_sha256=file.sha256)


def build_config(fields: Mapping[str, Any], *, source: str) -> ConsortiumConfig:
    """Validate config fields given on the command line (ConfigError naming ``source``)."""
    return validate_fields(ConsortiumConfig, fields, source=source)
