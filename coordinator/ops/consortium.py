"""The consortium folder: its config file, and ``fedcredit coordinator init``.

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

:func:`init_consortium` creates the folder (see :mod:`coordinator.ops.layout`): config,
schema copy, CA and server certificate, the private ``FLWR_HOME`` and the edge
proxy's configuration. :func:`load_consortium` reads it back.
"""

from __future__ import annotations

import hashlib
import shutil
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from coordinator.ops.layout import CONNECTION, ConsortiumPaths
from credit.errors import ConfigError
from credit.model_spec import ModelKind
from credit.schema import embedded_schema_path, load_schema
from deploy.bundle import first_problem
from privacy.budget import PrivacyBudget

__all__ = [
    "Consortium",
    "ConsortiumConfig",
    "RunDefaults",
    "init_consortium",
    "load_consortium",
    "write_flower_config",
]

_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RunDefaults(_Section):
    """Defaults of every run ``fedcredit coordinator launch`` submits.

    The bounds are those of :class:`credit.run_config.RunConfig`, which receives them.
    """

    rounds: int = Field(default=10, ge=1)
    model: ModelKind = ModelKind.LOGREG
    min_banks: int = Field(default=2, ge=1)
    local_epochs: int = Field(default=1, ge=1)
    batch_size: int = Field(default=64, ge=1)
    learning_rate: float = Field(default=0.01, gt=0)
    secure_aggregation: bool = True


class ConsortiumConfig(BaseModel):
    """The contents of ``consortium.toml``.

    Parameters
    ----------
    name : str
        The consortium's name (letters, digits, ``.``, ``_``, ``-``).
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
        The folder is not a consortium folder, or ``consortium.toml`` is not valid
        TOML or breaks a rule; the message names the file and the key.
    """
    paths = ConsortiumPaths.of(root)
    source = str(paths.config_file)
    try:
        data = paths.config_file.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"{paths.root} is not a consortium folder (no consortium.toml); run "
            f"`fedcredit coordinator init {root} --name NAME --host HOST` first"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read ({exc.strerror})", source=source) from exc
    try:
        raw = tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"not valid TOML ({exc})", source=source) from exc
    config = _validate(raw, source)
    return Consortium(config=config, paths=paths, config_sha256=hashlib.sha256(data).hexdigest())


def _validate(raw: dict[str, Any], source: str) -> ConsortiumConfig:
    try:
        return ConsortiumConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(first_problem(exc), source=source) from exc


def build_config(fields: dict[str, Any], *, source: str) -> ConsortiumConfig:
    """Validate config fields given on the command line (ConfigError naming the flag)."""
    return _validate(fields, source)


def init_consortium(
    root: Path, config: ConsortiumConfig, *, schema: Path | None = None
) -> Consortium:
    """Create the consortium folder ``root`` (it may exist, but must hold no consortium).

    Parameters
    ----------
    root : pathlib.Path
        The folder to create or fill.
    config : ConsortiumConfig
        The consortium's config, written to ``consortium.toml``.
    schema : pathlib.Path, optional
        The dataset schema to copy in; the embedded UCI schema when omitted. It is
        validated first.

    Raises
    ------
    ConfigError
        ``root`` already holds a consortium, or the schema is invalid.
    """
    from coordinator.ops import edge, pki
    from credit.audit import load_or_create_signing_key

    paths = ConsortiumPaths.of(root)
    if paths.config_file.exists() or paths.ca_key.exists():
        raise ConfigError(
            f"{paths.root} already holds a consortium; pick a new folder "
            "(init never overwrites keys or certificates)"
        )
    schema_source = schema if schema is not None else embedded_schema_path()
    load_schema(schema_source)  # refuse a broken schema before writing anything
    paths.root.mkdir(parents=True, exist_ok=True)
    for folder in (paths.database.parent, paths.services, paths.participants, paths.runs):
        folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(schema_source, paths.root / config.schema_file)

    ca = pki.create_ca(config.name)
    pki.write_private_key(ca.key, paths.ca_key)
    pki.write_certificate(ca.certificate, paths.ca_cert)
    sans = [*config.hosts, config.admin_host]
    server_key, server_certificate = pki.issue_server_certificate(ca, sans)
    pki.write_private_key(server_key, paths.server_key)
    pki.write_certificate(server_certificate, paths.server_cert)

    load_or_create_signing_key(paths.audit_key)  # the coordinator's audit-log key

    paths.config_file.write_text(config.to_toml(), encoding="utf-8")
    consortium = load_consortium(paths.root)
    write_flower_config(consortium)
    edge.write_edge_config(consortium)
    return consortium


def write_flower_config(consortium: Consortium) -> Path:
    """Write ``flwr-home/config.toml`` with the ``consortium`` connection as default.

    The root certificate path is absolute, as Flower requires.
    """
    paths = consortium.paths
    document = {
        "superlink": {
            "default": CONNECTION,
            CONNECTION: {
                "address": consortium.config.superlink_address,
                "root-certificates": str(paths.ca_cert),
            },
        }
    }
    target = paths.flwr_home / "config.toml"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(tomli_w.dumps(document), encoding="utf-8")
    return target
