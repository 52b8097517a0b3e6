"""Run a simulated consortium through Flower's Simulation Engine.

The research harness validates the source file once, splits it into banks
(:mod:`simulations.partition`), and either gives each bank its rows of the source file
(read once per worker process) or, with ``write_bank_files``, writes one CSV per bank
under ``OUT/banks/`` (each bank reads only its own file, as in deployment); then it
starts the coordinator's ServerApp and one ClientApp per virtual SuperNode on Flower's
Ray backend. Banks that already have their own files (:func:`plan_bank_files`) are
validated and read in place instead.

Notes
-----
Flower 1.41 offers two doors to its Simulation Engine: ``flwr run`` against a local
SuperLink and the Python function :func:`flwr.simulation.run_simulation`. The harness
uses the function: it runs the ServerApp in this process with the simulation's own
ClientApp (:func:`simulation_client_app`: each bank's file, simulated budgets and the
dropout mod), so progress reaches the terminal directly and no detached SuperLink is
left behind. ``flwr run`` would load the app ``pyproject.toml`` declares, the bank's
deployed ClientApp, which reads its data from its node config and knows nothing of
simulations; it is not a supported way to simulate. Flower marks the function
deprecated; its deprecation notice is filtered from the log.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import Context
from flwr.clientapp import ClientApp
from flwr.clientapp.typing import Mod
from flwr.serverapp import ServerApp

from coordinator.app.audit_trail import AUDIT_DIR, COORDINATOR_LOG
from coordinator.app.run_files import RunFiles, run_files
from coordinator.app.run_state import RoundResult
from coordinator.app.server_app import make_server_app
from credit.errors import ConfigError
from credit.loading import load_bank_csv
from credit.run_config import RunConfig
from credit.schema import load_schema
from deploy.flower_env import set_offline_defaults
from participant.guard.bank import held_out_rows
from participant.guard.in_process import InProcessLink, guard_for
from participant.guard.sessions import ContextSessions, SessionStore
from participant.guard.settings import (
    Fold,
    GuardSettings,
    HoldOut,
    SecAggPolicy,
    TrainingPolicy,
)
from participant.relay.client_app import make_relay_app
from privacy.secagg.graph import GraphChoice
from privacy.secagg.members import Member, MemberList, member_name
from privacy.secagg.protocol import MIN_ROSTER
from simulations.bank_requirement import BankRequirement
from simulations.budgets import BudgetPolicy
from simulations.dropouts import dropout_mod
from simulations.link_state import indexed_link_state
from simulations.noise import NOISE_KEY, noise_keys_for, noise_text, record_noise
from simulations.partition import Partition, PartitionedData, partition_data
from simulations.ray_cluster import RayAddress, connected_to
from simulations.secagg_costs import COSTS_DIR, CostRecordingSessions, record_secagg_costs
from simulations.settings import SIMULATION_FILE, BankFiles, PartitionSettings
from simulations.shared_plan import SharedPartitionPlan

__all__ = [
    "PartitionPlan",
    "SimulationPlan",
    "pinned_banks",
    "plan_bank_files",
    "plan_simulation",
    "relay_app",
    "run_simulated_consortium",
    "simulation_client_app",
]

BANKS_DIR = "banks"
LEDGERS_DIR = "ledgers"
_BANK_AUDIT_SUFFIXES = (".jsonl", ".key", ".pub", ".history")
MEMBERS_FILE = "members.json"
"""The simulated consortium's member list, in ``OUT/``."""
SIMULATION_CONSORTIUM = "simulation"
RoundCallback = Callable[[RoundResult, int], None]
EventCallback = Callable[[str], None]


@dataclass(frozen=True)
class SimulationPlan:
    """The banks of a simulation and where their files were written.

    Attributes
    ----------
    config : RunConfig
        The coordinator's run configuration.
    banks : tuple of GuardSettings
        Each simulated bank's guard settings (file, schema, budget, ledger, hold-out),
        by Flower partition id.
    partitions : tuple of Partition
        Each bank's rows in the source data set (a bank from its own file: all of
        the file's rows).
    partition : PartitionSettings or BankFiles
        The data set and how it was split, or the banks' own files.
    dropout_rate : float
        Chance a bank drops out of a round (see :mod:`simulations.dropouts`).
    fold : Fold or None
        The fold every bank holds out in a cross-validation
        (:mod:`simulations.cross_validation`); None: the run's ``test_fraction``.
    reproducible_noise : bool
        The banks' DP noise is keyed from the seed (:mod:`simulations.noise`; research
        only); False: fresh from ``os.urandom``, as a deployed bank's.
    """

    config: RunConfig
    banks: tuple[GuardSettings, ...]
    partitions: tuple[Partition, ...]
    partition: PartitionSettings | BankFiles = field(default_factory=PartitionSettings)
    dropout_rate: float = 0.0
    fold: Fold | None = None
    reproducible_noise: bool = False

    def document(self) -> dict[str, Any]:
        """What ``OUT/simulation.json`` records: how the consortium was simulated."""
        return {
            "partition": self.partition.model_dump(mode="json"),
            "dropout_rate": self.dropout_rate,
            "fold": None if self.fold is None else self.fold.model_dump(),
            NOISE_KEY: noise_text(self.reproducible_noise),
            "banks": [
                {
                    "name": bank.bank_name,
                    "rows": int(part.rows.size),
                    "file": str(bank.data_path),
                    **({} if bank.data_rows is None else {"file_rows": list(bank.data_rows)}),
                    "budget": None if bank.budget is None else bank.budget.model_dump(),
                }
                for bank, part in zip(self.banks, self.partitions, strict=True)
            ],
        }


@dataclass(frozen=True)
class PartitionPlan:
    """The banks of a simulation, indexed by Flower's ``partition-id``."""

    banks: tuple[GuardSettings, ...]

    def __call__(self, context: Context) -> GuardSettings:
        partition_id = context.node_config.get("partition-id")
        if not isinstance(partition_id, int) or not 0 <= partition_id < len(self.banks):
            raise ConfigError(
                f"partition-id {partition_id!r} outside the plan's {len(self.banks)} banks",
                source="node config",
            )
        return self.banks[partition_id]


def plan_simulation(
    config: RunConfig,
    n_banks: int = 5,
    *,
    partition: PartitionSettings | None = None,
    budgets: BudgetPolicy | None = None,
    budget_source: str = "--epsilon",
    dropout_rate: float = 0.0,
    fold: Fold | None = None,
    write_bank_files: bool = True,
    reproducible_noise: bool = False,
) -> SimulationPlan:
    """Validate the source data and split it into banks (one file per bank if asked).

    With ``write_bank_files`` (the default here; ``fedcredit simulate`` asks for it
    with ``--write-bank-files``) each bank's rows go to its own CSV in ``OUT/banks/``;
    without, each bank reads its rows of the source file (``GuardSettings.data_rows``),
    which a worker process validates once for all the banks it serves. The plan goes
    to ``OUT/simulation.json`` (with each bank's rows of the source file when it has
    no file of its own).
    ``partition`` says which data set and how it is split (default: the embedded
    data, IID into ``n_banks`` banks). With ``budgets``, every bank that has one
    trains with DP-SGD and keeps its ledger in ``OUT/ledgers/<bank>.jsonl``; ledgers
    left by an earlier simulation in the same folder are removed first, because the
    simulated banks are new. With ``fold`` (a cross-validation's, see
    :mod:`simulations.cross_validation`), every bank holds out that fold of its
    customers instead of the run's ``test_fraction``, which must be the fold's ``1/K``.
    With ``reproducible_noise`` the banks' DP noise is keyed from the run's seed
    (:mod:`simulations.noise`: research only, never for real data).

    Raises
    ------
    credit.errors.SchemaError
        The data file breaks the schema (names file, column and row).
    credit.errors.ConfigError
        The partition settings cannot be met (a bank short of rows, or of either class
        in its training or held-out rows), or a bank has fewer rows than ``fold`` has
        folds, or a fold leaves a bank without a class on one side.
    """
    _check_dropout_rate(dropout_rate)
    _check_fold_fraction(config, fold)
    partition = partition or PartitionSettings()
    data = partition_data(
        partition,
        n_banks=n_banks,
        schema_file=config.schema_file,
        seed=config.seed,
        holdouts=[] if fold else [_run_hold_out(config)],
    )
    _check_fold_count(fold, {part.name: int(part.rows.size) for part in data.partitions})
    _check_fold_classes(data, config.seed, fold)
    config = _with_coordinator_key(_fitted_to(config, len(data.partitions)))
    if budgets is not None:
        budgets.check_banks([p.name for p in data.partitions], source=budget_source)
    plan = SimulationPlan(
        config=config,
        banks=pinned_banks(_bank_settings(data, config, budgets, fold, write_bank_files), config),
        partitions=tuple(data.partitions),
        partition=partition,
        dropout_rate=dropout_rate,
        fold=fold,
        reproducible_noise=reproducible_noise,
    )
    _record(plan)
    return plan


def plan_bank_files(
    config: RunConfig,
    files: Sequence[Path | str],
    *,
    budgets: BudgetPolicy | None = None,
    budget_source: str = "--epsilon",
    dropout_rate: float = 0.0,
    fold: Fold | None = None,
    reproducible_noise: bool = False,
) -> SimulationPlan:
    """One simulated bank per file: validate every file, use them in place, record the plan.

    Each file is one bank, named after the file without its suffixes
    (``bank-a.csv.gz`` is ``bank-a``); the i-th file is Flower partition id i. Nothing
    is split or copied: the banks read the files where they are. Every file is
    validated against the run's schema before anything is written. The plan goes to
    ``OUT/simulation.json``; with ``budgets``, every bank that has one keeps its
    ledger in ``OUT/ledgers/<bank>.jsonl`` (stale ledgers removed, as in
    :func:`plan_simulation`). With ``fold``, every bank holds out that fold, and with
    ``reproducible_noise`` the banks' noise is keyed from the seed (as in
    :func:`plan_simulation`).

    Raises
    ------
    credit.errors.SchemaError
        A file is missing or breaks the schema (names file, column and row).
    credit.errors.ConfigError
        No file, two files naming the same bank, a budget for a bank that has no
        file, settings the consortium cannot meet, or a bank with fewer rows than
        ``fold`` has folds.
    """
    _check_dropout_rate(dropout_rate)
    _check_fold_fraction(config, fold)
    paths = [Path(file) for file in files]
    names = _bank_names(paths)
    config = _with_coordinator_key(_fitted_to(config, len(paths)))
    if budgets is not None:
        budgets.check_banks(names, source=budget_source)
    schema_path = Path(config.schema_file) if config.schema_file else None
    schema = load_schema(schema_path)
    n_rows = [load_bank_csv(path, schema).n_rows for path in paths]
    _check_fold_count(fold, dict(zip(names, n_rows, strict=True)))
    out_dir = Path(config.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ledgers_dir = _fresh_ledgers_dir(out_dir)
    plan = SimulationPlan(
        config=config,
        banks=pinned_banks(
            tuple(
                _guard_settings(
                    name, path.absolute(), schema_path, config, budgets, ledgers_dir, fold
                )
                for name, path in zip(names, paths, strict=True)
            ),
            config,
        ),
        partitions=tuple(
            Partition(name, np.arange(rows, dtype=np.int64))
            for name, rows in zip(names, n_rows, strict=True)
        ),
        partition=BankFiles(files=tuple(str(path) for path in paths)),
        dropout_rate=dropout_rate,
        fold=fold,
        reproducible_noise=reproducible_noise,
    )
    _record(plan)
    return plan


def _bank_names(paths: Sequence[Path]) -> list[str]:
    """Each file's bank: its name without suffixes; two files naming one bank are refused.

    Two names that would share a ledger file (``a b`` and ``a_b``) are refused too.
    """
    if not paths:
        raise ConfigError("give at least one bank's file", source="--bank-data")
    names: list[str] = []
    seen: dict[str, tuple[str, Path]] = {}
    for path in paths:
        name = path.name[: len(path.name) - len("".join(path.suffixes))]
        if not name:
            raise ConfigError(f"'{path}' has no name to give its bank", source="--bank-data")
        key = _file_name(name)
        if key in seen:
            other_name, other = seen[key]
            same = f"bank '{name}'" if other_name == name else f"banks '{other_name}' and '{name}'"
            raise ConfigError(
                f"'{other}' and '{path}' both name {same}; each bank needs its own file name",
                source="--bank-data",
            )
        seen[key] = (name, path)
        names.append(name)
    return names


def _record(plan: SimulationPlan) -> None:
    """Write ``OUT/simulation.json``: how the consortium was simulated."""
    document = json.dumps(plan.document(), indent=2) + "\n"
    (Path(plan.config.out_dir) / SIMULATION_FILE).write_text(document, encoding="utf-8")


def _check_dropout_rate(dropout_rate: float) -> None:
    if not 0.0 <= dropout_rate < 1.0:
        raise ConfigError(f"must be in [0, 1); got {dropout_rate}", source="--dropout-rate")


def _check_fold_fraction(config: RunConfig, fold: Fold | None) -> None:
    """A fold's run asks the banks for the fold's share, ``1/K``, and for nothing else."""
    if fold is not None and config.test_fraction != fold.fraction:
        raise ConfigError(
            f"fold {fold.index} of {fold.count} holds out 1/{fold.count} of every bank's "
            f"rows; the run's test-fraction is {config.test_fraction:g}: run it with "
            f"test-fraction 1/{fold.count}",
            source="--folds",
        )


def _check_fold_count(fold: Fold | None, rows: dict[str, int]) -> None:
    """K folds need at least K rows at every bank (else a fold is empty there for sure)."""
    if fold is None or not rows:
        return
    name, fewest = min(rows.items(), key=lambda item: item[1])
    if fewest < fold.count:
        fewer = f"use --folds {fewest} or fewer" if fewest >= 2 else "give it more rows"
        raise ConfigError(
            f"{fold.count} folds need at least {fold.count} rows at every bank; bank "
            f"'{name}' has {fewest}: {fewer}",
            source="--folds",
        )


def _run_hold_out(config: RunConfig) -> HoldOut:
    """The hold-out every simulated bank of a run without folds applies (its split)."""
    return HoldOut.for_simulation(fraction=config.test_fraction, seed=config.seed)


def _check_fold_classes(data: PartitionedData, seed: int, fold: Fold | None) -> None:
    """Every fold must leave every bank both classes in its training and held-out rows.

    The partition itself only asks for both classes somewhere in each bank, so that
    every fold of a cross-validation splits the data into the same banks.
    """
    if fold is None:
        return
    schema = load_schema(data.schema_path)
    rules = [
        HoldOut.for_simulation(
            fraction=fold.fraction, seed=seed, fold=Fold(index=index, count=fold.count)
        )
        for index in range(fold.count)
    ]
    requirement = BankRequirement(
        labels=data.frame[schema.target].to_numpy(),
        target=schema.target,
        min_rows=schema.min_rows,
        held_out=[held_out_rows(data.frame, schema, rule) for rule in rules],
    )
    problem = requirement.class_problem(data.partitions)
    if problem is not None:
        raise ConfigError(
            f"{problem} in one of the {fold.count} folds; use fewer --folds", source="--folds"
        )


def _with_coordinator_key(config: RunConfig) -> RunConfig:
    """The config with the simulated coordinator's own audit key (unless one is given).

    A simulation is a new consortium each time: its coordinator gets a fresh key,
    kept outside the output folder (beside the per-user key, one per output folder),
    and starts a fresh log; a resumed simulation keeps both.
    """
    from coordinator.app.audit_trail import coordinator_log_path, default_key_path
    from credit.audit import history_path, public_key_path

    if config.audit_key:
        return config
    out = Path(config.out_dir).absolute()
    digest = hashlib.sha256(str(out).encode()).hexdigest()[:16]
    key = default_key_path().parent / "simulations" / f"{digest}.key"
    if not config.resume:
        for stale in (key, public_key_path(key), history_path(key), coordinator_log_path(out)):
            stale.unlink(missing_ok=True)
    return config.model_copy(update={"audit_key": str(key)})


def _fitted_to(config: RunConfig, n_banks: int) -> RunConfig:
    """The run config for a consortium of ``n_banks`` (refused if it cannot work)."""
    if config.secure_aggregation and n_banks < MIN_ROSTER:
        raise ConfigError(
            f"secure aggregation needs at least {MIN_ROSTER} banks (a bank refuses a "
            f"smaller roster); got {n_banks}: use --banks {MIN_ROSTER} or more, or "
            "--no-secure-aggregation",
            source="--banks",
        )
    # A consortium smaller than the default minimum (e.g. --banks 1, centralised
    # training) must not wait for banks that will never connect.
    return config.model_copy(update={"min_banks": min(config.min_banks, n_banks)})


def pinned_banks(banks: tuple[GuardSettings, ...], config: RunConfig) -> tuple[GuardSettings, ...]:
    """The banks with the simulation's member list pinned (under secure aggregation).

    Call it again for banks whose audit keys moved after planning.

    The list (consortium ``simulation``, ``OUT/members.json``) names every simulated
    bank with the public half of its audit key (created here if new), as a deployed
    consortium's list names its banks: every simulated secure round signs and checks
    keys and survivor sets as a deployed one does.

    Raises
    ------
    credit.errors.ConfigError
        A bank's name cannot be a member name (lowercase letters, digits and '-').
    """
    if not config.secure_aggregation:
        return banks
    from credit.audit import load_or_create_signing_key

    entries = []
    for bank in banks:
        audit = bank.audit_settings()
        if audit is None:  # every simulated bank keeps an audit log (see _guard_settings)
            raise ConfigError(f"bank '{bank.bank_name}' has no audit key", source="--banks")
        public = load_or_create_signing_key(audit.key_path).public_key().public_bytes_raw()
        try:
            entries.append(Member(name=member_name(bank.bank_name), signing_key=public))
        except ValueError as exc:
            raise ConfigError(
                f"bank '{bank.bank_name}' cannot sit in a secure-aggregation member list "
                f"({exc}): rename its file, or use --no-secure-aggregation",
                source="--bank-data",
            ) from exc
    try:
        members = MemberList(consortium=SIMULATION_CONSORTIUM, members=tuple(entries))
    except ValueError as exc:  # two banks whose names map to one member name
        raise ConfigError(
            f"{exc}: rename the banks' files, or use --no-secure-aggregation",
            source="--bank-data",
        ) from exc
    path = Path(config.out_dir) / MEMBERS_FILE
    members.write(path)
    pin = {"members_path": path.absolute(), "members_fingerprint": members.fingerprint}
    return tuple(bank.model_copy(update=pin) for bank in banks)


def _bank_settings(
    data: PartitionedData,
    config: RunConfig,
    budgets: BudgetPolicy | None,
    fold: Fold | None,
    write_bank_files: bool,
) -> tuple[GuardSettings, ...]:
    """Each bank's guard settings: its rows of the source file, or its own CSV if asked.

    With ``write_bank_files``, one CSV per bank in ``OUT/banks/``. Every simulated bank
    holds out the run's ``test_fraction`` of its rows with a salt derived from the
    run's seed, so that simulations stay comparable with each other and with a
    centralised run on the same customers (with ``fold``: that fold).
    """
    out_dir = Path(config.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ledgers_dir = _fresh_ledgers_dir(out_dir)
    banks_dir = out_dir / BANKS_DIR
    if write_bank_files:
        banks_dir.mkdir(parents=True, exist_ok=True)
    banks = []
    for part in data.partitions:
        if write_bank_files:
            path = banks_dir / f"{_file_name(part.name)}.csv"
            data.frame.iloc[part.rows].to_csv(path, index=False)
            rows = None
        else:
            path, rows = data.data_path.absolute(), tuple(int(row) for row in part.rows)
        settings = _guard_settings(
            part.name, path, data.schema_path, config, budgets, ledgers_dir, fold
        )
        banks.append(settings.model_copy(update={"data_rows": rows}))
    return tuple(banks)


def _fresh_ledgers_dir(out_dir: Path) -> Path:
    """``OUT/ledgers/``, emptied of ledgers: the simulated banks are new, so are their ledgers.

    The banks' audit logs and keys in ``OUT/audit/`` go with them (a key with a
    history would refuse to start a new log); the coordinator's files stay. Guards
    this process keeps for an earlier simulation (:func:`guard_for`) are dropped:
    they hold the removed logs open.
    """
    ledgers_dir = out_dir / LEDGERS_DIR
    if ledgers_dir.exists():
        for stale in ledgers_dir.glob("*.jsonl"):
            stale.unlink()
    audit_dir = out_dir / AUDIT_DIR
    if audit_dir.exists():
        coordinator = Path(COORDINATOR_LOG).stem
        for stale in audit_dir.iterdir():
            if stale.suffix in _BANK_AUDIT_SUFFIXES and stale.stem != coordinator:
                stale.unlink()
    guard_for.cache_clear()
    return ledgers_dir


def _guard_settings(
    name: str,
    data_path: Path,
    schema_path: Path | None,
    config: RunConfig,
    budgets: BudgetPolicy | None,
    ledgers_dir: Path,
    fold: Fold | None = None,
) -> GuardSettings:
    """A simulated bank's guard settings: its file, budget, ledger, audit log and hold-out.

    Every simulated bank gets the same hold-out salt, derived from the simulation's
    seed (:meth:`HoldOut.for_simulation`): with the same seed, every split and the
    centralised run hold out the same customers (with ``fold``, a cross-validation's:
    the same fold of them). Each simulated bank keeps a signed
    audit log and its key in ``OUT/audit/<bank>.jsonl`` and ``.key`` (public key
    ``.pub``), as a real bank does: it signs its ledger summaries with that key, which
    ``fedcredit privacy verify OUT`` checks against ``OUT/audit/<bank>.pub``. Its
    secure-aggregation threshold policy is the run's (the researcher sets both sides),
    and so is its bound on FedProx's mu: the bank's default, or the run's mu if larger.
    """
    budget = budgets.for_bank(name) if budgets is not None else None
    ledger = ledgers_dir / f"{_file_name(name)}.jsonl" if budget is not None else None
    audit_dir = ledgers_dir.parent / AUDIT_DIR
    if _file_name(name) == Path(COORDINATOR_LOG).stem:
        raise ConfigError(
            f"a bank cannot be named '{name}': its audit files would be the coordinator's; "
            "rename the bank",
            source=str(data_path),
        )
    return GuardSettings(
        bank_name=name,
        data_path=data_path,
        schema_path=schema_path,
        budget=budget,
        ledger_path=ledger,
        audit_log=audit_dir / f"{_file_name(name)}.jsonl",
        audit_key=audit_dir / f"{_file_name(name)}.key",
        audit_durable=False,  # same signed entries, no fsyncs: see credit.audit.AuditLog
        holdout=HoldOut.for_simulation(
            fraction=config.test_fraction,
            seed=config.seed,
            fold=fold,
            validation_fraction=config.validation_fraction,
        ),
        secure_aggregation=SecAggPolicy(
            threshold_fraction=config.secagg_threshold_fraction,
            graph=GraphChoice(config.secagg_graph),
            dropout_rate=config.secagg_dropout_rate,
            corruption_rate=config.secagg_corruption_rate,
        ),
        training=_training_policy(config),
    )


def _training_policy(config: RunConfig) -> TrainingPolicy:
    """A simulated bank's training bounds: the default, raised to the run's FedProx mu."""
    default = TrainingPolicy()
    if config.round_proximal_mu <= default.max_proximal_mu:
        return default
    return TrainingPolicy(max_proximal_mu=config.round_proximal_mu)


def run_simulated_consortium(
    plan: SimulationPlan,
    *,
    on_round: RoundCallback | None = None,
    on_event: EventCallback | None = None,
    cpus: int | None = None,
    ray_address: RayAddress | None = None,
) -> RunFiles:
    """Run the plan's banks through Flower's Simulation Engine; return the output paths.

    Parameters
    ----------
    plan : SimulationPlan
        From :func:`plan_simulation`.
    on_round, on_event : callable, optional
        Progress callbacks (see :class:`coordinator.app.run_driver.RunDriver`).
    cpus : int, optional
        CPUs given to Ray (one ClientApp per CPU at a time); all cores by default.
        Not with ``ray_address`` (the cluster's nodes have their own).
    ray_address : RayAddress, optional
        An existing Ray cluster to run the virtual banks on
        (:mod:`simulations.ray_cluster`); default: a private Ray on this machine.
    """

    set_offline_defaults(simulation=True)
    server_app = make_server_app(
        plan.config,
        on_round=on_round or (lambda result, total: None),
        on_event=on_event or (lambda text: None),
    )
    client_app = simulation_client_app(plan)
    # indexed_link_state: Flower's own scans every message per node, O(N²) a sweep
    with connected_to(ray_address), indexed_link_state():
        run_on_simulation_engine(server_app, client_app, supernodes=len(plan.banks), cpus=cpus)
    files = run_files(Path(plan.config.out_dir))
    record_secagg_costs(Path(plan.config.out_dir))
    _record_exact_metrics(plan, files)
    if plan.reproducible_noise:
        record_noise(files.metrics, files.model, files.report)
    return files


def _record_exact_metrics(plan: SimulationPlan, files: RunFiles) -> None:
    """Add the final model's exact pooled metrics to ``OUT/simulation.json`` (if it has one).

    What the harness alone can compute (:mod:`simulations.exact`), beside what the
    coordinator computed from the banks' releases (``metrics.json``).
    """
    from simulations.exact import exact_final_metrics

    record = Path(plan.config.out_dir) / SIMULATION_FILE
    if not (files.model / "model.pt").exists() or not record.exists():
        return
    document = json.loads(record.read_text(encoding="utf-8"))
    document["exact_final"] = exact_final_metrics(files.model, plan.banks).as_dict()
    record.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def simulation_client_app(plan: SimulationPlan) -> ClientApp:
    """The ClientApp every simulated bank runs: the bank's relay and its guard, in-process.

    The relay is the deployed bank's; instead of a socket it reaches the bank's guard
    (the same :class:`~participant.guard.bank_guard.BankGuard` a guard service runs)
    in the worker process. The banks' settings reach the workers through one file
    (:class:`~simulations.shared_plan.SharedPartitionPlan`), not inside every message.
    With a dropout rate, the simulation's dropout mod wraps it, and with reproducible
    noise each guard's noise is keyed from the seed (research only: a deployed bank's
    app has no such mod, its guard no such keys).
    """
    out_dir = Path(plan.config.out_dir)
    banks = SharedPartitionPlan.write(plan.banks, out_dir)
    shutil.rmtree(out_dir / COSTS_DIR, ignore_errors=True)  # an earlier run's counts
    return relay_app(
        banks,
        seed=plan.config.seed,
        dropout_rate=plan.dropout_rate,
        reproducible_noise=plan.reproducible_noise,
        costs_dir=out_dir / COSTS_DIR,
    )


def relay_app(
    banks: Callable[[Context], GuardSettings],
    *,
    seed: int = 0,
    dropout_rate: float = 0.0,
    mods: Sequence[Mod] = (),
    reproducible_noise: bool = False,
    costs_dir: Path | None = None,
) -> ClientApp:
    """The relay ClientApp with an in-process guard for the bank ``banks`` names per node.

    ``mods`` come first (outermost); with a dropout rate the dropout mod follows. With
    ``reproducible_noise`` each guard's DP noise is keyed from ``seed``
    (:func:`simulations.noise.noise_keys_for`; research only). With ``costs_dir`` each
    bank's secure-aggregation counters are written there
    (:class:`~simulations.secagg_costs.CostRecordingSessions`; research only).
    """
    chain = list(mods)
    if dropout_rate > 0:
        bank_of = lambda context: banks(context).bank_name  # noqa: E731
        chain.append(dropout_mod(seed=seed, rate=dropout_rate, bank_of=bank_of))

    def link(context: Context) -> InProcessLink:
        settings = banks(context)
        keys = noise_keys_for(settings.bank_name, seed=seed, reproducible=reproducible_noise)
        sessions: SessionStore = ContextSessions(context)
        if costs_dir is not None:
            sessions = CostRecordingSessions(sessions, costs_dir)
        return InProcessLink(guard_for(settings, keys), sessions)

    return make_relay_app(link, mods=chain)


def _file_name(bank: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in bank)


def run_on_simulation_engine(
    server_app: ServerApp, client_app: ClientApp, *, supernodes: int, cpus: int | None
) -> None:
    """Run ``server_app`` against ``supernodes`` virtual SuperNodes of ``client_app`` on Ray.

    One CPU per ClientApp at a time, ``cpus`` in all (every core by default); Ray's
    processes talk over loopback only, and Flower's own log is kept to errors (the
    callbacks print the progress). Flower starts Ray only if this process has not
    joined one already: on a cluster (:func:`simulations.ray_cluster.connected_to`)
    the ``init_args`` go unused.
    """
    from flwr.simulation import run_simulation

    flwr_logger = logging.getLogger("flwr")
    previous_level = flwr_logger.level
    flwr_logger.setLevel(logging.ERROR)
    try:
        run_simulation(
            server_app=server_app,
            client_app=client_app,
            num_supernodes=supernodes,
            backend_config={
                "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
                "init_args": {
                    "num_cpus": cpus or os.cpu_count() or 1,
                    "num_gpus": 0,
                    "include_dashboard": False,
                    "log_to_driver": False,
                    # Ray's processes talk over loopback only, not the machine's interfaces.
                    "_node_ip_address": "127.0.0.1",
                },
            },
        )
    finally:
        flwr_logger.setLevel(previous_level)
