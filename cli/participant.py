"""``fedcredit participant``: a partner bank's commands.

Make the node's keys, check the bank's data file locally, and run the bank's
SuperNode next to its data.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli.console import (
    EXIT_RUN_FAILED,
    Column,
    fail_cleanly,
    say,
    say_pairs,
    show_table,
    show_violations,
)
from cli.dashboard import (
    DEFAULT_PORT,
    AllowRemote,
    DashboardHost,
    DashboardPort,
    bind_dashboard,
    serve_until_interrupted,
)
from credit.config_files import validate_fields
from credit.errors import ConfigError

if TYPE_CHECKING:
    from deploy.bundle import Bundle
    from participant.guard.bank_guard import BankGuard
    from participant.guard.settings import GuardSettings, SecAggPolicy, StabilityPolicy
    from participant.node.members import MemberListChoice
    from participant.node.supernode import NodeSettings
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
    """Validate and profile the bank's data file. Nothing leaves this machine.

    A file that breaks the schema gets one table of every problem (column, problem,
    count, first rows, hint) and exit code 2; a valid file gets its profile, with
    each column's missing values and special codes counted.
    """
    from participant.node.check import check_bank_data, resolve_schema, violations_error

    with fail_cleanly():
        checked = check_bank_data(data, resolve_schema(schema))
    for warning in checked.report.warnings:
        say(f"warning: {warning}")
    profile = checked.profile
    if profile is None:
        report = checked.report
        show_violations(report, "checked locally; nothing was sent")
        with fail_cleanly():
            raise violations_error(report)
    show_table(
        f"{profile.source}: {profile.rows:,} rows, default rate "
        f"{profile.default_rate:.1%} (checked locally; nothing was sent)",
        [
            "column",
            "type",
            Column("missing", justify="right"),
            Column("special", justify="right"),
            "min … max / categories",
        ],
        [(row.name, row.kind, row.missing, row.special, row.summary) for row in profile.columns],
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
    typer.Option(
        help="The bank's audit-signing key (default: audit.key beside --key): signs its audit "
        "log and secure-aggregation messages; the member list must name the bank by its "
        "public half."
    ),
]
RuntimePort = Annotated[
    int, typer.Option(help="Local port of the SuperNode runtime API (one per node on a host).")
]
HoldoutFraction = Annotated[
    float | None,
    typer.Option(
        help="Share of the bank's rows held out for evaluation, fixed for every run "
        "(default: the node's own, kept from its first start; 0.2 at the first start).",
        show_default=False,
    ),
]
ValidationFraction = Annotated[
    float | None,
    typer.Option(
        help="Share of the bank's training rows kept apart as its validation part (never "
        "trained on; scores each round's model so that the run keeps the best round), "
        "fixed for every run like the hold-out (default: the node's own; 0.2 at the first "
        "start, 0 for a node started before validation parts). The run's "
        "validation-fraction must be the same.",
        show_default=False,
    ),
]
HoldoutSalt = Annotated[
    str | None,
    typer.Option(
        envvar="FEDCREDIT_HOLDOUT_SALT",
        hidden=True,
        show_envvar=False,
        help="Advanced: the hold-out's secret salt (hex, >= 256 bits) instead of the one "
        "the node generated at its first start; a ledger bound to another split refuses it.",
    ),
]
MaxScoreBins = Annotated[
    int,
    typer.Option(
        min=2,
        max=10_000,
        help="Most score-histogram bins per class the bank releases when it scores a "
        "model on its held-out rows (a run asking for more is refused).",
    ),
]
MaxCalibrationBins = Annotated[
    int,
    typer.Option(
        min=1,
        max=100,
        help="Most probability bins of the calibration sums the bank releases with its "
        "evaluation of a run's last model (a run asking for more is refused).",
    ),
]
MaxProximalMu = Annotated[
    float,
    typer.Option(
        min=0,
        help="Largest FedProx proximal-mu the bank accepts (a run asking for more is "
        "refused): a coordinator's huge mu would pin the bank's update to its model.",
    ),
]
MinHoldoutRows = Annotated[
    int,
    typer.Option(
        min=1, help="The bank releases no evaluation while it holds out fewer rows than this."
    ),
]
SetupShare = Annotated[
    float,
    typer.Option(
        min=0.01,
        max=0.5,
        help="Under a budget: the share of max epsilon the set-up release (noisy per-class "
        "feature counts) may cost; DP-SGD gets the rest.",
    ),
]
SetupBins = Annotated[
    int,
    typer.Option(
        min=32,
        max=64,
        help="Under a budget: most histogram cells per numeric feature and class the set-up "
        "release noises (finer grids are merged into this many cells).",
    ),
]
LaterData = Annotated[
    Path | None,
    typer.Option(
        help="Stability monitoring: the bank's later file (CSV of the consortium's schema) "
        "whose counts on the development model's bins it releases to a stability query "
        "(with --development-model; without both it answers none).",
        show_default=False,
    ),
]
DevelopmentModel = Annotated[
    Path | None,
    typer.Option(
        help="Stability monitoring: the development model the bank holds (a run's model/ "
        "folder); the bank counts on its bins only, whatever a query asks.",
        show_default=False,
    ),
]
MinLaterRows = Annotated[
    int,
    typer.Option(min=1, help="The bank releases no counts of a later file with fewer rows."),
]
GbdtMaxTrees = Annotated[
    int,
    typer.Option(
        min=1, max=10_000, help="Federated boosting: the most trees of a run the bank answers."
    ),
]
GbdtMaxDepth = Annotated[
    int, typer.Option(min=1, max=12, help="Federated boosting: the most levels per tree.")
]
GbdtMinNodeRows = Annotated[
    int,
    typer.Option(
        min=0,
        help="Federated boosting: a node (or its sibling) where the bank holds 1 to N-1 rows "
        "is released as zeros (0: every node; federated then equals central training).",
    ),
]
RequireSecure = Annotated[
    bool,
    typer.Option(
        "--require-secure-aggregation/--allow-plain-updates",
        help="Send the model update only inside secure aggregation (the default: a round "
        "asking for it in the clear is refused and logged). --allow-plain-updates lets a "
        "run receive it in the clear: only for a bank that relies on differential privacy "
        "alone.",
    ),
]
Members = Annotated[
    Path | None,
    typer.Option(
        help="The consortium's member list (members.json) to pin. Default: the list this "
        "node pinned before, else the bundle's. A list whose fingerprint differs from the "
        "pinned one replaces it only when given here (compare the new fingerprint with the "
        "other banks first).",
        show_default=False,
    ),
]
ThresholdFraction = Annotated[
    float | None,
    typer.Option(
        "--secagg-threshold-fraction",
        help="The bank's secure-aggregation threshold: t = floor(F*N)+1 shares of a roster "
        "of N banks, F in [0.5, 1) (default 2/3: t > 2N/3); a round naming another t is "
        "refused. The consortium's run setting secagg-threshold-fraction must be the same F.",
        show_default=False,
    ),
]
MinRoster = Annotated[
    int,
    typer.Option(
        help="Fewest banks (at least 3) a secure-aggregation roster may name; a smaller "
        "one is refused before any key is made."
    ),
]
NodeUser = Annotated[
    str | None,
    typer.Option(
        help="As root: run the SuperNode's ClientApps as this unprivileged user (created if "
        "missing), who cannot read the bank's data, ledger or keys."
    ),
]


def _stability_policy(
    later: Path | None, model: Path | None, min_rows: int, signer: Path | None
) -> StabilityPolicy | None:
    """The bank's stability policy from ``--later-data`` and ``--development-model``.

    ``signer``: the bundle's coordinator key, which the model's package must be signed with.
    """
    from participant.guard.settings import StabilityPolicy

    if later is None and model is None:
        return None
    if later is None or model is None:
        missing = "--later-data" if later is None else "--development-model"
        raise ConfigError("stability monitoring needs both files", source=missing)
    for path, flag in ((later, "--later-data"), (model, "--development-model")):
        if not path.exists():
            raise ConfigError(f"'{path}' does not exist", source=flag)
    return StabilityPolicy(
        later_path=later.expanduser().resolve(),
        model_dir=model.expanduser().resolve(),
        min_rows=min_rows,
        signer=signer,
    )


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
    holdout_fraction: HoldoutFraction = None,
    holdout_salt: HoldoutSalt = None,
    validation_fraction: ValidationFraction = None,
    node_user: NodeUser = None,
    members: Members = None,
    require_secure_aggregation: RequireSecure = True,
    secagg_threshold_fraction: ThresholdFraction = None,
    min_roster: MinRoster = 3,
    max_score_bins: MaxScoreBins = 100,
    max_calibration_bins: MaxCalibrationBins = 10,
    max_proximal_mu: MaxProximalMu = 1.0,
    min_holdout_rows: MinHoldoutRows = 50,
    setup_share: SetupShare = 0.1,
    setup_bins: SetupBins = 64,
    later_data: LaterData = None,
    development_model: DevelopmentModel = None,
    min_later_rows: MinLaterRows = 50,
    gbdt_max_trees: GbdtMaxTrees = 500,
    gbdt_max_depth: GbdtMaxDepth = 6,
    gbdt_min_node_rows: GbdtMinNodeRows = 0,
) -> None:
    """Check the data and records, then start the bank's guard and its SuperNode.

    The guard (this installation of fedcredit) holds the data, the privacy ledger,
    the keys and the audit log, and answers every message; the SuperNode's ClientApp
    only relays messages to it. Both run in the background until `participant stop`.

    The consortium's member list is pinned by its fingerprint: compare the fingerprint
    printed with the other banks out of band before the first run.
    """
    from deploy.bundle import Bundle
    from participant.guard.settings import (
        EvaluationPolicy,
        GbdtPolicy,
        SetupReleasePolicy,
        TrainingPolicy,
    )
    from participant.node.members import choose_member_list
    from participant.node.supernode import (
        NodeSettings,
        keeps_holdout_salt,
        node_holdout,
        prepare_node,
        start_node,
    )

    with fail_cleanly():
        loaded = Bundle.load(bundle)
        budget = _node_budget(loaded, max_epsilon=max_epsilon, delta=delta, no_dp=no_dp)
        node_home = home.expanduser().resolve()
        signing_key = (audit_key or key.with_name("audit.key")).expanduser().resolve()
        member_list = choose_member_list(
            home=node_home, bundle=loaded, audit_key=signing_key, members=members
        )
        settings = NodeSettings(
            bundle=loaded,
            key=key.expanduser().resolve(),
            data=data.expanduser().resolve(),
            home=node_home,
            budget=budget,
            audit_key=signing_key,
            holdout=node_holdout(
                node_home,
                fraction=holdout_fraction,
                salt=holdout_salt,
                validation_fraction=validation_fraction,
            ),
            runtime_port=runtime_port,
            node_user=node_user,
            require_secure_aggregation=require_secure_aggregation,
            members=member_list.members,
            secure_aggregation=_secagg_policy(secagg_threshold_fraction, min_roster),
            evaluation=EvaluationPolicy(
                max_score_bins=max_score_bins,
                min_holdout_rows=min_holdout_rows,
                max_calibration_bins=max_calibration_bins,
            ),
            setup=SetupReleasePolicy(max_bins=setup_bins, budget_share=setup_share),
            training=TrainingPolicy(max_proximal_mu=max_proximal_mu),
            stability=_stability_policy(
                later_data, development_model, min_later_rows, loaded.coordinator_key_path
            ),
            gbdt=GbdtPolicy(
                max_trees=gbdt_max_trees,
                max_depth=gbdt_max_depth,
                min_node_rows=gbdt_min_node_rows,
            ),
        )
        _say_member_list(member_list)
        plan = prepare_node(settings)
        if not keeps_holdout_salt(plan.home):
            plan.save()  # a new salt is kept before the ledger is bound to its split
        say(f"checking {data}, the ledger and the audit log (nothing leaves) ...")
        checked = _checked_guard(plan.guard)
        plan.save()  # a kept salt is replaced only once the ledger accepted the split
        say(
            f"  {len(checked.bank.train) + len(checked.bank.test):,} rows pass the schema of "
            f"'{loaded.consortium}'; {len(checked.bank.test):,} held out for evaluation "
            f"(fraction {plan.guard.holdout.fraction:g}, the node's own split)"
        )
        started = start_node(plan)
    privacy = f"max ε {budget.max_epsilon:g}" if budget is not None else "no differential privacy"
    state = (
        "connected"
        if started.connected
        else "not connected yet: the edge does not answer, the node keeps retrying"
    )
    runs_as = f"; ClientApps run as {node_user}" if node_user else ""
    say(
        f"{loaded.bank}: guard started (pid {started.pid}) with its SuperNode towards "
        f"{loaded.superlink}, TLS and its node key, {state}; {privacy}{runs_as}."
    )
    _say_secure_aggregation(settings)
    say_pairs(
        [
            ("guard log:", settings.home / "services" / "guard.log"),
            ("SuperNode log:", settings.home / "services" / "supernode.log"),
            ("ledger:", settings.ledger),
            ("audit:", settings.audit_log),
        ]
    )


def _secagg_policy(threshold_fraction: float | None, min_roster: int) -> SecAggPolicy:
    """The bank's threshold policy from its flags (one-line error naming the flag)."""
    from participant.guard.settings import SecAggPolicy

    fields: dict[str, float | int] = {"min_roster": min_roster}
    if threshold_fraction is not None:
        fields["threshold_fraction"] = threshold_fraction
    return validate_fields(
        SecAggPolicy,
        fields,
        source="fedcredit participant start",
        spelled={
            "threshold_fraction": "--secagg-threshold-fraction",
            "min_roster": "--min-roster",
        },
    )


def _say_member_list(choice: MemberListChoice) -> None:
    """The pinned list's fingerprint, what changed, and the out-of-band comparison."""
    members = choice.members
    if choice.replaces_pin:
        say(
            f"the member list changed: pinned {choice.pinned_before}, now {choice.fingerprint} "
            f"(given with --members {choice.source}): pinning the new list"
        )
    if choice.bundle_fingerprint is not None:
        say(
            f"the bundle's member list ({choice.bundle_fingerprint}) is not the pinned one "
            f"({choice.fingerprint}); keeping the pinned list (to pin the bundle's, compare "
            "its fingerprint with the other banks and pass it with --members)"
        )
    say(
        f"member list of {members.consortium}: {_banks(len(members.members))}, "
        f"fingerprint {members.fingerprint}",
        "  compare this fingerprint with the other banks out of band (phone, in person): "
        "all must see the same before the first run",
    )


def _say_secure_aggregation(settings: NodeSettings) -> None:
    """Whether the bank requires secure aggregation, and its threshold policy."""
    policy = settings.secure_aggregation
    if settings.require_secure_aggregation:
        say(
            "secure aggregation required: the model update leaves only masked; threshold "
            f"floor({policy.threshold_fraction:.4g}·N)+1 of a roster of N >= "
            f"{policy.min_roster} banks"
        )
    else:
        say(
            "plain updates allowed (--allow-plain-updates): a run without secure "
            "aggregation receives this bank's model update in the clear"
            + ("" if settings.budget is not None else ", and it has no differential privacy"),
            style="yellow",
        )


def _checked_guard(settings: GuardSettings) -> BankGuard:
    """Open (and close) the bank's guard as the service will: data, ledger, audit log.

    Raises
    ------
    ConfigError
        The ledger is bound to another hold-out split: names the ledger and what to do.
    """
    from participant.guard.bank_guard import BankGuard
    from privacy.errors import SplitChanged

    try:
        guard = BankGuard.open(settings)
    except SplitChanged as changed:
        raise ConfigError(
            f"{changed} (this node keeps its hold-out salt and fraction in node.json; for a "
            "new data set or hold-out, start a new node folder with --home)",
            source="fedcredit participant start",
        ) from changed
    guard.close()
    return guard


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
    """Stop the bank's guard and its SuperNode."""
    from participant.node.supernode import stop_node

    if stop_node(home):
        say(f"stopped the guard and the SuperNode of {home}")
    else:
        say(f"no guard runs from {home}")


@participant_app.command("status")
def status(home: Home = DEFAULT_HOME) -> None:
    """Show the bank's guard and SuperNode and the budget left (exit code 1 unless both run)."""
    from participant.node.supernode import node_status

    state = node_status(home)
    guard = f"running (pid {state.guard_pid})" if state.guard_pid else "not running"
    supernode = f"running (pid {state.supernode_pid})" if state.supernode_pid else "not running"
    say_pairs(
        [
            ("guard:", f"{guard}; log: {state.guard_log}"),
            ("SuperNode:", f"{supernode}; log: {state.supernode_log}"),
            ("budget left:", state.budget_left),
            ("member list:", state.member_list),
        ]
    )
    if not state.running:
        raise typer.Exit(EXIT_RUN_FAILED)


@participant_app.command("monitor")
def monitor(
    home: Home = DEFAULT_HOME,
    out: Annotated[
        Path, typer.Option(help="Output folder for stability.json and stability.png.")
    ] = Path("stability"),
    quantile: Annotated[
        float,
        typer.Option(help="Drift flag's chi-square quantile of no drift, in (0, 1)."),
    ] = 0.99,
) -> None:
    """The bank's own stability comparison, nothing released: PSI of the score and CSI of
    every characteristic, its later file against all its development rows, on the bins of
    the development model the node was started with (--later-data, --development-model)."""
    from cli.monitor import bank_report, show_stability
    from participant.node.supernode import NodePlan

    with fail_cleanly():
        if not 0.0 < quantile < 1.0:
            raise ConfigError(f"must lie in (0, 1); got {quantile}", source="--quantile")
        document = bank_report(NodePlan.load(home).guard, out, quantile=quantile)
    show_stability(document)
    say(f"stability: {out / 'stability.json'}", f"plot:      {out / 'stability.png'}")


@participant_app.command("dashboard")
def dashboard(
    home: Home = DEFAULT_HOME,
    host: DashboardHost = "127.0.0.1",
    port: DashboardPort = DEFAULT_PORT,
    allow_remote: AllowRemote = False,
) -> None:
    """Serve a live, read-only page of the bank's node: its budget and ε spent, its ledger,
    the requests it refused, its runs, and its audit log's head and verification.

    Everything is read from the node folder (plan, ledger, audit log); nothing is written
    and nothing leaves the bank.
    """
    from participant.node.dashboard import NodeFiles, ParticipantSource, participant_page

    with fail_cleanly():
        files = NodeFiles.of_home(home)
        page = participant_page(files.bank)
        server = bind_dashboard(
            page, ParticipantSource(files), host=host, port=port, allow_remote=allow_remote
        )
    serve_until_interrupted(server)


@participant_app.command("run-guard", hidden=True)
def run_guard(home: Home = DEFAULT_HOME) -> None:
    """Run the bank's guard service in the foreground (`participant start` runs it)."""
    from participant.node.supervisor import run_guard as serve

    with fail_cleanly():
        serve(home.expanduser().resolve())


def _banks(count: int) -> str:
    """``1 bank``, ``3 banks``."""
    return f"{count} bank{'' if count == 1 else 's'}"
