"""The bank's node: its guard service and its SuperNode, started, stopped and followed.

``fedcredit participant start`` checks, locally and before anything connects:

* the bundle is whole and its schema is the consortium's (hash in the bundle);
* the data file passes the schema (the first problem is named, nothing starts);
* the node key is an ECDSA private key, readable only by its owner;
* TLS is on: the SuperNode always gets ``--root-certificates`` and never
  ``--insecure``; a bundle without a CA certificate is refused;
* the ledger keeps the bank's hold-out split: the plan (:class:`NodePlan`,
  ``HOME/node.json``, 0600) keeps the hold-out's secret salt from the node's first
  start (:func:`node_holdout`), and a ledger bound to another split refuses to start;
* the consortium's member list names the bank under its own audit key; the node
  keeps its copy (``HOME/members.json``) and the plan its fingerprint
  (:mod:`participant.node.members`);

then starts one background service, the bank's **guard**
(:mod:`participant.node.supervisor`), from the bank's own installed fedcredit. The
guard loads the bank's data, verifies its ledger and audit log, listens on its socket
and only then starts the SuperNode as its child: no relay without a guard, and a
guard that dies takes the SuperNode with it. The SuperNode's node config names the
guard's socket and nothing else (:class:`~participant.relay.node_config.RelayConfig`).

With ``--node-user NAME`` (as root) the SuperNode's ClientApps run as that separate,
unprivileged user: the SuperNode runs in Flower's ``process`` isolation and its
SuperExec (which starts every ClientApp) runs as the node user, in a runtime folder
of its own; the guard refuses to start while that user can read the bank's data,
ledger, audit log or keys.
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import stat
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_ssh_private_key
from cryptography.x509 import load_pem_x509_certificate
from pydantic import BaseModel, ConfigDict, Field

from credit import __version__
from credit.errors import ConfigError
from deploy.bundle import Bundle
from deploy.flower_env import venv_tool
from deploy.services import Service, ServiceError
from participant.guard.settings import (
    DEFAULT_HOLDOUT_FRACTION,
    DEFAULT_VALIDATION_FRACTION,
    REVEAL_SECRETS,
    EvaluationPolicy,
    GbdtPolicy,
    GuardSettings,
    HoldOut,
    SecAggPolicy,
    SetupReleasePolicy,
    StabilityPolicy,
    TrainingPolicy,
)
from participant.node.members import PINNED_MEMBERS_FILE, pin_member_list
from participant.relay.node_config import RelayConfig
from privacy.budget import PrivacyBudget
from privacy.secagg.members import MemberList

__all__ = [
    "NodePlan",
    "NodeSettings",
    "NodeStatus",
    "StartedNode",
    "guard_service",
    "keeps_holdout_salt",
    "node_holdout",
    "node_plan",
    "node_status",
    "prepare_node",
    "start_node",
    "stop_node",
    "superexec_command",
    "supernode_command",
]

GUARD_SERVICE = "guard"
SUPERNODE_PID = "supernode.pid"
SUPEREXEC_PID = "superexec.pid"
PLAN_FILE = "node.json"
DEFAULT_RUNTIME_PORT = 9094
STARTUP_SECONDS = 60.0
_CONNECTED = "SuperNode ID"


@dataclass(frozen=True, kw_only=True)
class NodeSettings:
    """Everything ``participant start`` needs, as the bank gave it.

    Parameters
    ----------
    bundle : Bundle
        The onboarding bundle from the operator.
    key : pathlib.Path
        The node's private key (``participant keygen``).
    data : pathlib.Path
        The bank's data file.
    home : pathlib.Path
        The node folder: service files, privacy ledger, audit log, Flower's home.
    budget : PrivacyBudget or None
        The bank's record-level budget; ``None`` trains without differential
        privacy (only when the bank passes ``--no-dp``).
    audit_key : pathlib.Path
        The bank's Ed25519 audit-signing key.
    holdout : HoldOut
        The bank's fixed hold-out split and its secret salt (:func:`node_holdout`).
    runtime_port : int
        Local port of the SuperNode's runtime API (one per node on a host).
    node_user : str, optional
        Run the SuperNode's ClientApps as this unprivileged user (root only).
    require_secure_aggregation : bool, default True
        Refuse to send a model update outside secure aggregation (``participant
        start --allow-plain-updates`` turns it off).
    members : MemberList, optional
        The member list to pin (:func:`participant.node.members.choose_member_list`);
        :func:`prepare_node` keeps a copy in the node folder. None pins nothing: the
        guard then takes part in no secure aggregation.
    secure_aggregation : SecAggPolicy
        The bank's threshold policy and smallest roster.
    evaluation : EvaluationPolicy
        What the bank releases about its held-out rows (score bins, minimum rows).
    setup : SetupReleasePolicy
        How the bank releases its set-up statistics under a budget (cells, share).
    stability : StabilityPolicy, optional
        The bank's later file and development model for stability monitoring (None:
        it answers no stability query).
    training : TrainingPolicy
        The bank's bounds on the local training a round may ask for (FedProx's mu).
    gbdt : GbdtPolicy
        What the bank answers in federated boosting (most trees and depth, fewest rows
        of a node it releases).
    """

    bundle: Bundle
    key: Path
    data: Path
    home: Path
    budget: PrivacyBudget | None
    audit_key: Path
    holdout: HoldOut
    runtime_port: int = DEFAULT_RUNTIME_PORT
    node_user: str | None = None
    require_secure_aggregation: bool = True
    members: MemberList | None = None
    secure_aggregation: SecAggPolicy = field(default_factory=SecAggPolicy)
    evaluation: EvaluationPolicy = field(default_factory=EvaluationPolicy)
    setup: SetupReleasePolicy = field(default_factory=SetupReleasePolicy)
    stability: StabilityPolicy | None = None
    training: TrainingPolicy = field(default_factory=TrainingPolicy)
    gbdt: GbdtPolicy = field(default_factory=GbdtPolicy)

    @property
    def ledger(self) -> Path:
        """The bank's privacy ledger."""
        return self.home / "privacy-ledger.jsonl"

    @property
    def audit_log(self) -> Path:
        """The bank's audit log."""
        return self.home / "audit.jsonl"

    @property
    def members_copy(self) -> Path:
        """The node's copy of the member list it pins."""
        return self.home / PINNED_MEMBERS_FILE


class NodePlan(BaseModel):
    """What the guard service reads at start (``HOME/node.json``), written by ``start``.

    Parameters
    ----------
    guard : GuardSettings
        The bank's guard settings.
    superlink, ca_cert, node_key : str, Path, Path
        Where the SuperNode connects, the consortium's root certificate, its key.
    runtime_port : int
        Local port of the SuperNode's runtime API.
    home : pathlib.Path
        The node folder (owned by the bank's user).
    runtime_dir : pathlib.Path
        The relay's side: the guard's socket and the ClientApps' Flower home. With a
        node user it stays the bank's (0711) and only the Flower home in it is the
        node user's.
    node_user : str, optional
        The user the ClientApps run as.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    guard: GuardSettings
    superlink: str = Field(min_length=1)
    ca_cert: Path
    node_key: Path
    runtime_port: int = Field(ge=1, le=65535)
    home: Path
    runtime_dir: Path
    node_user: str | None = None

    @property
    def socket(self) -> Path:
        """The guard's Unix socket."""
        return self.runtime_dir / "guard.sock"

    @property
    def services(self) -> Path:
        """Pid and log files of the guard, the SuperNode and its SuperExec."""
        return self.home / "services"

    @property
    def supernode_log(self) -> Path:
        """The SuperNode's output."""
        return self.services / "supernode.log"

    def relay_config(self) -> RelayConfig:
        """The SuperNode's node config: the guard's socket, nothing else."""
        return RelayConfig(guard_socket=self.socket)

    def save(self) -> Path:
        """Write the plan into the node folder: owner-only from its first byte, atomically.

        The plan keeps the bank's hold-out salt (the only copy): it is written to a
        0600 temporary file, synced and renamed over the old plan, so a crash never
        leaves a plan without it.
        """
        path = self.home / PLAN_FILE
        text = self.model_dump_json(indent=2, context={REVEAL_SECRETS: True}) + "\n"
        partial = path.with_name(f".{PLAN_FILE}.partial")
        partial.unlink(missing_ok=True)
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, path)
        return path

    @classmethod
    def load(cls, home: Path) -> NodePlan:
        """The plan ``participant start`` wrote into ``home``.

        Raises
        ------
        ConfigError
            No plan, or one that does not parse (names the file).
        """
        from pydantic import ValidationError

        from credit.config_files import first_problem

        path = home.expanduser().resolve() / PLAN_FILE
        try:
            return cls.model_validate_json(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(
                f"cannot read the node plan: {exc.strerror}; run `fedcredit participant start`",
                source=str(path),
            ) from exc
        except ValidationError as exc:
            raise ConfigError(first_problem(exc), source=str(path)) from exc


@dataclass(frozen=True)
class NodeStatus:
    """Whether the bank's guard and SuperNode run, the guard's budget left, the pinned
    member list, the logs."""

    guard_pid: int | None
    supernode_pid: int | None
    guard_log: Path
    supernode_log: Path
    budget_left: str
    member_list: str = "unknown (no node plan)"

    @property
    def running(self) -> bool:
        """Both the guard and the SuperNode run."""
        return self.guard_pid is not None and self.supernode_pid is not None


def guard_service(home: Path) -> Service:
    """The background service of the guard kept in ``home``."""
    return Service(GUARD_SERVICE, home.expanduser().resolve() / "services")


def check_node_key(path: Path) -> None:
    """Refuse a missing, unreadable, wrong-type or world-readable node key."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"cannot read the node key: {exc.strerror}; make one with "
            "`fedcredit participant keygen DIR`",
            source=str(path),
        ) from exc
    try:
        key = load_ssh_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            "not an unencrypted OpenSSH private key; use the node.key that "
            "`fedcredit participant keygen` wrote",
            source=str(path),
        ) from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ConfigError(
            "the node key must be an ECDSA key (Flower's SuperNode authentication); "
            "use the node.key that `fedcredit participant keygen` wrote",
            source=str(path),
        )
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"the node key is readable by others; run `chmod 600 {path}`", source=str(path)
        )


def check_tls(bundle: Bundle) -> None:
    """Refuse to connect without the consortium's root certificate (TLS is mandatory)."""
    try:
        load_pem_x509_certificate(bundle.ca_cert.read_bytes())
    except OSError as exc:
        raise ConfigError(
            "the bundle has no readable ca.crt: fedcredit never connects without TLS; "
            "ask the operator for the bundle again",
            source=str(bundle.ca_cert),
        ) from exc
    except ValueError as exc:
        raise ConfigError(
            "ca.crt is not a PEM certificate: fedcredit never connects without TLS; "
            "ask the operator for the bundle again",
            source=str(bundle.ca_cert),
        ) from exc


def check_node_user(name: str | None) -> None:
    """Refuse ``--node-user`` unless this process can switch users (root)."""
    if name is not None and os.geteuid() != 0:
        raise ConfigError(
            "running the SuperNode as another user needs root: run `participant start` "
            "as root, or leave out --node-user",
            source="--node-user",
        )


def node_holdout(
    home: Path,
    *,
    fraction: float | None,
    salt: str | None,
    validation_fraction: float | None = None,
) -> HoldOut:
    """The bank's hold-out: what it passes, else what its node plan keeps, else a new one.

    The salt is generated (``os.urandom``) at the node's first start and kept in its
    plan (``HOME/node.json``, 0600), so a restart keeps the split; a salt the bank
    passes replaces it (its ledger then refuses to start if the split changes). The
    fraction likewise defaults to the kept one, then to 0.2. The validation fraction
    defaults to the kept one; a node's first start keeps 0.2 of its training rows as
    its validation part, and a node whose plan predates validation parts keeps none
    (0: so that its ledger's split stays the same) until it passes one.

    Raises
    ------
    ConfigError
        A salt or fraction that is not valid (the salt itself is never shown), or a
        plan that exists but cannot be read.
    """
    from credit.config_files import validate_fields

    asked_all = None not in (fraction, salt, validation_fraction)
    kept = {} if asked_all else _kept_holdout(home)
    spelled = {
        "fraction": "--holdout-fraction",
        "salt": "--holdout-salt",
        "validation_fraction": "--validation-fraction",
    }
    if salt is None and "salt" in kept:
        spelled["salt"] = f"guard.holdout.salt of {home / PLAN_FILE}"
    fields = {
        "fraction": fraction if fraction is not None else kept.get("fraction"),
        "salt": salt if salt is not None else kept.get("salt"),
    }
    if validation_fraction is not None:
        fields["validation_fraction"] = validation_fraction
    elif "salt" in kept:  # a node started before: its own (none before validation parts)
        fields["validation_fraction"] = kept.get("validation_fraction", 0.0)
    else:
        fields["validation_fraction"] = DEFAULT_VALIDATION_FRACTION
    if fields["fraction"] is None:
        fields["fraction"] = DEFAULT_HOLDOUT_FRACTION
    if fields["salt"] is None:  # the node's first start
        fields["salt"] = HoldOut.fresh().salt
    return validate_fields(HoldOut, fields, source="fedcredit participant start", spelled=spelled)


def _kept_holdout(home: Path) -> dict[str, object]:
    """``guard.holdout`` of the node's plan, read leniently ({} without a plan).

    A plan from a release before the salt keeps no salt: the node gets a new one.
    """
    path = home / PLAN_FILE
    try:
        plan = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"cannot read the hold-out this node keeps ({exc}); restore the file, or pass "
            "--holdout-salt and --holdout-fraction to set the bank's hold-out again",
            source=str(path),
        ) from exc
    guard = plan.get("guard") if isinstance(plan, dict) else None
    holdout = guard.get("holdout") if isinstance(guard, dict) else None
    if not isinstance(holdout, dict):
        return {}
    kept = ("fraction", "salt", "validation_fraction")
    return {key: holdout[key] for key in kept if key in holdout}


def node_plan(settings: NodeSettings) -> NodePlan:
    """The plan the guard service starts from."""
    budget = settings.budget
    home = settings.home
    guard = GuardSettings(
        bank_name=settings.bundle.bank,
        data_path=settings.data,
        schema_path=settings.bundle.schema_path,
        budget=budget,
        ledger_path=None if budget is None else settings.ledger,
        audit_log=settings.audit_log,
        audit_key=settings.audit_key,
        holdout=settings.holdout,
        approved_version=__version__,
        require_secure_aggregation=settings.require_secure_aggregation,
        members_path=None if settings.members is None else settings.members_copy,
        members_fingerprint=None if settings.members is None else settings.members.fingerprint,
        secure_aggregation=settings.secure_aggregation,
        evaluation=settings.evaluation,
        setup=settings.setup,
        stability=settings.stability,
        training=settings.training,
        gbdt=settings.gbdt,
    )
    return NodePlan(
        guard=guard,
        superlink=settings.bundle.superlink,
        ca_cert=settings.bundle.ca_cert,
        node_key=settings.key,
        runtime_port=settings.runtime_port,
        home=home,
        runtime_dir=_runtime_dir(home, settings.node_user),
        node_user=settings.node_user,
    )


def _runtime_dir(home: Path, node_user: str | None) -> Path:
    """The relay's folder: in the node folder, or a node user's own folder under /tmp.

    A node user must reach its folder, and the node folder stays closed to it, so
    the node user's folder is outside it.
    """
    if node_user is None:
        return home / "relay"
    digest = hashlib.sha256(str(home).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"fedcredit-{node_user}-{digest}"


def supernode_command(plan: NodePlan) -> list[str]:
    """The ``flower-supernode`` command: TLS, node authentication, the guard's socket."""
    command = [
        venv_tool("flower-supernode"),
        "--superlink",
        plan.superlink,
        "--root-certificates",
        str(plan.ca_cert),
        "--auth-supernode-private-key",
        str(plan.node_key),
        "--host",
        "127.0.0.1",
        "--port",
        str(plan.runtime_port),
        "--node-config",
        plan.relay_config().to_flower(),
    ]
    if plan.node_user is not None:
        command += ["--isolation", "process"]
    return command


def superexec_command(plan: NodePlan) -> list[str]:
    """The ``flower-superexec`` that starts ClientApps as the node user (process isolation).

    It gets no ``--parent-pid``: Flower checks that pid with ``kill(pid, 0)``, which a
    node user may not send to the bank's processes, so the SuperExec would take its
    parent for dead and stop at once. The guard starts it with ``PR_SET_PDEATHSIG``
    instead, and stops it when the SuperNode exits.
    """
    return [
        venv_tool("flower-superexec"),
        "--runtime-api-address",
        f"127.0.0.1:{plan.runtime_port}",
        "--insecure",
    ]


@dataclass(frozen=True)
class StartedNode:
    """A node just started: the guard's pid, and whether the SuperNode connected yet."""

    pid: int
    connected: bool


def prepare_node(settings: NodeSettings) -> NodePlan:
    """Check the bundle, the node key and ``--node-user``, keep the node's copy of the
    member list; the node's plan (not yet saved).

    The plan keeps the bank's hold-out salt, so the caller saves it around the guard's
    first check (:meth:`NodePlan.save`): before it when the node keeps no salt yet
    (:func:`keeps_holdout_salt`; a start that fails later still keeps the salt the
    ledger was bound to), and after it otherwise (a salt the ledger refuses never
    replaces the kept one).

    Raises
    ------
    ConfigError
        A bad bundle, node key or ``--node-user``.
    """
    check_tls(settings.bundle)
    check_node_key(settings.key)
    check_node_user(settings.node_user)
    settings.home.mkdir(parents=True, exist_ok=True)
    os.chmod(settings.home, 0o700)
    if settings.members is not None:
        pin_member_list(settings.home, settings.members)
    return node_plan(settings)


def keeps_holdout_salt(home: Path) -> bool:
    """Whether the node's plan already keeps a hold-out salt (False if it cannot be read)."""
    try:
        return "salt" in _kept_holdout(home)
    except ConfigError:
        return False


def start_node(plan: NodePlan) -> StartedNode:
    """Start the guard of a written plan (:func:`prepare_node`), which starts the SuperNode.

    Raises
    ------
    ServiceError
        The guard or the SuperNode stopped during start-up (for example, a ledger
        that fails verification, or a node key the consortium refused); the message
        carries the end of the log that says why.
    """
    service = guard_service(plan.home)
    _forget_stopped_children(service, plan.services)
    command = [venv_tool("fedcredit"), "participant", "run-guard", "--home", str(plan.home)]
    pid = service.start(command, cwd=plan.home)
    return StartedNode(pid=pid, connected=_wait_connected(service, plan))


def _forget_stopped_children(guard: Service, services: Path) -> None:
    """Remove the pid files of the SuperNode and SuperExec a stopped node left behind.

    The guard does not remove them when it stops (nor can it when it is killed), and a
    SuperNode pid file of a dead process would read, at the next start, as the new
    SuperNode stopping during start-up. A running guard's files stay (its start is
    refused anyway).
    """
    if guard.pid() is not None:
        return
    for name in (SUPERNODE_PID, SUPEREXEC_PID):
        (services / name).unlink(missing_ok=True)


def _wait_connected(service: Service, plan: NodePlan) -> bool:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if service.pid() is None:
            raise ServiceError(
                f"the bank's guard stopped during start-up; see {service.log_file}:\n"
                f"{service.log_tail(6)}"
            )
        supernode = Service("supernode", plan.services)
        if supernode.pid_file.exists() and supernode.pid() is None:
            raise ServiceError(
                f"the SuperNode stopped during start-up; see {plan.supernode_log}:\n"
                f"{supernode.log_tail(6)}"
            )
        if _CONNECTED in supernode.log_tail(40):
            return True
        time.sleep(0.3)
    return False


def stop_node(home: Path) -> bool:
    """Stop the guard kept in ``home`` and, with it, the SuperNode; False if not running."""
    return guard_service(home).stop()


def node_status(home: Path) -> NodeStatus:
    """Whether the guard and the SuperNode of ``home`` run."""
    folder = home.expanduser().resolve() / "services"
    guard = guard_service(home)
    supernode = Service("supernode", folder)
    guard_pid = guard.pid()
    return NodeStatus(
        guard_pid=guard_pid,
        supernode_pid=supernode.pid() if guard_pid is not None else None,
        guard_log=guard.log_file,
        supernode_log=supernode.log_file,
        budget_left=_budget_left(home),
        member_list=_member_list(home),
    )


def _member_list(home: Path) -> str:
    """The pinned member list as the guard re-reads it, or why it cannot be used."""
    try:
        plan = NodePlan.load(home)
    except ConfigError:
        return "unknown (no node plan)"
    try:
        members = plan.guard.pinned_members()
    except ConfigError as exc:
        return f"unusable: {exc}"
    if members is None:
        return "none pinned (the bank takes part in no secure aggregation)"
    return (
        f"{members.consortium}: {_banks(len(members.members))}, fingerprint {members.fingerprint}"
    )


def _budget_left(home: Path) -> str:
    """The guard's budget left, as its ledger records it ('no differential privacy')."""
    try:
        plan = NodePlan.load(home)
    except ConfigError:
        return "unknown (no node plan)"
    budget, ledger = plan.guard.budget, plan.guard.ledger_path
    if budget is None or ledger is None:
        return "no differential privacy"
    if not ledger.exists():
        return f"ε {budget.max_epsilon:g} of {budget.max_epsilon:g} (nothing spent)"
    from privacy.ledger import read_spent

    spent = read_spent(ledger)
    return f"ε {max(budget.max_epsilon - spent, 0.0):.4g} of {budget.max_epsilon:g}"


def node_user_ids(name: str) -> tuple[int, int]:
    """The uid and gid of ``name`` (ConfigError if there is no such user)."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError as exc:
        raise ConfigError(f"no user '{name}'", source="--node-user") from exc
    return entry.pw_uid, entry.pw_gid


def _banks(count: int) -> str:
    """``1 bank``, ``3 banks``."""
    return f"{count} bank{'' if count == 1 else 's'}"
