"""A bank's audit trail: what the coordinator asked of it and what it did, signed.

The guard's settings name the log (``audit_log``) and, optionally, the bank's
Ed25519 signing key (``audit_key``, default: the log's path with ``.key``); only the
guard holds the key. Without a log (simulations) nothing is recorded. Events::

    run-join  run, flower_run_id, task (feature-stats: a new run, enroll: a resumed
              one), config_sha256 (of the run config the bank received, as the
              coordinator computes it), schema_sha256, planned_rounds, fedcredit
    train     run, server_round, model_sha256 (the global model received, equal to
              the coordinator's model of the previous round), epsilon (spent per
              the bank's ledger, banks with a budget only), num_examples, secure,
              replayed
    refusal   run, server_round, kind (privacy-budget, unapproved-version, schema,
              holdout-split, plain-update, malformed-request, failed), reason
    evaluate  run, server_round (whose global model it scored: an evaluate message's
              round, or the round before a train message that asks for the evaluation
              of the model it carries), model_sha256 (the global model it scored)
    run-end   run, server_round: once, after the run's last evaluation (of the last
              planned round's model; in a run with validation parts, of the kept
              model on the held-out rows; server_round: that model's round); under
              secure aggregation after the shares of that evaluation's secure round,
              its last request
    coordinator-head
              run, server_round, request (query, train, evaluate), and the head of
              the coordinator's audit log the request carried (seq, head, key), or
              malformed (why, at most 200 characters); before the request is
              answered, and only for requests that carry one

Every reply the guard answers carries the head of the bank's log after the request's
own entries (:func:`stamp_head`), which the coordinator records in its log.

The guard opens the log once; before each record it verifies what was appended
since, so a log changed behind the guard's back is noticed at the next record. The
log is opened with the key's record of the logs it signed (``<stem>.history``
beside the key): a log that was emptied, deleted or cut is refused, not begun anew.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flwr.app import RecordDict

from credit import __version__
from credit.audit import AuditLog
from credit.errors import MalformedMessage
from credit.messages import AuditHead, QueryInstructions, RoundInstructions, RunInstructions
from participant.guard.settings import AuditSettings

__all__ = [
    "MAX_REASON",
    "open_audit_log",
    "record_coordinator_head",
    "record_evaluate",
    "record_join",
    "record_refusal",
    "record_run_end",
    "record_train",
    "stamp_head",
]

MAX_REASON = 200
"""Characters of a malformed head's problem kept in the log (the coordinator chose it)."""

Event = tuple[str, Mapping[str, Any]]


def open_audit_log(settings: AuditSettings | None) -> AuditLog | None:
    """The bank's audit log, verified to its last line and open for appending (None: no log).

    The guard opens it once and keeps it (and the signing key) for its lifetime;
    lines appended by anyone else since are verified before each new entry.

    Raises
    ------
    credit.errors.ConfigError
        The log fails verification or was written with another key (file and line
        named), or the key has signed it before and it is now missing, empty,
        replaced or cut (log and key named).
    """
    if settings is None:
        return None
    return AuditLog.open(
        settings.log_path, settings.key_path, settings.writer, durable=settings.durable
    )


def _record(log: AuditLog | None, *events: Event) -> None:
    """Append ``events`` to the bank's log, if it keeps one."""
    if log is None:
        return
    for event, data in events:
        log.append(event, data)


def record_join(
    log: AuditLog | None,
    query: QueryInstructions,
    *,
    flower_run_id: int,
    config_sha256: str | None,
) -> None:
    """The bank joins a run: its first message (feature statistics, or enroll on resume)."""
    data = {
        "run": query.run_key(flower_run_id),
        "flower_run_id": flower_run_id,
        "task": query.task,
        "config_sha256": config_sha256,
        "schema_sha256": query.schema_hash,
        "planned_rounds": query.planned_rounds,
        "fedcredit": __version__,
    }
    _record(log, ("run-join", data))


def record_train(
    log: AuditLog | None,
    round_: RoundInstructions,
    *,
    flower_run_id: int,
    model_sha256: str,
    epsilon: float | None,
    num_examples: int,
    secure: bool,
    replayed: bool,
) -> None:
    """The bank trained on the global model it received and sent an update back.

    ``replayed``: the round was asked for again (a resumed run) and the bank sent the
    result it had already trained and paid for (see :mod:`participant.guard.replay`).
    """
    data = {
        "run": round_.run_key(flower_run_id),
        "server_round": round_.server_round,
        "model_sha256": model_sha256,
        "epsilon": epsilon,
        "num_examples": num_examples,
        "secure": secure,
        "replayed": replayed,
    }
    _record(log, ("train", data))


def record_refusal(
    log: AuditLog | None, *, run: str, server_round: int, kind: str, reason: str
) -> None:
    """The bank refused the request (before touching data for an unapproved version)."""
    data = {"run": run, "server_round": server_round, "kind": kind, "reason": reason}
    _record(log, ("refusal", data))


def record_evaluate(
    log: AuditLog | None,
    run: RunInstructions,
    *,
    server_round: int,
    flower_run_id: int,
    model_sha256: str,
    closes: bool,
) -> None:
    """The bank scored round ``server_round``'s global model (and, ``closes``, ended the run).

    The model comes in an evaluate message, or in the next round's train message that
    asks for its evaluation (an :class:`~credit.messages.EvaluateRequest`). ``closes``:
    the run's last evaluation (the last planned round's model, or, in a run with
    validation parts, the kept model on the held-out rows), released in the clear;
    under secure aggregation the run ends at its unmask (:func:`record_run_end`).
    """
    key = run.run_key(flower_run_id)
    events: list[Event] = [
        ("evaluate", {"run": key, "server_round": server_round, "model_sha256": model_sha256})
    ]
    if closes:
        events.append(("run-end", {"run": key, "server_round": server_round}))
    _record(log, *events)


def record_run_end(
    log: AuditLog | None, run: RunInstructions, *, server_round: int, flower_run_id: int
) -> None:
    """The run's last request was answered: the unmask of the secure round that summed
    the bank's last evaluation, of round ``server_round``'s model."""
    _record(log, ("run-end", {"run": run.run_key(flower_run_id), "server_round": server_round}))


def record_coordinator_head(
    log: AuditLog | None, content: RecordDict, *, run: str, server_round: int, request: str
) -> None:
    """Record the coordinator's audit-log head a request carries (nothing if it carries none).

    The head is the coordinator's claim: recorded as it came, or as malformed (the
    problem cut to :data:`MAX_REASON` characters), and used for nothing else.
    """
    if log is None or not AuditHead.present(content):
        return
    data: dict[str, Any] = {"run": run, "server_round": server_round, "request": request}
    try:
        head = AuditHead.take(content)
    except MalformedMessage as malformed:
        data["malformed"] = str(malformed)[:MAX_REASON]
    else:
        data.update(seq=head.seq, head=head.head, key=head.key)
    _record(log, ("coordinator-head", data))


def stamp_head(log: AuditLog | None, reply: RecordDict) -> None:
    """Put the head of the bank's log, as it stands now, into ``reply`` (if it keeps one)."""
    if log is None:
        return
    now = log.current_head()
    AuditHead(seq=now.seq, head=now.head, key=log.fingerprint).put(reply)
