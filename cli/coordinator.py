"""``fedcredit coordinator``: the consortium operator's commands.

Set up the consortium folder, onboard banks, run the SuperLink and its edge proxy,
and launch, list, stop or resume federated runs.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from cli.console import EXIT_RUN_FAILED, console, error_console, fail_cleanly
from credit.errors import ConfigError, OperationFailed
from credit.model_spec import ModelKind

__all__ = ["coordinator_app"]

coordinator_app = typer.Typer(
    help="Consortium operator: PKI, bank onboarding, SuperLink and edge, runs.",
    no_args_is_help=True,
)

DirArgument = Annotated[Path, typer.Argument(help="The consortium folder.")]


@coordinator_app.command("init")
def init(
    folder: DirArgument,
    name: Annotated[str, typer.Option(help="The consortium's name.")],
    host: Annotated[
        list[str],
        typer.Option(help="DNS name or IP banks dial (repeat for several); first = edge address."),
    ],
    schema: Annotated[
        Path | None,
        typer.Option(help="Dataset schema TOML to copy in; default: the embedded UCI schema."),
    ] = None,
    admin_host: Annotated[
        str, typer.Option(help="Interface of the SuperLink (loopback or an admin network).")
    ] = "127.0.0.1",
    superlink_port: Annotated[int, typer.Option(help="The SuperLink's port.")] = 9092,
    edge_host: Annotated[
        str, typer.Option(help="Interface the edge proxy listens on for banks.")
    ] = "0.0.0.0",
    edge_port: Annotated[int, typer.Option(help="The edge proxy's port.")] = 9443,
    edge_address: Annotated[
        str | None,
        typer.Option(help="host:port banks dial (default: first --host and --edge-port)."),
    ] = None,
    rounds: Annotated[int, typer.Option(help="Default rounds per run.")] = 10,
    model: Annotated[ModelKind, typer.Option(help="Default model family.")] = ModelKind.LOGREG,
    min_banks: Annotated[int, typer.Option(help="Fewest banks a round needs.")] = 2,
    max_epsilon: Annotated[
        float | None, typer.Option(help="Privacy budget recommended to each bank.")
    ] = None,
    delta: Annotated[float | None, typer.Option(help="Recommended delta.")] = None,
) -> None:
    """Create a consortium folder: CA, server certificate, config, FLWR_HOME, edge config."""
    from coordinator.ops.consortium import build_config, init_consortium

    with fail_cleanly():
        fields = {
            "name": name,
            "hosts": host,
            "admin_host": admin_host,
            "superlink_port": superlink_port,
            "edge_host": edge_host,
            "edge_port": edge_port,
            "run": {"rounds": rounds, "model": model, "min_banks": min_banks},
            "privacy": _recommended_budget(max_epsilon, delta),
        }
        if edge_address:
            fields["edge_address"] = edge_address
        config = build_config(fields, source="fedcredit coordinator init")
        consortium = init_consortium(folder, config, schema=schema)
    paths = consortium.paths
    console.print(f"consortium '{config.name}' created in {paths.root}", highlight=False)
    for label, path in (
        ("config", paths.config_file),
        ("CA certificate", paths.ca_cert),
        ("CA key (keep offline)", paths.ca_key),
        ("server certificate", paths.server_cert),
        ("Flower connection", paths.flwr_home / "config.toml"),
        ("edge proxy config", paths.edge_config),
    ):
        console.print(f"  {label:<22} {path}", highlight=False)
    console.print(
        f"banks will dial {config.edge_address}; next: `fedcredit coordinator start {folder}`",
        highlight=False,
    )


def _recommended_budget(max_epsilon: float | None, delta: float | None) -> dict[str, Any] | None:
    """The ``[privacy]`` section of a new consortium's config (None: no recommendation)."""
    if max_epsilon is None:
        if delta is not None:
            raise ConfigError("--delta needs --max-epsilon", source="--delta")
        return None
    return {"max_epsilon": max_epsilon, "delta": delta}


@coordinator_app.command("add-participant")
def add_participant(
    folder: DirArgument,
    bank: Annotated[str, typer.Argument(help="The bank's name (a-z, 0-9, '-').")],
    public_key: Annotated[
        Path, typer.Option(help="The bank's node.pub (from `fedcredit participant keygen`).")
    ],
) -> None:
    """Register a bank's node key with the running SuperLink and write its bundle."""
    from coordinator.ops import members as participants
    from coordinator.ops.consortium import load_consortium

    with fail_cleanly():
        consortium = load_consortium(folder)
        record = participants.add_participant(consortium, bank, public_key)
    bundle = consortium.paths.participant(bank) / "bundle"
    console.print(f"participant '{bank}' registered as node {record.node_id}", highlight=False)
    console.print(f"send this folder to the bank: {bundle}", highlight=False)


@coordinator_app.command("remove-participant")
def remove_participant(
    folder: DirArgument,
    bank: Annotated[str, typer.Argument(help="The bank's name.")],
) -> None:
    """Revoke a bank: unregister its node key (a running node is disconnected)."""
    from coordinator.ops import members as participants
    from coordinator.ops.consortium import load_consortium

    with fail_cleanly():
        consortium = load_consortium(folder)
        record = participants.remove_participant(consortium, bank)
    console.print(
        f"participant '{bank}' removed (node {record.node_id} unregistered)", highlight=False
    )


@coordinator_app.command("start")
def start(folder: DirArgument) -> None:
    """Start the SuperLink (TLS, node authentication) and the fleet-only edge proxy."""
    from coordinator.ops.consortium import load_consortium
    from coordinator.ops.services import start_services

    with fail_cleanly():
        consortium = load_consortium(folder)
        console.print("starting the SuperLink and the edge proxy ...")
        states = start_services(consortium)
    for state in states:
        console.print(
            f"  {state.name:<10} pid {state.pid}  {state.address}  log {state.log}",
            highlight=False,
        )
    console.print(
        f"banks connect to {consortium.config.edge_address} (Fleet API only)", highlight=False
    )


@coordinator_app.command("status")
def status(folder: DirArgument) -> None:
    """Show which services run and which banks are online."""
    from coordinator.ops.consortium import load_consortium
    from coordinator.ops.members import ParticipantStatus, list_participants
    from coordinator.ops.services import node_states, service_states

    with fail_cleanly():
        consortium = load_consortium(folder)
        states = service_states(consortium)
        records = list_participants(consortium)
    nodes: dict[int, str] | None = None
    unknown = "unknown (SuperLink down)"
    if states[0].up:
        try:
            nodes = {n.node_id: n.status for n in node_states(consortium)}
        except OperationFailed as exc:  # show the services anyway
            unknown = "unknown (flwr supernode ls failed)"
            error_console.print(f"warning: {exc}", markup=False, highlight=False)
    services = Table(title=f"Consortium '{consortium.config.name}' services")
    for column in ("service", "state", "pid", "address"):
        services.add_column(column, no_wrap=True)
    services.add_column("log", overflow="fold")
    for state in states:
        services.add_row(
            state.name,
            "up" if state.up else "down",
            str(state.pid or "-"),
            state.address,
            str(state.log),
        )
    console.print(services)
    banks = Table(title="Participants")
    for column in ("bank", "node id", "status"):
        banks.add_column(column)
    for record in records:
        if record.status is ParticipantStatus.REMOVED:
            shown = "removed"
        elif nodes is None:
            shown = unknown
        else:
            shown = "online" if nodes.get(record.node_id) == "online" else "offline"
        banks.add_row(record.name, str(record.node_id), shown)
    console.print(banks)


@coordinator_app.command("shutdown")
def shutdown(folder: DirArgument) -> None:
    """Stop the edge proxy, then the SuperLink (runs in progress stop with them)."""
    from coordinator.ops.consortium import load_consortium
    from coordinator.ops.services import stop_services

    with fail_cleanly():
        consortium = load_consortium(folder)
        stopped = stop_services(consortium)
    for name, was_running in stopped:
        console.print(f"  {name:<10} {'stopped' if was_running else 'was not running'}")


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_FLOWER_LEVEL = re.compile(r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL)\s*:\s*")

ConsortiumDir = Annotated[
    Path, typer.Argument(help="The consortium folder (from `fedcredit coordinator init`).")
]


@coordinator_app.command("launch")
def launch(
    consortium_dir: ConsortiumDir,
    out: Annotated[
        Path | None,
        typer.Option(help="Copy the finished run's results here (metrics, model, ledgers, audit)."),
    ] = None,
    rounds: Annotated[
        int | None, typer.Option(min=1, help="Federated rounds (default: the consortium's).")
    ] = None,
    run_name: Annotated[
        str | None, typer.Option(help="Name of the run (default: run-<UTC time>).")
    ] = None,
    resume: Annotated[
        str | None,
        typer.Option(
            help="Continue this run (name or Flower run id) after its last completed round."
        ),
    ] = None,
    min_banks: Annotated[
        int | None, typer.Option(min=1, help="Fewest banks a round needs (default: consortium's).")
    ] = None,
    secure_aggregation: Annotated[
        bool | None,
        typer.Option(
            "--secure-aggregation/--no-secure-aggregation",
            help="Combine updates by secure aggregation (default: the consortium's).",
        ),
    ] = None,
) -> None:
    """Submit a run to the SuperLink, stream per-round progress, collect the results."""
    from coordinator.ops.consortium import load_consortium
    from coordinator.ops.runs import launch_run

    def show(line: str) -> None:
        text = _ANSI.sub("", line).rstrip()
        level = _FLOWER_LEVEL.match(text)
        if level is None:
            console.print(text, highlight=False, markup=False)  # the ServerApp's own lines
            return
        message = text[level.end() :]
        if level.group(1) in {"WARNING", "ERROR"}:
            console.print(
                f"{level.group(1)}: {message}", style="red", highlight=False, markup=False
            )
        elif message:
            console.print(f"  flower: {message}", style="dim", highlight=False, markup=False)

    with fail_cleanly():
        consortium = load_consortium(consortium_dir)
        console.print(
            f"[bold]fedcredit coordinator launch[/]: submitting to {consortium.config.name}"
            + (f" (resuming {resume})" if resume else "")
        )
        result = launch_run(
            consortium,
            overrides={
                "rounds": rounds,
                "min_banks": min_banks,
                "secure_aggregation": secure_aggregation,
            },
            run_name=run_name,
            resume=resume,
            out=out,
            on_line=show,
        )
    console.print(
        f"run {result.run_name} (Flower run {result.flower_run_id}): {result.status}, "
        f"{result.rounds_done}/{result.rounds_planned} rounds; outputs in {result.run_dir}"
    )
    if result.out is not None:
        console.print(f"results copied to {result.out}")
    if not result.completed:
        if result.error:
            console.print(f"the run failed: {result.error}", style="red", highlight=False)
        if result.rounds_done:
            console.print(
                f"continue it with `fedcredit coordinator launch {consortium_dir} "
                f"--resume {result.run_name}`",
                style="yellow",
            )
        raise typer.Exit(EXIT_RUN_FAILED)


@coordinator_app.command("list")
def list_runs(consortium_dir: ConsortiumDir) -> None:
    """List the runs launched from this consortium folder."""
    from coordinator.ops.consortium import load_consortium
    from coordinator.ops.runs import list_runs as runs_of

    with fail_cleanly():
        rows = runs_of(load_consortium(consortium_dir))
    table = Table(title=f"Runs of {consortium_dir}")
    for column in ("run", "Flower run ids", "status", "rounds", "submitted (UTC)"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row.run_name,
            ", ".join(str(i) for i in row.flower_run_ids),
            row.status,
            f"{row.rounds_done}/{row.rounds_planned}",
            row.submitted_at,
        )
    console.print(table)


@coordinator_app.command("stop")
def stop(
    consortium_dir: ConsortiumDir,
    run: Annotated[str, typer.Argument(help="The run's name or Flower run id.")],
) -> None:
    """Stop a running run (its checkpoint stays; `launch --resume` continues it)."""
    from coordinator.ops.consortium import load_consortium
    from coordinator.ops.runs import stop_run

    with fail_cleanly():
        flower_id = stop_run(load_consortium(consortium_dir), run)
    console.print(f"stopped Flower run {flower_id} of {run}")
