"""``fedcredit coordinator init``: create a consortium folder and the files derived from it.

Provisioning writes, in this order, and never over an existing consortium (see
:mod:`coordinator.ops.layout` for where each lives):

1. the folders, and a copy of the dataset schema (validated first);
2. the consortium CA and the server certificate of the SuperLink and the edge
   (:mod:`coordinator.ops.pki`);
3. the coordinator's audit-signing key;
4. ``consortium.toml`` (:class:`~coordinator.ops.consortium.ConsortiumConfig`);
5. the files derived from the config, which ``coordinator start`` rewrites each
   time: the private ``FLWR_HOME`` with the ``consortium`` connection and the edge
   proxy's ``nginx.conf`` (:func:`write_derived_files`).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import tomli_w

from coordinator.ops import edge, pki
from coordinator.ops.consortium import Consortium, ConsortiumConfig, load_consortium
from coordinator.ops.layout import CONNECTION, ConsortiumPaths
from credit.audit import load_or_create_signing_key
from credit.errors import ConfigError
from credit.schema import embedded_schema_path, load_schema

__all__ = ["init_consortium", "write_derived_files", "write_flower_config"]


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
        ``root`` already holds a consortium.
    SchemaError
        The schema is invalid (nothing is written).
    """
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
    _write_pki(paths, config)
    load_or_create_signing_key(paths.audit_key)  # the coordinator's audit-log key
    paths.config_file.write_text(config.to_toml(), encoding="utf-8")
    consortium = load_consortium(paths.root)
    write_derived_files(consortium)
    return consortium


def _write_pki(paths: ConsortiumPaths, config: ConsortiumConfig) -> None:
    """The consortium CA and the server certificate for every host and the admin host."""
    ca = pki.create_ca(config.name)
    pki.write_private_key(ca.key, paths.ca_key)
    pki.write_certificate(ca.certificate, paths.ca_cert)
    sans = [*config.hosts, config.admin_host]
    server_key, server_certificate = pki.issue_server_certificate(ca, sans)
    pki.write_private_key(server_key, paths.server_key)
    pki.write_certificate(server_certificate, paths.server_cert)


def write_derived_files(consortium: Consortium) -> None:
    """(Re)write the Flower connection and the edge config from ``consortium.toml``."""
    write_flower_config(consortium)
    edge.write_edge_config(consortium)


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
