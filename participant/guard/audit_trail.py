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
    run-end   run, server_round: after the evaluation of the last planned round's model

The guard opens the log once; before each record it verifies what was appended
since, so a log changed behind the guard's back is noticed at the next record.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from credit import __version__
from credit.audit import AuditLog, load_or_create_signing_key
from credit.messages import QueryInstructions, RoundInstructions, RunInstructions
from participant.guard.settings import AuditSettings

__all__ = ["open_audit_log", "record_evaluate", "record_join", "record_refusal", "record_train"]

Event = tuple[str, Mapping[str, Any]]


def open_audit_log(settings: AuditSettings | None) -> AuditLog | None:
    """The bank's audit log, verified to its last line and open for appending (None: no log).

    The guard opens it once and keeps it (and the signing key) for its lifetime;
    lines appended by anyone else since are verified before each new entry.

    Raises
    ------
    credit.errors.ConfigError
        The log fails verification or was written with another key (file and line
        named).
    """
    if settings is None:
        return None
    key = load_or_create_signing_key(settings.key_path)
    return AuditLog(settings.log_path, key, settings.writer)


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
) -> None:
    """The bank scored round ``server_round``'s global model (the last planned one's: run-end).

    The model comes in an evaluate message, or in the next round's train message that
    asks for its evaluation (an :class:`~credit.messages.EvaluateRequest`).
    """
    key = run.run_key(flower_run_id)
    events: list[Event] = [
        ("evaluate", {"run": key, "server_round": server_round, "model_sha256": model_sha256})
    ]
    if server_round >= run.planned_rounds:
        events.append(("run-end", {"run": key, "server_round": server_round}))
    _record(log, *events)
