"""``fedcredit coordinator``: the consortium operator's commands.

Set up the consortium folder, onboard banks, run the SuperLink and its edge proxy,
launch, list, stop or resume federated runs, and monitor a finished run's stability.
Every command but ``init`` starts by loading the consortium folder
(:func:`_consortium`); the operations live in :mod:`coordinator.ops` and are imported
when a command runs.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli import gbdt_options
from cli.console import (
    EXIT_RUN_FAILED,
    Column,
    console,
    fail_cleanly,
    say,
    say_pairs,
    show_table,
    warn,
)
from cli.dashboard import (
    DEFAULT_PORT,
    AllowRemote,
    DashboardHost,
    DashboardPort,
    bind_dashboard,
    serve_until_interrupted,
)
from credit.encoding import EncodingKind
from credit.errors import ConfigError, OperationFailed
from credit.model_spec import ModelKind

if TYPE_CHECKING:
    from coordinator.ops.consortium import Consortium
    from coordinator.ops.launch import LaunchResult
    from coordinator.ops.members import Participant
    from privacy.secagg.members import MemberList

__all__ = ["coordinator_app"]

coordinator_app = typer.Typer(
    help="Consortium operator: PKI, bank onboarding, SuperLink and edge, runs, monitoring.",
    no_args_is_help=True,
)

DirArgument = Annotated[Path, typer.Argument(help="The consortium folder.")]
ConsortiumDir = Annotated[
    Path, typer.Argument(help="The consortium folder (from `fedcredit coordinator init`).")
]
Bank = Annotated[str, typer.Argument(help="The bank's name.")]

Name = Annotated[
    str, typer.Option(help="The consortium's name (lower-case letters, digits and '-').")
]
Hosts = Annotated[
    list[str],
    typer.Option(help="DNS name or IP banks dial (repeat for several); first = edge address."),
]
Schema = Annotated[
    Path | None,
    typer.Option(help="Dataset schema TOML to copy in; default: the embedded UCI schema."),
]
AdminHost = Annotated[
    str, typer.Option(help="Interface of the SuperLink (loopback or an admin network).")
]
SuperlinkPort = Annotated[int, typer.Option(help="The SuperLink's port.")]
EdgeHost = Annotated[str, typer.Option(help="Interface the edge proxy listens on for banks.")]
EdgePort = Annotated[int, typer.Option(help="The edge proxy's port.")]
EdgeAddress = Annotated[
    str | None, typer.Option(help="host:port banks dial (default: first --host and --edge-port).")
]
DefaultRounds = Annotated[int, typer.Option(help="Default rounds per run.")]
DefaultModel = Annotated[ModelKind, typer.Option(help="Default model family.")]
DefaultMinBanks = Annotated[int, typer.Option(help="Fewest banks a round needs.")]
MaxEpsilon = Annotated[float | None, typer.Option(help="Privacy budget recommended to each bank.")]
Delta = Annotated[float | None, typer.Option(help="Recommended delta (needs --max-epsilon).")]


def _consortium(folder: Path) -> Consortium:
    """The consortium folder, loaded (call inside :func:`fail_cleanly`)."""
    from coordinator.ops.consortium import load_consortium

    return load_consortium(folder)


@coordinator_app.command("init")
def init(
    folder: DirArgument,
    name: Name,
    host: Hosts,
    schema: Schema = None,
    admin_host: AdminHost = "127.0.0.1",
    superlink_port: SuperlinkPort = 9092,
    edge_host: EdgeHost = "0.0.0.0",
    edge_port: EdgePort = 9443,
    edge_address: EdgeAddress = None,
    rounds: DefaultRounds = 10,
    model: DefaultModel = ModelKind.LOGREG,
    min_banks: DefaultMinBanks = 2,
    max_epsilon: MaxEpsilon = None,
    delta: Delta = None,
) -> None:
    """Create a consortium folder: CA, server certificate, config, FLWR_HOME, edge config."""
    from coordinator.ops.consortium import build_config
    from coordinator.ops.provisioning import init_consortium

    with fail_cleanly():
        fields: dict[str, Any] = {
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
        paths = init_consortium(folder, config, schema=schema).paths
    say(f"consortium '{config.name}' created in {paths.root}")
    say_pairs(
        [
            ("config", paths.config_file),
            ("CA certificate", paths.ca_cert),
            ("CA key (keep offline)", paths.ca_key),
            ("server certificate", paths.server_cert),
            ("Flower connection", paths.flwr_home / "config.toml"),
            ("edge proxy config", paths.edge_config),
        ]
    )
    say(f"banks will dial {config.edge_address}; next: `fedcredit coordinator start {folder}`")


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
    audit_key: Annotated[
        Path | None,
        typer.Option(
            help="The bank's audit.pub (Ed25519, from `fedcredit participant keygen`): the "
            "key the member list names the bank by. Default: audit.pub beside --public-key.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Register a bank's node key, put its audit key on the member list, write its bundle."""
    from coordinator.ops.members import add_participant as add
    from coordinator.ops.members import member_list

    with fail_cleanly():
        consortium = _consortium(folder)
        record = add(consortium, bank, public_key, _audit_key(audit_key, public_key))
        members = member_list(consortium)
    say(
        f"participant '{bank}' registered as node {record.node_id}",
        f"send this folder to the bank: {consortium.paths.participant(bank) / 'bundle'}",
    )
    if members is not None:
        _say_member_list_changed(members, folder, len(members.members) - 1)


def _audit_key(given: Path | None, public_key: Path) -> Path:
    """``--audit-key``, else the ``audit.pub`` beside ``--public-key`` if there is one."""
    if given is not None:
        return given
    beside = public_key.expanduser().with_name("audit.pub")
    if not beside.is_file():
        raise ConfigError(
            f"no audit.pub beside {public_key}: pass the bank's audit key (the audit.pub "
            "that `fedcredit participant keygen` wrote) with --audit-key",
            source="--audit-key",
        )
    return beside


def _say_member_list_changed(members: MemberList, folder: Path, others: int) -> None:
    """The new list's fingerprint and, when other banks have an older list, what to send."""
    say(
        f"member list of {members.consortium}: {_banks(len(members.members))}, "
        f"fingerprint {members.fingerprint}"
    )
    if others > 0:
        say(
            "the member list changed: send it to the other banks (each restarts with "
            f"--members FILE): fedcredit coordinator members {folder} --out members.json"
        )


@coordinator_app.command("remove-participant")
def remove_participant(folder: DirArgument, bank: Bank) -> None:
    """Revoke a bank: unregister its node key (a running node is disconnected) and take it
    off the member list."""
    from coordinator.ops.members import remove_participant as remove

    with fail_cleanly():
        removal = remove(_consortium(folder), bank)
    say(f"participant '{bank}' removed (node {removal.record.node_id} unregistered)")
    if removal.unlisted:
        verb = "has" if len(removal.unlisted) == 1 else "have"
        say(
            f"no member list: {', '.join(removal.unlisted)} {verb} "
            "no recorded audit key (members.json removed); remove and add each again with "
            "--audit-key, then send the list to the banks",
            style="red",
        )
    elif removal.members is None:
        say("no bank is registered any more: the member list is empty (members.json removed)")
    else:
        _say_member_list_changed(removal.members, folder, len(removal.members.members))


@coordinator_app.command("members")
def members(
    folder: DirArgument,
    out: Annotated[
        Path | None,
        typer.Option(help="Also write the member list to this file (to send to the banks)."),
    ] = None,
) -> None:
    """Show the member list (every registered bank and its audit key) and its fingerprint.

    The list is rewritten from the participant records into FOLDER/members.json. Banks
    that joined before the list last changed need it: send them the file (--out), and
    they restart with `fedcredit participant start --members FILE` after comparing its
    fingerprint with the other banks.
    """
    from coordinator.ops.members import write_member_list

    with fail_cleanly():
        consortium = _consortium(folder)
        listed = write_member_list(consortium)
        if listed is None:
            raise ConfigError(
                "no bank is registered: add one with `fedcredit coordinator add-participant`",
                source=str(folder),
            )
        if out is not None:
            _write_copy(listed, out)
    show_table(
        f"Member list of {listed.consortium}",
        ["bank", Column("audit key (SHA-256)", no_wrap=True)],
        [(member.name, member.fingerprint) for member in listed.members],
    )
    say(f"fingerprint {listed.fingerprint}", f"file {consortium.paths.members}")
    if out is not None:
        say(f"written to {out}")
    say("banks compare this fingerprint with each other out of band before they pin the list")


def _write_copy(listed: MemberList, out: Path) -> None:
    try:
        listed.write(out.expanduser())
    except OSError as exc:
        raise ConfigError(
            f"cannot write the member list ({exc.strerror})", source=str(out)
        ) from exc


@coordinator_app.command("start")
def start(folder: DirArgument) -> None:
    """Start the SuperLink (TLS, node authentication) and the fleet-only edge proxy."""
    from coordinator.ops.services import start_services

    with fail_cleanly():
        consortium = _consortium(folder)
        say("starting the SuperLink and the edge proxy ...")
        states = start_services(consortium)
    for state in states:
        say(f"  {state.name:<10} pid {state.pid}  {state.address}  log {state.log}")
    say(f"banks connect to {consortium.config.edge_address} (Fleet API only)")


@coordinator_app.command("status")
def status(folder: DirArgument) -> None:
    """Show which services run and which banks are online."""
    from coordinator.ops.members import list_participants
    from coordinator.ops.services import service_states

    with fail_cleanly():
        consortium = _consortium(folder)
        states = service_states(consortium)
        records = list_participants(consortium)
    show_table(
        f"Consortium '{consortium.config.name}' services",
        [
            *(Column(header, no_wrap=True) for header in ("service", "state", "pid", "address")),
            Column("log", overflow="fold"),
        ],
        [(s.name, "up" if s.up else "down", s.pid or "-", s.address, s.log) for s in states],
    )
    show_table(
        "Participants",
        ["bank", "node id", "status"],
        _participant_rows(consortium, records, superlink_up=states[0].up),
    )


def _participant_rows(
    consortium: Consortium, records: list[Participant], *, superlink_up: bool
) -> list[tuple[str, int, str]]:
    """Each bank's name, node id and state: removed, online, offline or unknown (why)."""
    from coordinator.ops.members import ParticipantStatus
    from coordinator.ops.services import node_states

    nodes: dict[int, str] | None = None
    unknown = "unknown (SuperLink down)"
    if superlink_up:
        try:
            nodes = {n.node_id: n.status for n in node_states(consortium)}
        except OperationFailed as exc:  # show the services anyway
            unknown = "unknown (flwr supernode ls failed)"
            warn(str(exc))
    rows = []
    for record in records:
        if record.status is ParticipantStatus.REMOVED:
            shown = "removed"
        elif nodes is None:
            shown = unknown
        else:
            shown = "online" if nodes.get(record.node_id) == "online" else "offline"
        rows.append((record.name, record.node_id, shown))
    return rows


@coordinator_app.command("shutdown")
def shutdown(folder: DirArgument) -> None:
    """Stop the edge proxy, then the SuperLink (runs in progress stop with them)."""
    from coordinator.ops.services import stop_services

    with fail_cleanly():
        stopped = stop_services(_consortium(folder))
    for name, was_running in stopped:
        say(f"  {name:<10} {'stopped' if was_running else 'was not running'}")


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_FLOWER_LEVEL = re.compile(r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL)\s*:\s*")

Out = Annotated[
    Path | None,
    typer.Option(
        help="Copy the finished run's results here (metrics, model, plot, report, ledgers, audit)."
    ),
]
Rounds = Annotated[
    int | None, typer.Option(min=1, help="Federated rounds (default: the consortium's).")
]
RunName = Annotated[str | None, typer.Option(help="Name of the run (default: run-<UTC time>).")]
Resume = Annotated[
    str | None,
    typer.Option(help="Continue this run (name or Flower run id) after its last completed round."),
]
MinBanks = Annotated[
    int | None, typer.Option(min=1, help="Fewest banks a round needs (default: consortium's).")
]
EvaluateEvery = Annotated[
    int | None,
    typer.Option(
        min=0,
        help="Score the global model every N rounds (the last round's always; 0: only the "
        "last). Default: every round, or only the last when the banks have budgets.",
    ),
]
ScoreBins = Annotated[
    int | None,
    typer.Option(
        min=2,
        help="Score-histogram bins per class the banks are asked for (even; default 100, "
        "which is also a bank's default cap).",
    ),
]
DecisionCutoff = Annotated[
    float | None,
    typer.Option(
        help="Fairness report: decline when the predicted default probability is >= this "
        "(in [0, 1], a multiple of 1/score-bins; default 0.5).",
    ),
]
SecureAggregation = Annotated[
    bool | None,
    typer.Option(
        "--secure-aggregation/--no-secure-aggregation",
        help="Combine updates by secure aggregation (default: the consortium's).",
    ),
]


Encoding = Annotated[
    EncodingKind | None,
    typer.Option(
        help="Input encoding (default binned): quantile bins, z-scores, or woe (the weight "
        "of evidence of each feature's merged bin; with logreg the run writes "
        "model/scorecard.csv)."
    ),
]
Pdo = Annotated[
    float | None,
    typer.Option(help="Scorecard (--encoding woe): points to double the odds (default 20)."),
]
BaseScore = Annotated[
    float | None,
    typer.Option(help="Scorecard: the score at which the odds are --base-odds (default 600)."),
]
BaseOdds = Annotated[
    float | None,
    typer.Option(help="Scorecard: the odds (good:bad) at --base-score (default 50)."),
]


LaunchModel = Annotated[
    ModelKind | None,
    typer.Option(
        "--model",
        help="Model family (default: the consortium's; gbdt: federated gradient-boosted "
        "trees, one exchange per tree level; see --trees and the options after it).",
    ),
]


@coordinator_app.command("launch")
def launch(
    ctx: typer.Context,
    consortium_dir: ConsortiumDir,
    out: Out = None,
    model: LaunchModel = None,
    rounds: Rounds = None,
    run_name: RunName = None,
    resume: Resume = None,
    min_banks: MinBanks = None,
    secure_aggregation: SecureAggregation = None,
    evaluate_every: EvaluateEvery = None,
    score_bins: ScoreBins = None,
    decision_cutoff: DecisionCutoff = None,
    encoding: Encoding = None,
    pdo: Pdo = None,
    base_score: BaseScore = None,
    base_odds: BaseOdds = None,
    trees: gbdt_options.Trees = 100,
    max_depth: gbdt_options.MaxDepth = 6,
    tree_learning_rate: gbdt_options.TreeLearningRate = 0.1,
    reg_lambda: gbdt_options.RegLambda = 1.0,
    gamma: gbdt_options.Gamma = 0.0,
    min_child_weight: gbdt_options.MinChildWeight = 1.0,
    subsample: gbdt_options.Subsample = 1.0,
    colsample: gbdt_options.Colsample = 1.0,
    max_bins: gbdt_options.MaxBins = 255,
) -> None:
    """Submit a run to the SuperLink, stream per-round (per-tree) progress, collect the results."""
    from coordinator.ops.launch import launch_run, launched_model

    started = time.monotonic()
    with fail_cleanly():
        consortium = _consortium(consortium_dir)
        gbdt = launched_model(consortium, model=model, resume=resume) is ModelKind.GBDT
        gbdt_options.refuse_sgd_flags(ctx, gbdt=gbdt)
        console.print(
            f"[bold]fedcredit coordinator launch[/]: submitting to {consortium.config.name}"
            + (f" (resuming {resume})" if resume else ""),
            highlight=False,
        )
        result = launch_run(
            consortium,
            overrides={
                "model": model,
                **(gbdt_options.boosting_values(ctx) if gbdt else {}),
                "rounds": rounds,
                "min_banks": min_banks,
                "secure_aggregation": secure_aggregation,
                "evaluate_every": evaluate_every,
                "score_bins": score_bins,
                "decision_cutoff": decision_cutoff,
                "encoding": encoding,
                "pdo": pdo,
                "base_score": base_score,
                "base_odds": base_odds,
            },
            run_name=run_name,
            resume=resume,
            out=out,
            on_line=_show_flower_line,
        )
    _report_launch(result, consortium_dir, seconds=time.monotonic() - started)


def _show_flower_line(line: str) -> None:
    """A line of ``flwr run``'s log: the ServerApp's own as is, Flower's dimmed or red."""
    text = _ANSI.sub("", line).rstrip()
    level = _FLOWER_LEVEL.match(text)
    if level is None:
        say(text)  # the ServerApp's own lines
        return
    message = text[level.end() :]
    if level.group(1) in {"WARNING", "ERROR"}:
        say(f"{level.group(1)}: {message}", style="red")
    elif message:
        say(f"  flower: {message}", style="dim")


def _report_launch(result: LaunchResult, consortium_dir: Path, *, seconds: float = 0.0) -> None:
    """How the run ended, where its results are; exit 1 unless every round (tree) completed.

    A completed boosting run shows :func:`cli.gbdt_options.show_boosting_summary` of its
    results (the copy in ``--out`` if made), the checkpoint in the consortium folder.
    """
    from coordinator.ops.runs import BOOSTING_CHECKPOINT

    say(
        f"run {result.run_name} (Flower run {result.flower_run_id}): {result.status}, "
        f"{result.rounds_done}/{result.rounds_planned} {result.unit}; outputs in "
        f"{result.run_dir}"
    )
    if result.out is not None:
        say(f"results copied to {result.out}")
    boosting = result.unit == "trees"
    if boosting and result.completed:
        gbdt_options.show_boosting_summary(
            result.out or result.run_dir,
            seconds,
            checkpoint=result.run_dir / BOOSTING_CHECKPOINT,
        )
    elif (missing := _final_missing(result.run_dir)) is not None:
        say(f"final evaluation missing: {missing}", style="yellow")
    if result.completed:
        return
    if result.error:
        say(f"the run failed: {result.error}", style="red")
    if boosting and result.rounds_done:
        say(
            f"its finished trees are in {result.run_dir / BOOSTING_CHECKPOINT}; a boosting "
            "run is not resumed: launch it afresh",
            style="yellow",
        )
    elif result.rounds_done:
        say(
            f"continue it with `fedcredit coordinator launch {consortium_dir} "
            f"--resume {result.run_name}`",
            style="yellow",
        )
    raise typer.Exit(EXIT_RUN_FAILED)


MonitoredRun = Annotated[
    str,
    typer.Option(
        "--run", help="The finished training run to monitor (its name or a Flower run id)."
    ),
]
MonitorOut = Annotated[
    Path | None,
    typer.Option(help="Copy stability.json, stability.png, ledgers/ and launch.json here."),
]
MonitorRunName = Annotated[
    str | None, typer.Option(help="Name of the monitoring run (default: monitor-<UTC time>).")
]
MonitorSecureAggregation = Annotated[
    bool | None,
    typer.Option(
        "--secure-aggregation/--no-secure-aggregation",
        help="Sum the banks' later counts by secure aggregation (default: as the monitored run).",
    ),
]
MonitorMinBanks = Annotated[
    int | None,
    typer.Option(min=1, help="Fewest banks that must answer (default: as the monitored run)."),
]
Quantile = Annotated[
    float,
    typer.Option(
        help="Drift flag: PSI >= 0.1 and above the chi-square quantile (1/n + 1/m) "
        "chi2_q(B - 1) of no drift, in (0, 1).",
    ),
]


@coordinator_app.command("monitor")
def monitor(
    consortium_dir: ConsortiumDir,
    run: MonitoredRun,
    out: MonitorOut = None,
    run_name: MonitorRunName = None,
    secure_aggregation: MonitorSecureAggregation = None,
    min_banks: MonitorMinBanks = None,
    quantile: Quantile = 0.99,
) -> None:
    """Stability of the banks' later files against a finished run: PSI of the score and CSI
    of every characteristic, consortium-wide.

    Submits a monitoring run (it trains nothing) to the SuperLink: every bank started with
    --later-data and --development-model (the run's model) answers with its later file's
    counts on the model's bins, summed by secure aggregation unless turned off. Each bank
    compares its own rows itself (`fedcredit participant monitor`).
    """
    from cli.monitor import show_stability
    from coordinator.ops.monitoring import monitor_run, plan_monitoring

    with fail_cleanly():
        if not 0.0 < quantile < 1.0:
            raise ConfigError(f"must lie in (0, 1); got {quantile}", source="--quantile")
        consortium = _consortium(consortium_dir)
        submission = plan_monitoring(
            consortium,
            development=run,
            run_name=run_name,
            secure_aggregation=secure_aggregation,
            min_banks=min_banks,
            quantile=quantile,
        )
        console.print(
            f"[bold]fedcredit coordinator monitor[/]: run {submission.development.name} of "
            f"{consortium.config.name}",
            highlight=False,
        )
        result = monitor_run(consortium, submission, out=out, on_line=_show_flower_line)
    say(
        f"monitoring run {result.run_name} (Flower run {result.flower_run_id}) of run "
        f"{result.development}: {'completed' if result.completed else 'failed'}; outputs in "
        f"{result.run_dir}"
    )
    if not result.completed:
        say(f"the run failed: {result.error or 'see the lines above'}", style="red")
        raise typer.Exit(EXIT_RUN_FAILED)
    show_stability(_stability(result.run_dir))
    if result.out is not None:
        say(f"results copied to {result.out}")


def _stability(run_dir: Path) -> dict[str, Any]:
    """The monitoring run's ``stability.json``."""
    import json

    from coordinator.app.monitor_names import STABILITY_FILE

    document: dict[str, Any] = json.loads((run_dir / STABILITY_FILE).read_text(encoding="utf-8"))
    return document


def _final_missing(run_dir: Path) -> str | None:
    """Why the run's kept model has no final evaluation (None: it has one, or no metrics)."""
    from coordinator.app.run_files import METRICS_FILE

    try:
        document = json.loads((run_dir / METRICS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    missing = document.get("final_missing") if isinstance(document, dict) else None
    return None if missing is None else str(missing)


@coordinator_app.command("list")
def list_runs(consortium_dir: ConsortiumDir) -> None:
    """List the runs launched from this consortium folder."""
    from coordinator.ops.runs import list_runs as runs_of

    with fail_cleanly():
        rows = runs_of(_consortium(consortium_dir))
    show_table(
        f"Runs of {consortium_dir}",
        ["run", "Flower run ids", "status", "rounds (trees)", "submitted (UTC)"],
        [
            (
                row.run_name,
                ", ".join(str(i) for i in row.flower_run_ids),
                row.status,
                f"{row.rounds_done}/{row.rounds_planned}"
                + (" trees" if row.unit == "trees" else ""),
                row.submitted_at,
            )
            for row in rows
        ],
    )


@coordinator_app.command("stop")
def stop(
    consortium_dir: ConsortiumDir,
    run: Annotated[str, typer.Argument(help="The run's name or Flower run id.")],
) -> None:
    """Stop a running run (its checkpoint stays; `launch --resume` continues it)."""
    from coordinator.ops.runs import stop_run

    with fail_cleanly():
        flower_id = stop_run(_consortium(consortium_dir), run)
    say(f"stopped Flower run {flower_id} of {run}")


def _banks(count: int) -> str:
    """``1 bank``, ``3 banks``."""
    return f"{count} bank{'' if count == 1 else 's'}"


DashboardRun = Annotated[
    str | None,
    typer.Option(
        "--run", help="The run to follow (name or Flower run id); default: the latest launched."
    ),
]


@coordinator_app.command("dashboard")
def dashboard(
    consortium_dir: ConsortiumDir,
    run: DashboardRun = None,
    host: DashboardHost = "127.0.0.1",
    port: DashboardPort = DEFAULT_PORT,
    allow_remote: AllowRemote = False,
) -> None:
    """Serve a live, read-only page of the consortium: banks online, the run's rounds (AUC,
    KS), each bank's ε against its budget, refusals, dropouts, the secure-aggregation stage,
    the audit log's head and verification, past runs and their reports.

    Everything is read from the consortium folder (the run's audit log, checkpoint and
    metrics) and from the SuperLink's node list; nothing is written.
    """
    from coordinator.ops.dashboard import ConsortiumSource, coordinator_page

    with fail_cleanly():
        consortium = _consortium(consortium_dir)
        source = ConsortiumSource(consortium, run=run)
        page = coordinator_page(f"Consortium {consortium.config.name}")
        server = bind_dashboard(page, source, host=host, port=port, allow_remote=allow_remote)
    serve_until_interrupted(server)
