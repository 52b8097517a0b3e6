"""``fedcredit participant``: a partner bank's commands.

Make the node's keys, check the bank's data file locally, and run the bank's
SuperNode next to its data.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from cli.console import EXIT_RUN_FAILED, console, fail_cleanly
from credit.errors import ConfigError

if TYPE_CHECKING:
    from privacy.budget import PrivacyBudget

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
    from participant.node.node_keys import generate_bank_keys

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
    from participant.node.check import profile_bank_data, resolve_schema

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


Home = Annotated[
    Path,
    typer.Option(
        help="The node folder: service files, privacy ledger, audit log (kept at the bank)."
    ),
]
DEFAULT_HOME = Path("fedcredit-node")


@participant_app.command("start")
def start(
    bundle: Annotated[
        Path,
        typer.Option(help="The onboarding bundle (folder or bundle.toml) from the operator."),
    ],
    key: Annotated[Path, typer.Option(help="The node's private key (`participant keygen`).")],
    data: Annotated[Path, typer.Option(help="The bank's data file (CSV, plain or gzip).")],
    max_epsilon: Annotated[
        float | None,
        typer.Option(
            help="The bank's record-level privacy budget (default: the bundle's recommendation)."
        ),
    ] = None,
    delta: Annotated[
        float | None, typer.Option(help="The bank's delta (default 1/(10 n_train)).")
    ] = None,
    no_dp: Annotated[
        bool,
        typer.Option(
            "--no-dp", help="Train without differential privacy (only if the bank decided so)."
        ),
    ] = False,
    audit_key: Annotated[
        Path | None,
        typer.Option(help="The bank's audit-signing key (default: audit.key beside --key)."),
    ] = None,
    home: Home = DEFAULT_HOME,
    runtime_port: Annotated[
        int,
        typer.Option(help="Local port of the SuperNode runtime API (one per node on a host)."),
    ] = 9094,
) -> None:
    """Validate the data, then start the bank's SuperNode (TLS and node key) in the background."""
    from credit.loading import load_bank_csv
    from credit.schema import load_schema
    from deploy.bundle import Bundle
    from participant.node.supernode import NodeSettings, start_node

    with fail_cleanly():
        loaded = Bundle.load(bundle)
        recommended = loaded.privacy.max_epsilon if loaded.privacy is not None else None
        epsilon = max_epsilon if max_epsilon is not None else recommended
        if no_dp and max_epsilon is not None:
            raise ConfigError("give either --max-epsilon or --no-dp, not both", source="--no-dp")
        if no_dp:
            epsilon = None
        elif epsilon is None:
            raise ConfigError(
                "no privacy budget: set --max-epsilon (the bank's record-level budget), or "
                "--no-dp to train without differential privacy",
                source="--max-epsilon",
            )
        budget = None if epsilon is None else _bank_budget(epsilon, delta)
        console.print(f"checking {data} against the consortium's schema (nothing leaves) ...")
        checked = load_bank_csv(data, load_schema(loaded.schema_path))
        console.print(f"  {checked.n_rows:,} rows pass the schema of '{loaded.consortium}'")
        settings = NodeSettings(
            bundle=loaded,
            key=key.expanduser().resolve(),
            data=data.expanduser().resolve(),
            home=home.expanduser().resolve(),
            budget=budget,
            audit_key=(audit_key or key.with_name("audit.key")).expanduser().resolve(),
            runtime_port=runtime_port,
        )
        started = start_node(settings)
    privacy = f"max ε {epsilon:g}" if epsilon is not None else "no differential privacy"
    state = (
        "connected"
        if started.connected
        else "not connected yet: the edge does not answer, the node keeps retrying"
    )
    console.print(
        f"{loaded.bank}: SuperNode started (pid {started.pid}) towards {loaded.superlink} with "
        f"TLS and its node key, {state}; {privacy}.\n"
        f"  log:    {settings.home / 'services' / 'supernode.log'}\n"
        f"  ledger: {settings.ledger}\n  audit:  {settings.audit_log}"
    )


@participant_app.command("stop")
def stop(home: Home = DEFAULT_HOME) -> None:
    """Stop the bank's SuperNode."""
    from participant.node.supernode import stop_node

    if stop_node(home):
        console.print(f"stopped the SuperNode of {home}")
    else:
        console.print(f"no SuperNode runs from {home}")


@participant_app.command("status")
def status(home: Home = DEFAULT_HOME) -> None:
    """Show whether the bank's SuperNode runs (exit code 1 if not)."""
    from participant.node.supernode import node_status

    state = node_status(home)
    if state.running:
        console.print(f"SuperNode running (pid {state.pid}); log: {state.log}")
        return
    console.print(f"SuperNode not running; log: {state.log}")
    raise typer.Exit(EXIT_RUN_FAILED)


def _bank_budget(max_epsilon: float, delta: float | None) -> PrivacyBudget:
    """The bank's budget from its flags (ConfigError naming the flag)."""
    from pydantic import ValidationError

    from privacy.budget import PrivacyBudget

    try:
        return PrivacyBudget(max_epsilon=max_epsilon, delta=delta)
    except ValidationError as exc:
        first = exc.errors()[0]
        flag = "--delta" if first["loc"] == ("delta",) else "--max-epsilon"
        value = delta if flag == "--delta" else max_epsilon
        raise ConfigError(f"{first['msg']}; got {value}", source=flag) from exc
