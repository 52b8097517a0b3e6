"""Flower's in-memory link state with the pending messages indexed by destination node.

Flower's Simulation Engine (1.41) hands messages to its workers from a thread that asks
the link state, every 0.1 s, for one pending message per SuperNode
(``vce_api.add_messages_to_queue``). :class:`~flwr.server.superlink.linkstate.InMemoryLinkState`
answers each of those questions by checking every stored message: with N SuperNodes and
a round's N messages stored that is N² checks per sweep, under the state's lock and the
driver's GIL. At 1,000 banks it took most of the driver's time and starved the
ServerApp. :class:`NodeIndexedLinkState` keeps, per node, the ids of the messages sent to
it and checks only those: the same answers (same expiry and federation checks, same
"delivered" marking) in time proportional to the node's own messages.

:func:`indexed_link_state` installs it for one ``run_simulation`` call: Flower builds its
link state inside ``flwr.simulation.run_simulation`` with no way to pass one in, so the
factory name there is replaced for the duration of the call and restored afterwards.
``tests/simulations/test_link_state.py`` checks that Flower still builds its state
through that name.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from unittest import mock

from flwr.app import Message
from flwr.server.superlink.linkstate import InMemoryLinkState, LinkState, LinkStateFactory
from flwr.supercore.constant import FLWR_IN_MEMORY_DB_NAME
from flwr.supercore.date import now

__all__ = ["IndexedLinkStateFactory", "NodeIndexedLinkState", "indexed_link_state"]


class NodeIndexedLinkState(InMemoryLinkState):
    """:class:`InMemoryLinkState` whose pending messages are looked up by destination node."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._pending: dict[int, list[str]] = {}

    def store_message_ins(self, message: Message) -> str | None:
        """Store one message (Flower's checks) and index it under its destination."""
        message_id = super().store_message_ins(message)
        if message_id is not None:
            with self.lock:
                pending = self._pending.setdefault(message.metadata.dst_node_id, [])
                if message_id not in pending:  # Flower accepts a message stored twice
                    pending.append(message_id)
        return message_id

    def get_message_ins(
        self, node_id: int, limit: int | None, *, run_id: int | None = None
    ) -> list[Message]:
        """The node's undelivered messages (at most ``limit``), marked delivered.

        As :meth:`InMemoryLinkState.get_message_ins`, over the node's own messages only:
        expired or foreign-federation messages are deleted on the way, delivered or
        deleted ones leave the index.
        """
        if limit is not None and limit < 1:
            raise AssertionError("`limit` must be >= 1")
        found: list[Message] = []
        with self.lock:
            kept: list[str] = []
            for message_id in self._pending.get(node_id, []):
                if limit and len(found) == limit:
                    kept.append(message_id)
                    continue
                self._check_stored_messages({message_id})
                message = self.message_ins_store.get(message_id)
                if message is None or message.metadata.delivered_at != "":
                    continue
                if run_id is not None and message.metadata.run_id != run_id:
                    kept.append(message_id)
                    continue
                found.append(message)
            self._pending[node_id] = kept
            delivered_at = now().isoformat()
            for message in found:
                message.metadata.delivered_at = delivered_at
        return found


class IndexedLinkStateFactory(LinkStateFactory):
    """Flower's link-state factory, building a :class:`NodeIndexedLinkState` in memory."""

    def state(self) -> LinkState:
        """The state (built once): node-indexed for the in-memory database."""
        if self.database != FLWR_IN_MEMORY_DB_NAME:
            return super().state()
        with self._state_lock:
            if self.state_instance is None:
                store = self.objectstore_factory.store()
                self.state_instance = NodeIndexedLinkState(self.federation_manager, store)
            return self.state_instance


@contextmanager
def indexed_link_state() -> Iterator[None]:
    """Within the block, ``flwr.simulation.run_simulation`` builds node-indexed link states."""
    # ``flwr.simulation.run_simulation`` is also the name of the function the package exports
    flower_simulation = importlib.import_module("flwr.simulation.run_simulation")
    with mock.patch.object(flower_simulation, "LinkStateFactory", IndexedLinkStateFactory):
        yield
