"""The bank's guard: every request from the relay is answered here, or refused here.

A :class:`BankGuard` holds what the bank loaded once (its validated rows and fixed
hold-out split, its settings) and answers each relayed request with one handler per
kind (:data:`QUERY_HANDLERS`, :func:`~participant.guard.handlers.train`,
:func:`~participant.guard.handlers.evaluate`). Every decision that protects the bank
is taken below this point: the approved release, the schema and the hold-out split,
the privacy budget (charged in the bank's ledger before anything is trained or
released), secure aggregation's secrets, the signing of the bank's audit log.

A request the guard refuses (another release, another split, a message that breaks
the contract, or a failure while answering) is recorded in the bank's audit log and
answered with :attr:`~participant.contract.ReplyStatus.REFUSED` and the reason: the
relay turns that into Flower's error reply. The guard itself never stops on a bad
request.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from pathlib import Path

from flwr.app import RecordDict

from credit.errors import MalformedMessage
from credit.messages import AuditHead, QueryInstructions, RoundInstructions, Task
from participant.contract import GuardReply, GuardRequest, ReplyStatus, RequestKind
from participant.guard import gbdt_evaluation, gbdt_level, handlers, stability_release
from participant.guard.approval import UnapprovedApp, check_approved
from participant.guard.audit_trail import (
    open_audit_log,
    record_coordinator_head,
    record_refusal,
    stamp_head,
)
from participant.guard.bank import PreparedBank, prepare_bank
from participant.guard.handlers import BankRequest, GuardRefusal
from participant.guard.replay import ReplayRefused
from participant.guard.sessions import SessionStore
from participant.guard.settings import GuardSettings
from privacy.errors import LedgerError, SplitChanged
from privacy.noise_keys import FreshNoiseKeys, NoiseKeys
from privacy.secagg.primitives import ShareRejected
from privacy.secagg.protocol import UnmaskRefused
from privacy.secagg.signed import RosterRefused, SignatureRefused

__all__ = ["QUERY_HANDLERS", "BankGuard"]

QueryHandler = Callable[[BankRequest, QueryInstructions], RecordDict]

QUERY_HANDLERS: Mapping[Task, QueryHandler] = {
    Task.FEATURE_STATS: handlers.feature_stats,
    Task.ENROLL: handlers.enroll,
    Task.JOIN: handlers.enroll,
    Task.SECAGG_ADVERTISE: handlers.advertise_keys,
    Task.SECAGG_CONSISTENCY: handlers.consistency,
    Task.SECAGG_UNMASK: handlers.unmask,
    Task.STABILITY: stability_release.stability,
    Task.GBDT_LEVEL: gbdt_level.gbdt_level,
    Task.GBDT_EVALUATE: gbdt_evaluation.gbdt_evaluate,
}
"""What a bank does for each query task."""

_log = logging.getLogger(__name__)

PROTOCOL_REFUSALS: tuple[tuple[type[Exception], str], ...] = (
    (RosterRefused, "secagg-roster"),
    (SignatureRefused, "secagg-signature"),
    (ShareRejected, "secagg-share"),
    (UnmaskRefused, "secagg-unmask"),
    (ReplayRefused, "replay-members"),
)
"""Secure aggregation's refusals (an active coordinator's attempts), by refusal kind."""


def task_of(relayed: GuardRequest, content: RecordDict) -> str:
    """What a request asks, for the guard's log: a query's task, or the message type."""
    if relayed.kind != RequestKind.QUERY:
        return str(relayed.kind)
    try:
        return str(QueryInstructions.take(content).task)
    except MalformedMessage:
        return "malformed"


def _query(request: BankRequest) -> RecordDict:
    query = QueryInstructions.take(request.content)
    return QUERY_HANDLERS[Task(query.task)](request, query)


HANDLERS: Mapping[RequestKind, Callable[[BankRequest], RecordDict]] = {
    RequestKind.QUERY: _query,
    RequestKind.TRAIN: handlers.train,
    RequestKind.EVALUATE: handlers.evaluate,
}
"""What a bank does for each kind of relayed message."""


class BankGuard:
    """One bank's guard: its rows loaded once, every request answered or refused.

    Parameters
    ----------
    settings : GuardSettings
        The bank's own configuration.
    noise_keys : NoiseKeys, optional
        Keys of the bank's DP noise streams; default (and the only choice of a
        deployed guard, :meth:`open`): fresh from ``os.urandom``. Only the simulation
        harness passes others (``fedcredit simulate --reproducible-noise``: derived
        from the seed, research only); no setting or message can.

    Raises
    ------
    credit.errors.SchemaError
        The bank's data file breaks the schema (file, column and row named).
    """

    def __init__(self, settings: GuardSettings, *, noise_keys: NoiseKeys | None = None) -> None:
        self.settings = settings
        self.noise_keys: NoiseKeys = noise_keys if noise_keys is not None else FreshNoiseKeys()
        self.bank: PreparedBank = prepare_bank(settings.source(), settings.holdout)
        self.audit = open_audit_log(settings.audit_settings())

    @classmethod
    def open(cls, settings: GuardSettings) -> BankGuard:
        """Load the bank and verify its records: what the guard service does at start.

        A bank with a budget opens its ledger here (created at first start) and binds
        it to the bank's hold-out split (:attr:`PreparedBank.split_digest`): a ledger
        keeps one split for life, so no restart with another salt, fraction or data
        file moves a training record into the test split.

        Raises
        ------
        credit.errors.SchemaError
            The data file breaks the schema.
        credit.errors.ConfigError
            The bank's audit log fails verification (the entry is named).
        privacy.errors.SplitChanged
            The ledger is bound to another hold-out split (both digests named).
        privacy.errors.LedgerError
            The bank's privacy ledger does not parse, belongs to another bank or
            records another budget (the line is named).
        """
        guard = cls(settings)  # opening the audit log verifies it
        try:
            privacy = handlers.privacy_guard(guard.bank, settings)  # reads and checks every line
            if privacy is not None:
                privacy.ledger.bind_split(guard.bank.split_digest, settings.holdout.fraction)
        except LedgerError as refused:
            guard.close()
            _raise_if_split_changed(settings.ledger_path, guard.bank.split_digest, refused)
            raise
        except BaseException:
            guard.close()
            raise
        return guard

    def close(self) -> None:
        """Close the bank's audit log (entries are on disk already)."""
        if self.audit is not None:
            self.audit.close()

    @property
    def name(self) -> str:
        """The bank's name."""
        return self.bank.name

    def answer(
        self, relayed: GuardRequest, content: RecordDict, sessions: SessionStore
    ) -> tuple[GuardReply, RecordDict]:
        """Answer one relayed request, or refuse it (recorded in the audit log).

        With an audit log, the coordinator's log head the request carries is
        recorded first, and an answered reply carries the bank's log head as it
        stands after the request's entries (:mod:`credit.messages.audit`).

        Parameters
        ----------
        relayed : GuardRequest
            The message's kind, run and node (untrusted).
        content : RecordDict
            The coordinator's message content (untrusted).
        sessions : SessionStore
            Where this bank keeps its secure-aggregation state.
        """
        request = BankRequest(
            relayed=relayed,
            content=content,
            bank=self.bank,
            settings=self.settings,
            sessions=sessions,
            audit=self.audit,
            noise_keys=self.noise_keys,
        )
        try:
            self._record_coordinator_head(request)
            check_approved(self.settings.approved_version, relayed.relay_version)
            reply = HANDLERS[relayed.kind](request)
            stamp_head(self.audit, reply)  # after the handler's own entries
        except UnapprovedApp as refused:
            return self._refuse(request, "unapproved-version", str(refused))
        except GuardRefusal as refused:
            return self._refuse(request, refused.kind, str(refused))
        except MalformedMessage as refused:  # a message that breaks the contract
            return self._refuse(
                request, "malformed-request", f"{type(refused).__name__}: {refused}"
            )
        except (
            RosterRefused,
            SignatureRefused,
            ShareRejected,
            UnmaskRefused,
            ReplayRefused,
        ) as refused:
            return self._refuse(request, _protocol_kind(refused), str(refused))
        except Exception as failed:  # whatever else goes wrong must not stop the guard
            _log.warning(
                "bank %s could not answer a %s request: %s", self.name, relayed.kind, failed
            )
            return self._refuse(request, "failed", f"{type(failed).__name__}: {failed}")
        return GuardReply(status=ReplyStatus.ANSWERED), reply

    def _record_coordinator_head(self, request: BankRequest) -> None:
        """Record the coordinator's log head the request carries (recorded, never trusted)."""
        if self.audit is None or not AuditHead.present(request.content):
            return
        run, server_round = _where(request)
        record_coordinator_head(
            self.audit,
            request.content,
            run=run,
            server_round=server_round,
            request=str(request.relayed.kind),
        )

    def refuse_frame(self, reason: str) -> None:
        """Record a relayed frame that broke the contract (nothing else is known of it)."""
        record_refusal(
            self.audit,
            run="?",
            server_round=0,
            kind="malformed-request",
            reason=reason[:4096],
        )

    def _refuse(
        self, request: BankRequest, kind: str, reason: str
    ) -> tuple[GuardReply, RecordDict]:
        run, server_round = _where(request)
        record_refusal(request.audit, run=run, server_round=server_round, kind=kind, reason=reason)
        return GuardReply(status=ReplyStatus.REFUSED, reason=reason[:4096]), RecordDict()


def _protocol_kind(refused: Exception) -> str:
    """The refusal kind of a secure-aggregation refusal (:data:`PROTOCOL_REFUSALS`)."""
    for kind_of, kind in PROTOCOL_REFUSALS:
        if isinstance(refused, kind_of):
            return kind
    return "failed"


def _where(request: BankRequest) -> tuple[str, int]:
    """Run name and round of a request as far as it parses (for a refusal's record)."""
    flower_run = request.flower_run_id
    for part in (RoundInstructions, QueryInstructions):
        try:
            instructions = part.take(request.content)
        except ValueError:
            continue
        return instructions.run_key(flower_run), getattr(instructions, "server_round", 0)
    return str(flower_run), 0


def _raise_if_split_changed(ledger: Path | None, digest: str, refused: LedgerError) -> None:
    """Name a changed hold-out split as the cause of a ledger's refusal to open.

    Another split usually moves the number of training rows, and with it the default
    delta, so the ledger refuses its budget line before it reaches the split: the
    split it records (``{"type": "split", "digest": ...}``) is the real cause.

    Raises
    ------
    privacy.errors.SplitChanged
        The ledger records another split than ``digest``.
    """
    if isinstance(refused, SplitChanged) or ledger is None:
        return
    try:
        lines = ledger.read_text(encoding="utf-8").splitlines()
    except OSError:
        return
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("type") == "split":
            bound = str(entry.get("digest"))
            if bound != digest:
                raise SplitChanged(path=ledger, recorded=bound, requested=digest) from refused
            return
