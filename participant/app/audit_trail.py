"""A bank's audit trail: what the coordinator asked of it and what it did, signed.

The SuperNode's node config names the log (``audit-log``) and, optionally, the
bank's Ed25519 signing key (``audit-key``, default: the log's path with ``.key``).
Without ``audit-log`` (simulations) nothing is recorded. Events::

    run-join  run, flower_run_id, task (feature-stats: a new run, enroll: a resumed
              one), config_sha256 (of the run config the bank received, as the
              coordinator computes it), schema_sha256, planned_rounds, fedcredit
    train     run, server_round, model_sha256 (the global model received, equal to
              the coordinator's model of the previous round), epsilon (spent per
              the bank's ledger, banks with a budget only), num_examples, secure
    refusal   run, server_round, kind (privacy-budget, unapproved-version), reason
    evaluate  run, server_round (the global model it scored: model_sha256)
    run-end   run, server_round: after the evaluation of the last planned round

Flower starts a new ClientApp process for every message, so each record opens the
log (verifying it to the last line), appends and closes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flwr.app import ConfigRecord, Context, Message

from credit import __version__
from credit import message_keys as keys
from credit.audit import AuditLog, arrays_sha256, load_or_create_signing_key
from credit.errors import ConfigError
from credit.records import array_record, config_int, config_str
from credit.run_config import RunConfig
from participant.app.node_config import audit_settings

__all__ = [
    "record_evaluate",
    "record_join",
    "record_refusal",
    "record_train",
]

Event = tuple[str, Mapping[str, Any]]


def _record(context: Context, *events: Event) -> None:
    """Append ``events`` to the bank's log, if the node keeps one."""
    settings = audit_settings(context)
    if settings is None:
        return
    key = load_or_create_signing_key(settings.key_path)
    with AuditLog(settings.log_path, key, settings.writer) as log:
        for event, data in events:
            log.append(event, data)


def _run(message: Message, config: ConfigRecord | None) -> str:
    """The consortium's name of the run (Flower's run id when it has none)."""
    if config is not None and keys.RUN_NAME in config:
        name = config_str(config, keys.RUN_NAME)
        if name:
            return name
    return str(message.metadata.run_id)


def _round(config: ConfigRecord | None) -> int:
    if config is None or keys.SERVER_ROUND not in config:
        return 0
    return config_int(config, keys.SERVER_ROUND)


def _model_sha256(message: Message) -> str | None:
    if keys.ARRAYS not in message.content.array_records:
        return None
    arrays = array_record(message.content, keys.ARRAYS)
    return arrays_sha256({name: arrays[name].numpy() for name in arrays})


def _config_sha256(context: Context) -> str | None:
    """The digest of the run config the bank received (None: it does not parse)."""
    try:
        return RunConfig.from_flower(context.run_config).digest()
    except ConfigError:
        return None


def record_join(message: Message, context: Context, config: ConfigRecord, task: str) -> None:
    """The bank joins a run: its first message (feature statistics, or enroll on resume)."""
    _record(
        context,
        (
            "run-join",
            {
                "run": _run(message, config),
                "flower_run_id": message.metadata.run_id,
                "task": task,
                "config_sha256": _config_sha256(context),
                "schema_sha256": config_str(config, keys.SCHEMA_HASH),
                "planned_rounds": config_int(config, keys.PLANNED_ROUNDS),
                "fedcredit": __version__,
            },
        ),
    )


def record_train(
    message: Message,
    context: Context,
    config: ConfigRecord,
    *,
    epsilon: float | None,
    num_examples: int,
    secure: bool,
    replayed: bool = False,
) -> None:
    """The bank trained on the global model it received and sent an update back.

    ``replayed``: the round was asked for again (a resumed run) and the bank sent the
    result it had already trained and paid for (see :mod:`participant.app.replay`).
    """
    _record(
        context,
        (
            "train",
            {
                "run": _run(message, config),
                "server_round": _round(config),
                "model_sha256": _model_sha256(message),
                "epsilon": epsilon,
                "num_examples": num_examples,
                "secure": secure,
                "replayed": replayed,
            },
        ),
    )


def record_refusal(
    message: Message, context: Context, config: ConfigRecord | None, *, kind: str, reason: str
) -> None:
    """The bank refused the request (before touching data for an unapproved version)."""
    _record(
        context,
        (
            "refusal",
            {
                "run": _run(message, config),
                "server_round": _round(config),
                "kind": kind,
                "reason": reason,
            },
        ),
    )


def record_evaluate(message: Message, context: Context, config: ConfigRecord) -> None:
    """The bank scored the global model; after the last planned round, the run ends."""
    run, server_round = _run(message, config), _round(config)
    events: list[Event] = [
        (
            "evaluate",
            {"run": run, "server_round": server_round, "model_sha256": _model_sha256(message)},
        )
    ]
    if server_round >= config_int(config, keys.PLANNED_ROUNDS):
        events.append(("run-end", {"run": run, "server_round": server_round}))
    _record(context, *events)
