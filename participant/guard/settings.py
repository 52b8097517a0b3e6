"""What a bank's guard is configured with: the bank's own settings, never the coordinator's.

``fedcredit participant start`` writes them (into the node folder) from the bank's
command line; a simulation builds them for each simulated bank. Nothing here comes
from a message: the data file, the schema, the privacy budget and ledger, the audit
log and key, the hold-out split and the approved release are the bank's decisions.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    SerializationInfo,
    field_serializer,
    field_validator,
    model_validator,
)

from credit.errors import ConfigError
from participant.guard.bank import BankSource
from participant.guard.gbdt_bank import GbdtPolicy
from privacy.budget import PrivacyBudget
from privacy.secagg.graph import (
    DEFAULT_CORRECTNESS_BITS,
    DEFAULT_CORRUPTION_RATE,
    DEFAULT_DROPOUT_RATE,
    DEFAULT_GRINDING_BITS,
    DEFAULT_SECURITY_BITS,
    GraphChoice,
    GraphPlan,
    plan_graph,
)
from privacy.secagg.members import MemberList
from privacy.secagg.protocol import DEFAULT_THRESHOLD_FRACTION, MIN_ROSTER, default_threshold

__all__ = [
    "DEFAULT_HOLDOUT_FRACTION",
    "DEFAULT_VALIDATION_FRACTION",
    "REVEAL_SECRETS",
    "AuditSettings",
    "EvaluationPolicy",
    "Fold",
    "GbdtPolicy",
    "GuardSettings",
    "HoldOut",
    "SecAggPolicy",
    "SetupReleasePolicy",
    "StabilityPolicy",
    "TrainingPolicy",
]

DEFAULT_HOLDOUT_FRACTION = 0.2
"""Share of a bank's rows held out when the bank does not choose one."""
DEFAULT_VALIDATION_FRACTION = 0.2
"""Share of a new bank's training rows kept apart for validation when it does not choose one.

At 0.2 a bank of 333 rows validates on about 53 (the policy's minimum is 50 rows)."""
REVEAL_SECRETS = "reveal-secrets"
"""Serialization context key that writes the hold-out salt itself (the guard's settings file
only); without it a JSON dump of the settings masks the salt."""
SALT_BYTES = 32
"""Length of a generated salt (256 bits), also the shortest salt accepted."""
_HEX = re.compile(r"[0-9a-f]*")


@dataclass(frozen=True)
class AuditSettings:
    """Where a bank keeps its audit log and signing key, and the name it signs as."""

    log_path: Path
    key_path: Path
    writer: str
    durable: bool = True


class Fold(BaseModel):
    """One fold of a K-fold split of the customers (simulations only).

    Fold ``index`` of ``count`` holds out the records whose HMAC value ``u`` in [0, 1)
    (:func:`~participant.guard.bank.held_out_rows`) falls in
    ``[index / count, (index + 1) / count)``: the folds of one salt partition every
    bank's records, each record's fold depends on that record alone, and a customer is
    in the same fold at every bank with the same salt.

    Parameters
    ----------
    index : int
        The fold, in [0, count).
    count : int
        The number of folds K, >= 2.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    index: int = Field(ge=0)
    count: int = Field(ge=2)

    @model_validator(mode="after")
    def _index_below_count(self) -> Fold:
        if self.index >= self.count:
            raise ValueError(f"index must be below count {self.count}; got {self.index}")
        return self

    @property
    def fraction(self) -> float:
        """The share of the records the fold holds out: ``1 / count``."""
        return 1 / self.count

    @property
    def bounds(self) -> tuple[float, float]:
        """The fold's interval ``[lower, upper)`` of the records' HMAC values.

        Fold k's upper bound is the very float fold k + 1's lower bound is, and the
        last fold's is 1.0, so the folds cover [0, 1) without gap or overlap.
        """
        return self.index / self.count, (self.index + 1) / self.count


class HoldOut(BaseModel):
    """The bank's hold-out split, fixed by the bank for every run.

    A record is held out when HMAC-SHA256 of its id (or, without an id column, of its
    content) under ``salt``, read as a number in [0, 1), falls below ``fraction``
    (:func:`~participant.guard.bank.held_out_rows`). Each record's side depends on
    that record alone, and without the salt nobody can tell which records are held out.

    In a K-fold cross-validation (``fedcredit simulate --folds K``) each simulated bank
    holds out one :class:`Fold` instead: the records whose value falls in
    ``[k/K, (k+1)/K)``, ``1/K`` of them. The fold is the bank's setting like the rest:
    the coordinator's run asks for test-fraction ``1/K`` and cannot choose the fold. A
    deployed bank never has one (``participant start`` keeps fraction and salt only).

    Parameters
    ----------
    fraction : float
        Share of the bank's rows held out for evaluation, in (0, 1). A request
        whose ``test-fraction`` differs is refused. With ``fold``: ``1 / fold.count``.
    salt : pydantic.SecretStr
        The bank's secret key of the split: hex, at least 256 bits. Kept in the
        guard's settings file (owner-only) and nowhere else: never logged, never sent.
        Its ``repr`` and a JSON dump mask it, except a dump with the
        :data:`REVEAL_SECRETS` context (the settings file).
    fold : Fold, optional
        The fold held out instead of the records below ``fraction`` (simulations only).
    validation_fraction : float, default 0
        Share of the training rows (those not held out) kept apart as the bank's
        validation part, in [0, 1): never trained on, scored for the run's per-round
        evaluations (model selection) so that only the selected model is scored on the
        held-out rows. Fixed like the hold-out, by the same salt under another HMAC
        domain (:func:`~participant.guard.bank.prepare_bank`); a request whose
        ``validation-fraction`` differs is refused. 0 (a settings file from before
        validation parts): none, and the run's evaluations score the held-out rows.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    fraction: float = Field(default=DEFAULT_HOLDOUT_FRACTION, gt=0, lt=1)
    salt: SecretStr
    fold: Fold | None = None
    validation_fraction: float = Field(default=0.0, ge=0, lt=1)

    @field_validator("salt")
    @classmethod
    def _long_hex(cls, salt: SecretStr) -> SecretStr:
        text = salt.get_secret_value().strip().lower()
        if len(text) % 2 or not _HEX.fullmatch(text):
            raise ValueError(
                f"must be an even number of hexadecimal digits; got {len(text)} characters "
                "(not shown: the salt is a secret)"
            )
        if len(text) < 2 * SALT_BYTES:
            raise ValueError(
                f"must have at least {2 * SALT_BYTES} hex digits ({8 * SALT_BYTES} bits); "
                f"got {len(text)}"
            )
        return SecretStr(text)

    @model_validator(mode="after")
    def _fold_fraction(self) -> HoldOut:
        if self.fold is not None and self.fraction != self.fold.fraction:
            raise ValueError(
                f"fold {self.fold.index} of {self.fold.count} holds out 1/{self.fold.count} "
                f"of the rows; got fraction {self.fraction}"
            )
        return self

    @field_serializer("salt", when_used="json")
    def _masked(self, salt: SecretStr, info: SerializationInfo) -> str:
        reveal = isinstance(info.context, dict) and info.context.get(REVEAL_SECRETS) is True
        return salt.get_secret_value() if reveal else str(salt)

    @property
    def key(self) -> bytes:
        """The salt as the HMAC key."""
        return bytes.fromhex(self.salt.get_secret_value())

    @property
    def bounds(self) -> tuple[float, float]:
        """The held-out interval ``[lower, upper)`` of the records' HMAC values.

        ``[0, fraction)``, or the fold's interval (:attr:`Fold.bounds`).
        """
        return self.fold.bounds if self.fold is not None else (0.0, self.fraction)

    @classmethod
    def fresh(
        cls,
        fraction: float = DEFAULT_HOLDOUT_FRACTION,
        validation_fraction: float = DEFAULT_VALIDATION_FRACTION,
    ) -> HoldOut:
        """A hold-out with a new random salt (``os.urandom``): a bank's first start."""
        return cls(
            fraction=fraction,
            salt=SecretStr(os.urandom(SALT_BYTES).hex()),
            validation_fraction=validation_fraction,
        )

    @classmethod
    def for_simulation(
        cls,
        *,
        fraction: float,
        seed: int,
        fold: Fold | None = None,
        validation_fraction: float = 0.0,
    ) -> HoldOut:
        """The hold-out of every simulated bank of a simulation with ``seed``.

        The salt is SHA-256 of ``fedcredit-holdout:SEED``: public, as a simulation's
        data is, and the same for every bank and the centralised run (``--banks 1``),
        so all of them hold out the same customers and runs with one seed compare.
        With ``fold`` (a cross-validation's fold; ``fraction`` must be
        ``1 / fold.count``) every bank holds out that fold of the customers.
        ``validation_fraction``: the run's, as the simulated banks' own setting.
        """
        salt = hashlib.sha256(f"fedcredit-holdout:{seed}".encode()).hexdigest()
        return cls(
            fraction=fraction,
            salt=SecretStr(salt),
            fold=fold,
            validation_fraction=validation_fraction,
        )


class EvaluationPolicy(BaseModel):
    """A bank's rules for releasing evaluations of its held-out rows.

    Parameters
    ----------
    max_score_bins : int, default 100
        Most score-histogram bins per class the bank releases; a request for more is
        refused.
    min_holdout_rows : int, default 50
        The bank releases no evaluation while it holds out fewer rows.
    max_calibration_bins : int, default 10
        Most probability bins of the calibration sums the bank releases with its
        evaluation of a run's last model (the governance release); a request for more
        is refused.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_score_bins: int = Field(default=100, ge=2, le=10_000)
    min_holdout_rows: int = Field(default=50, ge=1)
    max_calibration_bins: int = Field(default=10, ge=1, le=100)


class SetupReleasePolicy(BaseModel):
    """A bank's rules for its set-up release (noisy per-class feature counts) under a budget.

    Parameters
    ----------
    max_bins : int, default 64
        Most histogram cells per numeric feature and class the bank adds noise to, in
        [32, 64]. When the coordinator's grid is finer, runs of consecutive grid cells
        are merged into this many coarse cells (sizes differing by at most one),
        noised, and each coarse count is spread evenly over its grid cells: the reply
        keeps the coordinator's grid, and the noise is that of ``max_bins`` counts per
        class, whatever grid the coordinator asks for. Special-code, missing and
        categorical level counts are noised one by one.
    budget_share : float, default 0.1
        Share of ``max_epsilon`` the set-up release alone costs, in (0, 0.5]: its
        noise multiplier is calibrated to epsilon ``budget_share * max_epsilon`` (one
        Gaussian release, composed in RDP), and the run's DP-SGD plan is calibrated
        on what remains.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_bins: int = Field(default=64, ge=32, le=64)
    budget_share: float = Field(default=0.1, gt=0, le=0.5)


class StabilityPolicy(BaseModel):
    """A bank's later file for stability monitoring, and its rules for releasing its counts.

    Parameters
    ----------
    later_path : pathlib.Path
        The later file (CSV of the consortium's schema) whose population the bank
        compares with its development sample.
    model_dir : pathlib.Path
        The development model the bank holds (a run's ``OUT/model`` folder): its
        encoder's bins and its run's score bins are the only bins the bank counts on.
    min_rows : int, default 50
        The bank releases no counts of a later file with fewer rows.
    budget_share : float, default 0.1
        Under a privacy budget, each release's noise makes it cost this share of
        ``max_epsilon`` on the later files' records (see
        :mod:`participant.guard.stability_release`).
    signer : pathlib.Path, optional
        The coordinator's audit public key (the onboarding bundle's
        ``coordinator.pub``): the development model's signed package must be signed
        with it. None: any valid signature (a bundle from before signed packages).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    later_path: Path
    model_dir: Path
    min_rows: int = Field(default=50, ge=1)
    budget_share: float = Field(default=0.1, gt=0, le=1)
    signer: Path | None = None


class SecAggPolicy(BaseModel):
    """A bank's rules for the secure-aggregation rounds it takes part in.

    The bank computes the graph and threshold itself from the roster's size and
    refuses a message that names others; a coordinator cannot lower the threshold
    or pick the graph (:func:`~privacy.secagg.graph.plan_graph`).

    Parameters
    ----------
    threshold_fraction : float, default 2/3
        The complete graph's threshold is ``floor(threshold_fraction * N) + 1`` for a
        roster of N banks (the default: t > 2N/3), in [1/2, 1).
    min_roster : int, default 3
        The fewest banks a roster may name (at least 3); a smaller one is refused
        before any key is generated.
    graph : GraphChoice, default auto
        ``complete``, ``sparse`` (SecAgg+'s Harary graph) or ``auto`` (sparse above
        :data:`~privacy.secagg.graph.SPARSE_ABOVE` banks).
    corruption_rate, dropout_rate : float, default 0.05 and 0.1
        The sparse graph's assumed fraction of banks colluding with the coordinator,
        and of dropouts per round (a survivor set missing more is refused), in [0, 1).
    security_bits, grinding_bits, correctness_bits : float, default 40, 40 and 20
        The sparse graph's statistical security, the roster-grinding allowance added
        to it, and its correctness (see :func:`~privacy.secagg.graph.harary_parameters`).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    threshold_fraction: float = Field(default=DEFAULT_THRESHOLD_FRACTION, ge=0.5, lt=1)
    min_roster: int = Field(default=MIN_ROSTER, ge=MIN_ROSTER)
    graph: GraphChoice = GraphChoice.AUTO
    corruption_rate: float = Field(default=DEFAULT_CORRUPTION_RATE, ge=0, lt=1)
    dropout_rate: float = Field(default=DEFAULT_DROPOUT_RATE, ge=0, lt=1)
    security_bits: float = Field(default=DEFAULT_SECURITY_BITS, gt=0)
    grinding_bits: float = Field(default=DEFAULT_GRINDING_BITS, ge=0)
    correctness_bits: float = Field(default=DEFAULT_CORRECTNESS_BITS, gt=0)

    def threshold(self, roster_size: int) -> int:
        """Shares needed to open a secret of a roster of ``roster_size`` banks."""
        return self.plan(roster_size).threshold

    def plan(self, roster_size: int) -> GraphPlan:
        """The graph (kind, degree) and threshold for a roster of ``roster_size`` banks.

        Raises
        ------
        ValueError
            ``graph`` is ``sparse`` and no sparse graph of that size meets the bounds.
        """
        return plan_graph(
            roster_size,
            choice=self.graph,
            complete_threshold=default_threshold(roster_size, self.threshold_fraction),
            corruption_rate=self.corruption_rate,
            dropout_rate=self.dropout_rate,
            security_bits=self.security_bits + self.grinding_bits,
            correctness_bits=self.correctness_bits,
        )


class TrainingPolicy(BaseModel):
    """A bank's bounds on how the coordinator may shape its local training.

    Parameters
    ----------
    max_proximal_mu : float, default 1.0
        Largest FedProx mu the bank accepts, >= 0 and finite (1.0: the largest value
        studied by Li et al. 2020); a train message asking for more is refused before
        anything is charged or trained. A coordinator's huge mu would pin the bank's
        update to the global model it sent (the bank's budget spent, its data without
        effect) or make the local steps diverge (:mod:`credit.proximal`). 0: the bank
        takes part in no FedProx run.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_proximal_mu: float = Field(default=1.0, ge=0, allow_inf_nan=False)

    def problem(self, proximal_mu: float, bank: str) -> str | None:
        """Why a round asking for ``proximal_mu`` is refused (None: it is not)."""
        if proximal_mu <= self.max_proximal_mu:
            return None
        return (
            f"bank '{bank}' accepts FedProx's proximal-mu up to {self.max_proximal_mu:g}; the "
            f"round asks for {proximal_mu:g}: run with a smaller proximal-mu, or the bank "
            "raises its bound (participant start --max-proximal-mu)"
        )


class GuardSettings(BaseModel):
    """A bank's guard configuration.

    Parameters
    ----------
    bank_name : str
        The bank's name.
    data_path : pathlib.Path
        The bank's data file (CSV, plain or gzip).
    data_rows : tuple of int, optional
        The bank's rows of ``data_path`` (0-based data-row positions) when the file
        holds other banks' rows too: a simulation's banks read their rows from the
        source data set instead of a file each. None (default): the whole file.
    schema_path : pathlib.Path, optional
        The consortium's dataset schema; the embedded schema when absent.
    budget : PrivacyBudget, optional
        The bank's record-level budget; None trains without differential privacy.
    ledger_path : pathlib.Path, optional
        The bank's privacy ledger; required with ``budget``.
    audit_log, audit_key : pathlib.Path, optional
        The bank's signed audit log (none without ``audit_log``) and its Ed25519 key
        (default: the log's path with ``.key``).
    audit_durable : bool, default True
        Fsync every audit entry and key record (:class:`credit.audit.AuditLog`);
        simulated banks turn it off (same signed entries, no crash durability).
    holdout : HoldOut
        The bank's fixed hold-out split and its secret salt.
    approved_version : str, optional
        The fedcredit release the bank approved; a relay of another release is
        refused (see :mod:`participant.guard.approval`).
    require_secure_aggregation : bool, default False
        Refuse to send a model update outside secure aggregation.
    members_path : pathlib.Path, optional
        The consortium's member list (:class:`~privacy.secagg.members.MemberList`)
        the bank pinned; every secure-aggregation roster must be drawn from it.
    members_fingerprint : str, optional
        The member list's fingerprint when the bank pinned it; required with
        ``members_path``. A file whose fingerprint differs is refused
        (:meth:`pinned_members`).
    secure_aggregation : SecAggPolicy
        The bank's threshold policy and smallest roster.
    evaluation : EvaluationPolicy
        What the bank releases about its held-out rows (score bins, minimum rows).
    setup : SetupReleasePolicy
        How the bank releases its set-up feature statistics under a budget (cells per
        feature, share of the budget).
    stability : StabilityPolicy, optional
        The bank's later file and development model for stability monitoring; None:
        the bank answers no stability query.
    training : TrainingPolicy
        The bank's bounds on the local training a round may ask for (FedProx's mu).
    gbdt : GbdtPolicy
        What the bank answers in federated boosting (most trees and depth, the fewest
        rows of a node it releases).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    bank_name: str = Field(min_length=1)
    data_path: Path
    data_rows: tuple[int, ...] | None = None
    schema_path: Path | None = None
    budget: PrivacyBudget | None = None
    ledger_path: Path | None = None
    audit_log: Path | None = None
    audit_key: Path | None = None
    audit_durable: bool = True
    holdout: HoldOut
    approved_version: str | None = None
    require_secure_aggregation: bool = False
    members_path: Path | None = None
    members_fingerprint: str | None = None
    secure_aggregation: SecAggPolicy = Field(default_factory=SecAggPolicy)
    evaluation: EvaluationPolicy = Field(default_factory=EvaluationPolicy)
    setup: SetupReleasePolicy = Field(default_factory=SetupReleasePolicy)
    stability: StabilityPolicy | None = None
    training: TrainingPolicy = Field(default_factory=TrainingPolicy)
    gbdt: GbdtPolicy = Field(default_factory=GbdtPolicy)

    @model_validator(mode="after")
    def _consistent(self) -> GuardSettings:
        if self.budget is not None and self.ledger_path is None:
            raise ValueError("a privacy budget needs a ledger_path")
        if self.audit_key is not None and self.audit_key == self.audit_log:
            raise ValueError("audit_key must differ from audit_log")
        if (self.members_path is None) != (self.members_fingerprint is None):
            raise ValueError("members_path and members_fingerprint go together")
        return self

    def pinned_members(self) -> MemberList | None:
        """The pinned member list, read again and checked against its pinned fingerprint.

        Returns None when the bank pinned none.

        Raises
        ------
        ConfigError
            The file is unreadable or malformed, or its fingerprint is not the pinned
            one (the list changed since the bank pinned it).
        """
        if self.members_path is None or self.members_fingerprint is None:
            return None
        members = MemberList.load(self.members_path)
        if members.fingerprint != self.members_fingerprint:
            raise ConfigError(
                f"the member list's fingerprint is {members.fingerprint}, not the pinned "
                f"{self.members_fingerprint}: compare the new list with the other banks, "
                "then pin it again with fedcredit participant start --members FILE",
                source=str(self.members_path),
            )
        return members

    def source(self) -> BankSource:
        """Where the bank's rows, schema, budget and ledger are."""
        return BankSource(
            name=self.bank_name,
            data_path=self.data_path,
            schema_path=self.schema_path,
            budget=self.budget,
            ledger_path=self.ledger_path if self.budget is not None else None,
            rows=self.data_rows,
        )

    def audit_settings(self) -> AuditSettings | None:
        """Where the bank's audit log and key are; None without ``audit_log``."""
        if self.audit_log is None:
            return None
        key = self.audit_key or self.audit_log.with_suffix(".key")
        return AuditSettings(
            log_path=self.audit_log,
            key_path=key,
            writer=f"bank {self.bank_name}",
            durable=self.audit_durable,
        )
