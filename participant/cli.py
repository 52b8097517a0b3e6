"""``fedcredit participant``: a partner bank's commands.

Make the node's keys, check the bank's data file locally, and run the bank's
SuperNode next to its data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from credit.console import console, fail_cleanly
from participant.node_commands import register as register_node_commands

__all__ = ["participant_app"]

participant_app = typer.Typer(
    help="Partner bank: node keys, local data checks, the bank's SuperNode.",
    no_args_is_help=True,
)


@participant_app.command("keygen")
def keygen(
    folder: Annotated[Path, typer.Argument(help="Folder for the bank's keys (created).")],
) -> None:
    """Make the bank's node key (ECDSA P-384) and audit-signing key (Ed25519).

    The private keys (node.key, audit.key) never leave this machine; send only
    node.pub and audit.pub to the consortium operator.
    """
    from participant.keys import generate_bank_keys

    with fail_cleanly():
        files = generate_bank_keys(folder)
    console.print(f"keys written to {files.folder}", highlight=False)
    console.print("send to the consortium operator (public, safe to e-mail):", highlight=False)
    console.print(f"  {files.node_public}   node key: registers your SuperNode", highlight=False)
    console.print(f"  {files.audit_public}  audit key: checks your audit log", highlight=False)
    console.print("never send, copy or back up off-site unencrypted (mode 0600):", highlight=False)
    console.print(f"  {files.node_key}", highlight=False)
    console.print(f"  {files.audit_key}", highlight=False)


@participant_app.command("check")
def check(
    data: Annotated[Path, typer.Argument(help="The bank's data CSV (plain or gzip).")],
    schema: Annotated[
        Path | None,
        typer.Option(
            help="Schema TOML, or the bundle folder from the operator; default: embedded schema."
        ),
    ] = None,
) -> None:
    """Validate and profile the bank's data file. Nothing leaves this machine."""
    from participant.check import profile_bank_data, resolve_schema

    with fail_cleanly():
        profile = profile_bank_data(data, resolve_schema(schema))
    for warning in profile.warnings:
        console.print(f"warning: {warning}", highlight=False)
    table = Table(
        title=(
            f"{profile.source}: {profile.rows:,} rows, default rate "
            f"{profile.default_rate:.1%} (checked locally; nothing was sent)"
        )
    )
    for column, justify in (("column", "left"), ("type", "left"), ("missing", "right")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    table.add_column("min … max / categories")
    for row in profile.columns:
        table.add_row(row.name, row.kind, str(row.missing), row.summary)
    console.print(table)
    console.print("ok: the file meets the schema", highlight=False)


register_node_commands(participant_app)
