"""``fedcredit participant``: a partner bank's commands.

Make the node's keys, check the bank's data file locally, and run the bank's
SuperNode next to its data.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli.console import EXIT_RUN_FAILED, Column, fail_cleanly, say, say_pairs, show_table
from credit.config_files import validate_fields
from credit.errors import ConfigError

if TYPE_CHECKING:
    from deploy.bundle import Bundle
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
    say(
        f"keys written to {files.folder}",
        "send to the consortium operator (public, safe to e-mail):",
        f"  {files.node_public}   node key: registers your SuperNode",
        f"  {files.audit_public}  audit key: checks your audit log",
        "never send, copy or back up off-site unencrypted (mode 0600):",
        f"  {files.node_key}",
        f"  {files.audit_key}",
    )


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
        say(f"warning: {warning}")
    show_table(
        f"{profile.source}: {profile.rows:,} rows, default rate "
        f"{profile.default_rate:.1%} (checked locally; nothing was sent)",
        ["column", "type", Column("missing", justify="right"), "min … max / categories"],
        [(row.name, row.kind, row.missing, row.summary) for row in profile.columns],
    )
    say("ok: the file meets the schema")


Home = Annotated[
    Path,
    typer.Option(
        help="The node folder: service files, privacy ledger, audit log (kept at the bank)."
    ),
]
DEFAULT_HOME = Path("fedcredit-node")


BundleOption = Annotated[
    Path, typer.Option(help="The onboarding bundle (folder or bundle.toml) from the operator.")
]
Key = Annotated[Path, typer.Option(help="The node's private key (`participant keygen`).")]
Data = Annotated[Path, typer.Option(help="The bank's data file (CSV, plain or gzip).")]
MaxEpsilon = Annotated[
    float | None,
    typer.Option(
        help="The bank's record-level privacy budget (default: the bundle's recommendation)."
    ),
]
Delta = Annotated[float | None, typer.Option(help="The bank's delta (default 1/(10 n_train)).")]
NoDp = Annotated[
    bool,
    typer.Option(
        "--no-dp", help="Train without differential privacy (only if the bank decided so)."
    ),
]
AuditKey = Annotated[
    Path | None,
    typer.Option(help="The bank's audit-signing key (default: audit.key beside --key)."),
]
RuntimePort = Annotated[
    int, typer.Option(help="Local port of the SuperNode runtime API (one per node on a host).")
]


@participant_app.command("start")
def start(
    bundle: BundleOption,
    key: Key,
    data: Data,
    max_epsilon: MaxEpsilon = None,
    delta: Delta = None,
    no_dp: NoDp = False,
    audit_key: AuditKey = None,
    home: Home = DEFAULT_HOME,
    runtime_port: RuntimePort = 9094,
) -> None:
    """Validate the data, then start the bank's SuperNode (TLS and node key) in the background."""
    from credit.loading import load_bank_csv
    from credit.schema import load_schema
    from deploy.bundle import Bundle
    from participant.node.supernode import NodeSettings, start_node

    with fail_cleanly():
        loaded = Bundle.load(bundle)
        budget = _node_budget(loaded, max_epsilon=max_epsilon, delta=delta, no_dp=no_dp)
        say(f"checking {data} against the consortium's schema (nothing leaves) ...")
        checked = load_bank_csv(data, load_schema(loaded.schema_path))
        say(f"  {checked.n_rows:,} rows pass the schema of '{loaded.consortium}'")
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
    privacy = f"max ε {budget.max_epsilon:g}" if budget is not None else "no differential privacy"
    state = (
        "connected"
        if started.connected
        else "not connected yet: the edge does not answer, the node keeps retrying"
    )
    say(
        f"{loaded.bank}: SuperNode started (pid {started.pid}) towards {loaded.superlink} with "
        f"TLS and its node key, {state}; {privacy}."
    )
    say_pairs(
        [
            ("log:", settings.home / "services" / "supernode.log"),
            ("ledger:", settings.ledger),
            ("audit:", settings.audit_log),
        ]
    )


def _node_budget(
    bundle: Bundle, *, max_epsilon: float | None, delta: float | None, no_dp: bool
) -> PrivacyBudget | None:
    """The bank's budget: its flags, else the bundle's recommendation; None with --no-dp."""
    from privacy.budget import PrivacyBudget

    if no_dp and max_epsilon is not None:
        raise ConfigError("give either --max-epsilon or --no-dp, not both", source="--no-dp")
    if no_dp:
        return None
    recommended = bundle.privacy.max_epsilon if bundle.privacy is not None else None
    epsilon = max_epsilon if max_epsilon is not None else recommended
    if epsilon is None:
        raise ConfigError(
            "no privacy budget: set --max-epsilon (the bank's record-level budget), or "
            "--no-dp to train without differential privacy",
            source="--max-epsilon",
        )
    return validate_fields(
        PrivacyBudget,
        {"max_epsilon": epsilon, "delta": delta},
        source="fedcredit participant start",
        spelled={"max_epsilon": "--max-epsilon", "delta": "--delta"},
    )


@participant_app.command("stop")
def stop(home: Home = DEFAULT_HOME) -> None:
    """Stop the bank's SuperNode."""
    from participant.node.supernode import stop_node

    if stop_node(home):
        say(f"stopped the SuperNode of {home}")
    else:
        say(f"no SuperNode runs from {home}")


@participant_app.command("status")
def status(home: Home = DEFAULT_HOME) -> None:
    """Show whether the bank's SuperNode runs (exit code 1 if not)."""
    from participant.node.supernode import node_status

    state = node_status(home)
    if state.running:
        say(f"SuperNode running (pid {state.pid}); log: {state.log}")
        return
    say(f"SuperNode not running; log: {state.log}")
    raise typer.Exit(EXIT_RUN_FAILED)
