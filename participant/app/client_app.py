"""The bank's Flower ClientApp: a table from each kind of request to its handler.

A bank answers three message types from the coordinator:

* ``query``, by task (:class:`~credit.messages.Task`): ``feature-stats`` (aggregates
  of its training rows, never rows), ``enroll`` (rejoin a resumed run),
  ``secagg-advertise`` and ``secagg-unmask`` (secure aggregation);
* ``train``: one round of local training from the global weights;
* ``evaluate``: score histograms and loss sums on its own test split, never scores.

Every message is first checked against the release the bank approved (before any
data is read), then parsed into typed parts: a message that breaks the contract is
refused with :class:`~credit.errors.MalformedMessage`. Where the bank's rows are comes
from ``resolve_source``: the SuperNode's node config in deployment
(:func:`participant.app.node_config.node_source`), the simulation's own wiring in a
simulation (:mod:`simulations.engine`), which may also add Flower mods.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from flwr.app import Context, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.clientapp.typing import Mod

from credit.messages import QueryInstructions, RoundInstructions, Task
from participant.app import handlers
from participant.app.approval import UnapprovedApp, check_approved
from participant.app.audit_trail import record_refusal
from participant.app.bank import BankSource
from participant.app.handlers import BankRequest
from participant.app.node_config import NodeConfig, node_source

__all__ = ["QUERY_HANDLERS", "app", "make_client_app"]

SourceResolver = Callable[[Context], BankSource]
QueryHandler = Callable[[BankRequest, QueryInstructions], RecordDict]

QUERY_HANDLERS: Mapping[Task, QueryHandler] = {
    Task.FEATURE_STATS: handlers.feature_stats,
    Task.ENROLL: handlers.enroll,
    Task.SECAGG_ADVERTISE: handlers.advertise_keys,
    Task.SECAGG_UNMASK: handlers.unmask,
}
"""What a bank does for each query task."""


def _query(request: BankRequest) -> RecordDict:
    query = QueryInstructions.take(request.message.content)
    return QUERY_HANDLERS[Task(query.task)](request, query)


def make_client_app(
    resolve_source: SourceResolver = node_source, *, mods: Sequence[Mod] = ()
) -> ClientApp:
    """The bank's ClientApp.

    Parameters
    ----------
    resolve_source : callable, default :func:`~participant.app.node_config.node_source`
        Tells each node where its rows, budget and ledger are.
    mods : sequence of Flower mods, optional
        Wrap every message (simulations use one to drop banks out of rounds).
    """
    client_app = ClientApp(mods=list(mods))

    def answer(
        handler: Callable[[BankRequest], RecordDict],
    ) -> Callable[[Message, Context], Message]:
        def handle(message: Message, context: Context) -> Message:
            request = _request(message, context, resolve_source)
            return Message(content=handler(request), reply_to=message)

        return handle

    client_app.query()(answer(_query))
    client_app.train()(answer(handlers.train))
    client_app.evaluate()(answer(handlers.evaluate))
    return client_app


def _request(message: Message, context: Context, resolve_source: SourceResolver) -> BankRequest:
    """The typed request, after the approved-release check (before any data is read)."""
    node = NodeConfig.from_context(context)
    try:
        check_approved(node)
    except UnapprovedApp as refusal:
        run, server_round = _where(message)
        record_refusal(
            node.audit_settings(),
            run=run,
            server_round=server_round,
            kind="unapproved-version",
            reason=str(refusal),
        )
        raise
    return BankRequest(message=message, context=context, node=node, source=resolve_source(context))


def _where(message: Message) -> tuple[str, int]:
    """Run name and round of a message as far as it parses (for a refusal's record)."""
    flower_run = message.metadata.run_id
    for part in (RoundInstructions, QueryInstructions):
        try:
            instructions = part.take(message.content)
        except ValueError:
            continue
        return instructions.run_key(flower_run), getattr(instructions, "server_round", 0)
    return str(flower_run), 0


app = make_client_app()
