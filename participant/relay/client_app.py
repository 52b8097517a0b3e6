"""The bank's Flower ClientApp: a relay from each message to the bank's guard.

For every message (``query``, ``train``, ``evaluate``) the relay builds one
:class:`~participant.contract.GuardRequest` (kind, run, node, the run config it saw,
its own release) and hands it with the message content to the bank's guard over a
:class:`~participant.contract.GuardLink`; the guard's content is the reply. A refusal
becomes :class:`GuardRefused`, which Flower turns into an error reply for the
coordinator. The relay decides nothing and holds nothing of the bank's: in
deployment it reaches the guard through the socket named in its node config
(:func:`socket_link`); a simulation passes links to in-process guards.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from flwr.app import Context, Message
from flwr.clientapp import ClientApp
from flwr.clientapp.typing import Mod

from credit import __version__
from participant.contract import GuardLink, GuardRequest, ReplyStatus, RequestKind
from participant.relay.node_config import RelayConfig
from participant.relay.socket_link import SocketLink

__all__ = ["GuardRefused", "app", "make_relay_app", "socket_link"]

LinkResolver = Callable[[Context], GuardLink]


class GuardRefused(RuntimeError):
    """The bank's guard refused the message; the text is its reason."""


def socket_link(context: Context) -> GuardLink:
    """The link to the guard whose socket the SuperNode's node config names."""
    return SocketLink(RelayConfig.from_context(context).guard_socket)


def relay(message: Message, context: Context, link: GuardLink) -> Message:
    """Forward ``message`` to the guard; its reply, or :class:`GuardRefused`."""
    request = GuardRequest(
        kind=RequestKind(message.metadata.message_type),
        flower_run_id=message.metadata.run_id,
        node_id=context.node_id,
        run_config=dict(context.run_config),
        relay_version=__version__,
    )
    reply, content = link.ask(request, message.content)
    if reply.status is not ReplyStatus.ANSWERED:
        raise GuardRefused(f"the bank refused the {request.kind} message: {reply.reason}")
    return Message(content=content, reply_to=message)


def make_relay_app(link_for: LinkResolver = socket_link, *, mods: Sequence[Mod] = ()) -> ClientApp:
    """The bank's ClientApp.

    Parameters
    ----------
    link_for : callable, default :func:`socket_link`
        The link to the bank's guard for a node's context.
    mods : sequence of Flower mods, optional
        Wrap every message (simulations use one to drop banks out of rounds).
    """
    client_app = ClientApp(mods=list(mods))

    def handle(message: Message, context: Context) -> Message:
        return relay(message, context, link_for(context))

    client_app.query()(handle)
    client_app.train()(handle)
    client_app.evaluate()(handle)
    return client_app


app = make_relay_app()
