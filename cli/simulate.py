"""``fedcredit simulate``: the researcher's command, a whole consortium on one machine.

The flags become one :class:`~credit.run_config.RunConfig` (and, with ``--epsilon``
or ``--budgets``, a budget per simulated bank); the data set is validated and split
into banks (or, with ``--bank-data``, every bank's own file is validated) before
Flower's Simulation Engine starts, so bad input costs seconds. With ``--folds K`` the
command runs a K-fold cross-validation over customers
(:mod:`simulations.cross_validation`): K such simulations, one per fold.
Torch, Flower and the engine are imported only when the command runs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from click import Choice
from click.core import ParameterSource

from cli import gbdt_options
from cli.console import Column, console, fail_cleanly, say, show_table
from cli.dashboard import DEFAULT_PORT
from credit.config_files import validate_fields
from credit.encoding import EncodingKind, StatsSource
from credit.errors import ConfigError
from credit.model_spec import ModelKind
from credit.run_config import RunConfig
from credit.strategy import (
    DEFAULT_BETA1,
    DEFAULT_BETA2,
    DEFAULT_PROXIMAL_MU,
    DEFAULT_SERVER_MOMENTUM,
    DEFAULT_TAU,
    STRATEGY_DEFAULT,
    Strategy,
)
from simulations.settings import SIMULATION_FILE, PartitionScheme, PartitionSettings

if TYPE_CHECKING:
    from coordinator.app.run_files import RunFiles
    from deploy.web import DashboardServer
    from participant.guard.settings import Fold
    from simulations.budgets import BudgetPolicy
    from simulations.cross_validation import CrossValidation, FoldResult, MetricSummary
    from simulations.engine import SimulationPlan
    from simulations.ray_cluster import RayAddress

__all__ = ["simulate"]

SOURCE = "fedcredit simulate"

Data = Annotated[
    Path | None,
    typer.Option(help="Bank data CSV (plain or gzip); default: the embedded UCI data set."),
]
Schema = Annotated[
    Path | None,
    typer.Option(help="Dataset schema TOML; default: the embedded data set's schema."),
]
BankData = Annotated[
    list[Path] | None,
    typer.Option(
        help="One bank's own CSV (plain or gzip), read in place and named after the file "
        "(bank-a.csv.gz: bank-a); repeat once per bank. Instead of --data, --partition, "
        "--banks, --alpha, --partition-column, --classes-per-bank, --size-skew.",
    ),
]
Banks = Annotated[
    int,
    typer.Option(min=1, help="Number of simulated banks (iid, dirichlet, pathological and size)."),
]
Partitioning = Annotated[
    PartitionScheme,
    typer.Option(
        help="How rows are split into banks: iid; dirichlet (label skew, --alpha); column "
        "(one bank per value of --partition-column, values under 2 % of rows merged into "
        "'other'); natural-id (one bank per value, none merged); pathological (each bank "
        "holds --classes-per-bank values of --partition-column); size (bank i of N holds "
        "rows in proportion to i^--size-skew). Every bank needs both classes in its "
        "training and held-out rows."
    ),
]
Alpha = Annotated[float, typer.Option(help="Dirichlet concentration (smaller = more skewed).")]
PartitionColumn = Annotated[
    str,
    typer.Option(help="Column for --partition column, natural-id and pathological."),
]
ClassesPerBank = Annotated[
    int,
    typer.Option(
        help="--partition pathological: how many values of --partition-column each bank "
        "holds (>= 1; rare values merged into 'other' as with column).",
    ),
]
SizeSkew = Annotated[
    float,
    typer.Option(
        help="--partition size: bank i of N holds rows in proportion to i^S, S in [0, 10] "
        "(0: equal sizes, 1: linear, 2: square).",
    ),
]
Rounds = Annotated[int, typer.Option(min=1, help="Federated rounds.")]
Model = Annotated[
    ModelKind,
    typer.Option(
        help="Model family (gbdt: federated gradient-boosted trees, one exchange per tree "
        "level; see --trees and the options after it)."
    ),
]
Encoding = Annotated[
    EncodingKind,
    typer.Option(
        help="Input encoding: quantile bins, z-scores, or the weight of evidence of each "
        "feature's merged bin (woe: needs --feature-stats federated; with logreg the run "
        "writes model/scorecard.csv)."
    ),
]
FeatureStats = Annotated[
    StatsSource, typer.Option(help="Encoder parameters from bank aggregates or public bounds.")
]
LocalEpochs = Annotated[
    int,
    typer.Option(
        min=0,
        help="Local epochs per round instead of --local-steps: a bank of n rows takes "
        "E*ceil(n/B) steps, so small banks move little; 0: use --local-steps.",
    ),
]
LocalSteps = Annotated[
    int,
    typer.Option(
        min=0,
        help="Local SGD steps per round, the same at every bank whatever its size (DP-SGD: "
        "that many Poisson-sampled steps at rate B/n); --local-epochs E replaces them.",
    ),
]
BatchSize = Annotated[int, typer.Option(min=1, help="Local batch size.")]
LearningRate = Annotated[float, typer.Option(help="Local SGD learning rate (> 0).")]
StrategyOption = Annotated[
    Strategy,
    typer.Option(
        "--strategy",
        help="How updates become the next model: fedavg; fedprox (a proximal term at every "
        "bank, --proximal-mu); fedadam, fedyogi, fedavgm (a server optimiser's step from the "
        "securely aggregated mean). Defaults of the options below are Flower's.",
    ),
]
ProximalMu = Annotated[
    float,
    typer.Option(help="fedprox: mu of the term mu/2*||w - w_global||^2 (> 0; banks bound it)."),
]
ServerLearningRate = Annotated[
    float,
    typer.Option(
        help="fedadam, fedyogi, fedavgm: the server step size; 0: Flower's default "
        "(fedadam 0.1, fedyogi 0.01, fedavgm 1.0)."
    ),
]
ServerMomentum = Annotated[float, typer.Option(help="fedavgm: server momentum, in [0, 1).")]
ServerBeta1 = Annotated[
    float, typer.Option(help="fedadam, fedyogi: first-moment decay, in [0, 1).")
]
ServerBeta2 = Annotated[
    float, typer.Option(help="fedadam, fedyogi: second-moment decay, in [0, 1).")
]
ServerTau = Annotated[float, typer.Option(help="fedadam, fedyogi: adaptivity floor tau (> 0).")]
Seed = Annotated[
    int, typer.Option(help="Seed for partitions, splits, initialisation and shuffles.")
]
Out = Annotated[
    Path,
    typer.Option(help="Output folder for metrics.json, model/, rounds.png and report.html."),
]
AuditKey = Annotated[
    Path | None,
    typer.Option(
        help="The coordinator's audit-signing key, outside --out (default: the per-user key "
        "$XDG_DATA_HOME/fedcredit/coordinator-audit.key, or in $FEDCREDIT_DATA_HOME)."
    ),
]
Epsilon = Annotated[
    float | None,
    typer.Option(help="Differential privacy: every bank's max epsilon (DP-SGD with Opacus)."),
]
Delta = Annotated[
    float | None,
    typer.Option(help="With --epsilon: every bank's delta (default 1/(10 n_train) per bank)."),
]
Budgets = Annotated[
    Path | None, typer.Option(help="TOML file with a privacy budget per bank (see README).")
]
MaxGradNorm = Annotated[float, typer.Option(help="DP-SGD per-sample clipping norm.")]
SecureAggregation = Annotated[
    bool,
    typer.Option(
        help="Combine updates by secure aggregation (the coordinator learns only the sum)."
    ),
]
ThresholdFraction = Annotated[
    float,
    typer.Option(
        "--secagg-threshold-fraction",
        help="Secure aggregation's threshold policy F: t = floor(F*N)+1 shares of N banks, "
        "F in [0.5, 1); every simulated bank enforces it.",
    ),
]
SecAggGraph = Annotated[
    str,
    typer.Option(
        "--secagg-graph",
        help="Secure aggregation's graph: complete, sparse (SecAgg+'s Harary graph, "
        "k = O(log N) neighbours per bank) or auto (sparse above 100 banks).",
        click_type=Choice(["auto", "complete", "sparse"]),
    ),
]
DropoutRate = Annotated[
    float,
    typer.Option(help="Chance a bank drops out of a round at a random stage (0 <= p < 1)."),
]
EvaluateEvery = Annotated[
    int | None,
    typer.Option(
        min=0,
        help=(
            "Score the global model every N rounds (the last round's always; 0: only the "
            "last). Default: every round, or only the last with budgets (each evaluation "
            "of held-out rows is charged to them)."
        ),
    ),
]
DecisionCutoff = Annotated[
    float,
    typer.Option(
        help="Fairness report: an applicant is declined when the model's predicted default "
        "probability is >= this (in [0, 1], a multiple of 0.01: a score-bin edge).",
    ),
]
Pdo = Annotated[
    float, typer.Option(help="Scorecard (--encoding woe, logreg): points to double the odds.")
]
BaseScore = Annotated[
    float, typer.Option(help="Scorecard: the score at which the odds (good:bad) are --base-odds.")
]
BaseOdds = Annotated[
    float, typer.Option(help="Scorecard: the odds (good:bad) at --base-score, e.g. 50 for 50:1.")
]
ValidationFraction = Annotated[
    float,
    typer.Option(
        help="Share of each simulated bank's training rows kept as its validation part, "
        "in [0, 1): never trained on, it scores each round's model, the run keeps the "
        "round with the best validation AUC and scores only that one on the held-out rows. "
        "0: none (rounds scored on the held-out rows, the last model kept).",
    ),
]
Patience = Annotated[
    int,
    typer.Option(
        min=0,
        help="Early stopping: stop once this many validated rounds after the best one did "
        "not beat its validation AUC (the best round's model is kept); 0: run every round.",
    ),
]
Cpus = Annotated[
    int | None, typer.Option(min=1, help="CPUs for the simulation engine (default: all).")
]
WriteBankFiles = Annotated[
    bool,
    typer.Option(
        "--write-bank-files",
        help="Write each simulated bank's rows to its own CSV in OUT/banks/ (default: each "
        "bank reads its rows of the source data set; nothing is written per bank).",
    ),
]
RayAddressOption = Annotated[
    str | None,
    typer.Option(
        "--ray-address",
        help="Run the virtual banks on an existing Ray cluster: its GCS address HOST:PORT "
        "(what `ray start --head` prints); run this command on a node of the cluster. "
        "Research only: the cluster sees every simulated bank's data. Not with --cpus "
        "(each node has the CPUs it was started with).",
        show_default=False,
    ),
]
Dashboard = Annotated[
    bool,
    typer.Option(
        "--dashboard",
        help="Serve the run's live dashboard on 127.0.0.1 while it runs, and after it until "
        "Ctrl-C (not with --folds).",
    ),
]
DashboardPortOption = Annotated[
    int, typer.Option(min=0, max=65535, help="Port of --dashboard (0: any free port).")
]
Folds = Annotated[
    int | None,
    typer.Option(
        help="K-fold cross-validation over customers (K >= 2): K runs one after another, "
        "run k in OUT/fold-<k>/ with every bank holding out the customers whose hold-out "
        "value falls in [k/K, (k+1)/K); mean and sample sd (ddof=1) of every final metric "
        "in OUT/metrics.json. With budgets, every run spends its own budget.",
        show_default=False,
    ),
]
ReproducibleNoise = Annotated[
    bool,
    typer.Option(
        "--reproducible-noise",
        help="RESEARCH ONLY, never for real data: key every simulated bank's DP noise "
        "and sampling from --seed (HKDF-SHA256), so a private run repeats exactly at the "
        "same seed. The noise becomes predictable from the seed: the model is then not "
        "private. Recorded in simulation.json, metrics.json and the report. Default: fresh "
        "keys from os.urandom, as every deployed bank.",
    ),
]

_SPLIT_FLAGS = {
    "data": "--data",
    "partition": "--partition",
    "banks": "--banks",
    "alpha": "--alpha",
    "partition_column": "--partition-column",
    "classes_per_bank": "--classes-per-bank",
    "size_skew": "--size-skew",
}
"""The flags that split one data set into banks: ``--bank-data`` takes their place."""
_STRATEGY_FLAGS = {
    name: "--" + name.replace("_", "-")
    for name in (
        "strategy",
        "proximal_mu",
        "server_learning_rate",
        "server_momentum",
        "server_beta1",
        "server_beta2",
        "server_tau",
    )
}
"""The strategy's flags, as a bad value's error names them."""
_GIVEN = (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT, ParameterSource.PROMPT)

_METRICS = ("auc", "ks", "gini", "brier", "log_loss", "accuracy", "f1")
_METRIC_HEADERS = ("AUC", "KS", "Gini", "Brier", "log loss", "accuracy", "F1")
_METRIC_NAMES = dict(zip(_METRICS, _METRIC_HEADERS, strict=True)) | {
    "f1_threshold": "F1 cut-off",
    "n_rows": "held-out rows",
    "default_rate": "default rate",
}


def simulate(
    ctx: typer.Context,
    data: Data = None,
    bank_data: BankData = None,
    schema: Schema = None,
    banks: Banks = 5,
    partition: Partitioning = PartitionScheme.IID,
    alpha: Alpha = 0.5,
    partition_column: PartitionColumn = "EDUCATION",
    classes_per_bank: ClassesPerBank = 2,
    size_skew: SizeSkew = 1.0,
    rounds: Rounds = 10,
    model: Model = ModelKind.LOGREG,
    encoding: Encoding = EncodingKind.BINNED,
    feature_stats: FeatureStats = StatsSource.FEDERATED,
    local_epochs: LocalEpochs = 0,
    local_steps: LocalSteps = 50,
    batch_size: BatchSize = 64,
    learning_rate: LearningRate = 0.01,
    strategy: StrategyOption = Strategy.FEDAVG,
    proximal_mu: ProximalMu = DEFAULT_PROXIMAL_MU,
    server_learning_rate: ServerLearningRate = STRATEGY_DEFAULT,
    server_momentum: ServerMomentum = DEFAULT_SERVER_MOMENTUM,
    server_beta1: ServerBeta1 = DEFAULT_BETA1,
    server_beta2: ServerBeta2 = DEFAULT_BETA2,
    server_tau: ServerTau = DEFAULT_TAU,
    seed: Seed = 0,
    out: Out = Path("runs/simulate"),
    audit_key: AuditKey = None,
    epsilon: Epsilon = None,
    delta: Delta = None,
    budgets: Budgets = None,
    max_grad_norm: MaxGradNorm = 1.0,
    secure_aggregation: SecureAggregation = True,
    secagg_threshold_fraction: ThresholdFraction = 2 / 3,
    secagg_graph: SecAggGraph = "auto",
    dropout_rate: DropoutRate = 0.0,
    evaluate_every: EvaluateEvery = None,
    decision_cutoff: DecisionCutoff = 0.5,
    validation_fraction: ValidationFraction = 0.2,
    patience: Patience = 0,
    pdo: Pdo = 20.0,
    base_score: BaseScore = 600.0,
    base_odds: BaseOdds = 50.0,
    cpus: Cpus = None,
    write_bank_files: WriteBankFiles = False,
    ray_address: RayAddressOption = None,
    folds: Folds = None,
    reproducible_noise: ReproducibleNoise = False,
    dashboard: Dashboard = False,
    dashboard_port: DashboardPortOption = DEFAULT_PORT,
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
    """Train a shared model across simulated banks with Flower's Simulation Engine."""
    started = time.monotonic()
    with fail_cleanly():
        gbdt_options.refuse_sgd_flags(ctx, gbdt=model is ModelKind.GBDT)
        if model is ModelKind.GBDT:
            validation_fraction = gbdt_options.boosting_validation_fraction(
                ctx, validation_fraction
            )
        if bank_data:
            _refuse_split_flags(ctx)
        if encoding is EncodingKind.WOE and feature_stats is StatsSource.PUBLIC:
            raise ConfigError(
                "woe needs --feature-stats federated: the WoE values come from the banks' "
                "per-class counts in the set-up release, which --feature-stats public skips",
                source="--encoding",
            )
        config = RunConfig.build(
            {
                "rounds": rounds,
                "model": model,
                "encoding": encoding,
                "feature_stats": feature_stats,
                "local_epochs": local_epochs,
                "local_steps": local_steps,
                "batch_size": batch_size,
                "learning_rate": learning_rate,
                "strategy": strategy,
                "proximal_mu": proximal_mu,
                "server_learning_rate": server_learning_rate,
                "server_momentum": server_momentum,
                "server_beta1": server_beta1,
                "server_beta2": server_beta2,
                "server_tau": server_tau,
                "seed": seed,
                "schema": str(schema or ""),
                "out_dir": str(out),
                "audit_key": str(audit_key or ""),
                "max_grad_norm": max_grad_norm,
                "secure_aggregation": secure_aggregation,
                "secagg_threshold_fraction": secagg_threshold_fraction,
                "secagg_graph": secagg_graph,
                "decision_cutoff": decision_cutoff,
                "validation_fraction": validation_fraction,
                "patience": patience,
                **({} if evaluate_every is None else {"evaluate_every": evaluate_every}),
                "pdo": pdo,
                "base_score": base_score,
                "base_odds": base_odds,
                "trees": trees,
                "max_depth": max_depth,
                "tree_learning_rate": tree_learning_rate,
                "reg_lambda": reg_lambda,
                "gamma": gamma,
                "min_child_weight": min_child_weight,
                "subsample": subsample,
                "colsample": colsample,
                "max_bins": max_bins,
            },
            source=SOURCE,
            spelled={
                **gbdt_options.BOOSTING_FLAGS,
                "audit_key": "--audit-key",
                "secagg_threshold_fraction": "--secagg-threshold-fraction",
                "secagg_graph": "--secagg-graph",
                "decision_cutoff": "--decision-cutoff",
                "validation_fraction": "--validation-fraction",
                "patience": "--patience",
                "pdo": "--pdo",
                "base_score": "--base-score",
                "base_odds": "--base-odds",
                **_STRATEGY_FLAGS,
            },
        )
        banks_from: PartitionSettings | list[Path] = bank_data or _partition_settings(
            data,
            partition,
            alpha,
            partition_column,
            {"classes_per_bank": classes_per_bank, "size_skew": size_skew},
        )
        budgets_of_banks = _budget_policy(epsilon, delta, budgets)
        cluster = _ray_cluster(ray_address, cpus)
        if dashboard and folds is not None:
            raise ConfigError(
                "cannot be combined with --folds (each fold is a run of its own)",
                source="--dashboard",
            )

        def plan_fold(config: RunConfig, fold: Fold | None) -> SimulationPlan:
            return _plan(
                config,
                banks,
                banks_from,
                budgets_of_banks,
                dropout_rate,
                fold,
                write_bank_files,
                reproducible_noise=reproducible_noise,
            )

        if folds is not None:
            cross_validation = _cross_validate(config, folds, plan_fold, cpus, cluster)
            _show_cross_validation(cross_validation, out, time.monotonic() - started)
            return
        plan = plan_fold(config, None)
        server = _start_dashboard(out, dashboard_port) if dashboard else None
        files = _run(plan, cpus, cluster)
    if model is ModelKind.GBDT:
        gbdt_options.show_boosting_summary(out, time.monotonic() - started)
        if server is not None:
            _keep_serving(server)
        return
    _show_summary(files.metrics, time.monotonic() - started)
    say(
        f"metrics:    {files.metrics}",
        f"model:      {files.model} (a signed package: fedcredit model verify {files.model})",
        f"plot:       {files.plot}",
        f"report:     {files.report}",
        f"simulation: {files.metrics.with_name(SIMULATION_FILE)}",
        f"score a file of applicants: fedcredit score --model {files.model} "
        "--data FILE --out scores.csv",
    )
    if server is not None:
        _keep_serving(server)


def _start_dashboard(out: Path, port: int) -> DashboardServer:
    """Serve the output folder's dashboard on 127.0.0.1 in a background thread."""
    from cli.dashboard import bind_dashboard
    from coordinator.ops.dashboard import SimulationSource, coordinator_page

    page = coordinator_page(f"Simulation {out.name}")
    server = bind_dashboard(
        page, SimulationSource(out), host="127.0.0.1", port=port, allow_remote=False
    )
    server.start()
    say(f"dashboard: {server.url} (read-only; follows {out})")
    return server


def _keep_serving(server: DashboardServer) -> None:
    """Go on serving the finished run's dashboard until Ctrl-C."""
    say(f"dashboard: still serving the finished run at {server.url}; Ctrl-C stops it")
    try:
        while True:
            time.sleep(1.0)
    except KeyboardInterrupt:
        server.stop()
        say("dashboard stopped")


def _refuse_split_flags(ctx: typer.Context) -> None:
    """With ``--bank-data``, refuse every flag that would split one data set into banks."""
    given = [
        flag for name, flag in _SPLIT_FLAGS.items() if ctx.get_parameter_source(name) in _GIVEN
    ]
    if given:
        raise ConfigError(
            f"cannot be combined with {', '.join(given)}: each file is one bank, nothing is split",
            source="--bank-data",
        )


def _partition_settings(
    data: Path | None,
    partition: PartitionScheme,
    alpha: float,
    partition_column: str,
    scheme_options: dict[str, int | float],
) -> PartitionSettings:
    """How the data set is split into banks, from the flags (``scheme_options``: the
    new schemes' ``classes_per_bank`` and ``size_skew``)."""
    fields = {
        "data": str(data or ""),
        "partition": partition,
        "alpha": alpha,
        "partition_column": partition_column,
        **scheme_options,
    }
    spelled = {
        "alpha": "--alpha",
        "partition_column": "--partition-column",
        "classes_per_bank": "--classes-per-bank",
        "size_skew": "--size-skew",
    }
    return validate_fields(PartitionSettings, fields, source=SOURCE, spelled=spelled)


def _plan(
    config: RunConfig,
    banks: int,
    banks_from: PartitionSettings | list[Path],
    budgets: tuple[BudgetPolicy | None, str],
    dropout_rate: float,
    fold: Fold | None,
    write_bank_files: bool = False,
    *,
    reproducible_noise: bool = False,
) -> SimulationPlan:
    """Validate and split the data into banks (or each bank's file), say which bank got what.

    With ``fold``, every bank holds out that fold of a cross-validation; with
    ``write_bank_files``, each bank of a split gets its own CSV in ``OUT/banks/``; with
    ``reproducible_noise``, the banks' DP noise is keyed from the seed (research only).
    """
    from simulations.engine import plan_bank_files, plan_simulation

    policy, policy_source = budgets
    if isinstance(banks_from, PartitionSettings):
        console.print(
            "[bold]fedcredit simulate[/]: validating data and splitting it into banks "
            f"({banks_from.partition})"
        )
        plan = plan_simulation(
            config,
            banks,
            partition=banks_from,
            budgets=policy,
            budget_source=policy_source,
            dropout_rate=dropout_rate,
            fold=fold,
            write_bank_files=write_bank_files,
            reproducible_noise=reproducible_noise,
        )
    else:
        console.print(
            "[bold]fedcredit simulate[/]: validating the banks' files (one bank per file)"
        )
        plan = plan_bank_files(
            config,
            banks_from,
            budgets=policy,
            budget_source=policy_source,
            dropout_rate=dropout_rate,
            fold=fold,
            reproducible_noise=reproducible_noise,
        )
    _say_banks(plan)
    if reproducible_noise:
        say(
            "noise: reproducible from seed (research only): DP noise is predictable from "
            "--seed, the model is not private; never use this on real data",
            style="yellow",
        )
    return plan


_LISTED_BANKS = 20
"""Banks listed one per line before the run; larger consortia are summed up."""


def _say_banks(plan: SimulationPlan) -> None:
    """Which bank got how many rows from where (the first 20, and a summary of the rest)."""
    for bank, part in list(zip(plan.banks, plan.partitions, strict=True))[:_LISTED_BANKS]:
        where = bank.data_path if bank.data_rows is None else f"its rows of {bank.data_path}"
        say(f"  {bank.bank_name:<18} {part.rows.size:>6,} rows  -> {where}")
    if len(plan.banks) > _LISTED_BANKS:
        sizes = [int(part.rows.size) for part in plan.partitions]
        record = Path(plan.config.out_dir) / SIMULATION_FILE
        say(
            f"  ... {len(plan.banks) - _LISTED_BANKS:,} more banks ({min(sizes):,} to "
            f"{max(sizes):,} rows each; every bank in {record})"
        )


def _ray_cluster(ray_address: str | None, cpus: int | None) -> RayAddress | None:
    """The Ray cluster of ``--ray-address``, checked to answer before any data is split."""
    if ray_address is None:
        return None
    from simulations.ray_cluster import parse_ray_address, probe_ray_cluster

    if cpus is not None:
        raise ConfigError(
            "cannot be combined with --cpus: each node of the cluster gives the CPUs it "
            "was started with (ray start --num-cpus)",
            source="--ray-address",
        )
    address = parse_ray_address(ray_address)
    probe_ray_cluster(address)
    return address


def _run(plan: SimulationPlan, cpus: int | None, cluster: RayAddress | None) -> RunFiles:
    """Flower's Simulation Engine over the plan (on ``cluster`` if given), printing each round."""
    from simulations.engine import run_simulated_consortium

    where = f" on the Ray cluster at {cluster}" if cluster else ""
    say(f"starting Flower's Simulation Engine with {len(plan.banks)} virtual SuperNodes{where} ...")
    return run_simulated_consortium(
        plan,
        on_round=lambda result, total: say(result.progress_line(total)),
        on_event=say,
        cpus=cpus,
        ray_address=cluster,
    )


def _cross_validate(
    config: RunConfig,
    folds: int,
    plan_fold: Callable[[RunConfig, Fold], SimulationPlan],
    cpus: int | None,
    cluster: RayAddress | None,
) -> CrossValidation:
    """K simulations, one per fold, each announced before it starts and summed up after.

    K < 2 is refused before anything is planned (:func:`run_cross_validation`).
    """
    from simulations.cross_validation import run_cross_validation

    def announced(config: RunConfig, fold: Fold) -> SimulationPlan:
        lower, upper = fold.bounds
        say(
            f"fold {fold.index} ({fold.index + 1} of {fold.count}): every bank holds out the "
            f"customers with hold-out value in [{lower:.4g}, {upper:.4g}) -> {config.out_dir}"
        )
        return plan_fold(config, fold)

    def ended(result: FoldResult) -> None:
        final = result.final
        say(
            f"fold {result.fold.index} ({result.fold.index + 1} of {folds}) {result.status}: "
            f"AUC {final['auc']:.4f}, KS {final['ks']:.4f}, Brier {final['brier']:.4f}"
        )

    return run_cross_validation(
        config,
        folds,
        plan_fold=announced,
        run_fold=lambda plan: _run(plan, cpus, cluster),
        on_fold=ended,
    )


def _budget_policy(
    epsilon: float | None, delta: float | None, budgets: Path | None
) -> tuple[BudgetPolicy | None, str]:
    """The simulated banks' budgets from --epsilon/--delta or --budgets FILE, and their source."""
    from privacy.budget import PrivacyBudget
    from simulations.budgets import BudgetPolicy, load_budget_file

    if budgets is not None and epsilon is not None:
        raise ConfigError("give either --epsilon or --budgets, not both", source="--budgets")
    if budgets is not None:
        return load_budget_file(budgets), str(budgets)
    if epsilon is None:
        if delta is not None:
            raise ConfigError("--delta needs --epsilon", source="--delta")
        return None, "--epsilon"
    budget = validate_fields(
        PrivacyBudget,
        {"max_epsilon": epsilon, "delta": delta},
        source="fedcredit simulate",
        spelled={"max_epsilon": "--epsilon", "delta": "--delta"},
    )
    return BudgetPolicy(default=budget), "--epsilon"


def _show_cross_validation(cross_validation: CrossValidation, out: Path, seconds: float) -> None:
    """Every final metric's mean ± sd over the folds, and each fold's value."""
    count = cross_validation.folds
    show_table(
        f"Cross-validation: {count} folds ({seconds:.0f} s), mean ± sample sd (ddof=1)",
        [
            "metric",
            Column("mean ± sd", justify="right"),
            *(Column(f"fold {index}", justify="right") for index in range(count)),
        ],
        [_summary_row(name, summary) for name, summary in cross_validation.metrics.items()],
    )
    say(
        f"metrics:    {out / 'metrics.json'} (cross_validation: mean, sd, per_fold)",
        f"folds:      {out / 'fold-<k>'}/ (each a complete run: metrics.json, model/, ledgers)",
    )


def _summary_row(name: str, summary: MetricSummary) -> list[str]:
    """A metric's row: its name, mean ± sd and each fold's value (row counts to 0.1)."""
    decimals = 1 if name == "n_rows" else 4
    return [
        _METRIC_NAMES.get(name, name),
        f"{summary.mean:.{decimals}f} ± {summary.sd:.{decimals}f}",
        *(f"{value:.{decimals}f}" for value in summary.per_fold),
    ]


def _selection_lines(document: dict[str, Any]) -> list[str]:
    """Which round's model the run kept, and whether it was still improving."""
    selection = document.get("selection")
    if not selection:
        return []
    if selection["validation_auc"] is None:
        lines = [f"model kept: the last round's (round {selection['round']}; none validated)"]
    else:
        lines = [
            f"model kept: round {selection['round']} of {selection['last_round']} (best "
            f"validation AUC {selection['validation_auc']:.4f})"
        ]
    if document.get("stopped_early"):
        lines.append(f"stopped early: {document['stopped_early']}")
    if selection["still_improving"]:
        lines.append(
            f"the model was still improving at the last round (round "
            f"{selection['last_round']}): more rounds may help"
        )
    return lines


def _show_summary(metrics_path: Path, seconds: float) -> None:
    """The final pooled test metrics and the participants, from ``metrics.json``."""
    document = json.loads(metrics_path.read_text(encoding="utf-8"))
    participants = document["participants"]
    rows = []
    if document["final"]:
        rows.append(["released", *(f"{document['final'][k]:.4f}" for k in _METRICS)])
    record = metrics_path.with_name(SIMULATION_FILE)
    exact = (
        json.loads(record.read_text(encoding="utf-8")).get("exact_final")
        if record.exists()
        else None
    )
    if exact:
        rows.append(["exact", *(f"{exact[key]:.4f}" for key in _METRICS)])
    show_table(
        f"Final pooled test metrics ({len(participants)} banks, {seconds:.0f} s)",
        ["from", *(Column(header, justify="right") for header in _METRIC_HEADERS)],
        rows,
    )
    for line in _selection_lines(document):
        say(line)
    if document.get("final_missing"):
        say(f"final evaluation missing: {document['final_missing']}", style="yellow")
    listed = list(participants.items())[:_LISTED_BANKS]
    more = len(participants) > _LISTED_BANKS
    show_table(
        f"Participants (the first {_LISTED_BANKS} of {len(participants):,}: all in metrics.json)"
        if more
        else "Participants",
        ["bank", Column("train rows", justify="right")],
        [(name, f"{counts['n_train']:,}") for name, counts in listed],
    )
