"""An in-process Flower Grid: the real ClientApp handlers, without Ray or a SuperLink.

:class:`FakeGrid` replaces only Flower's transport. Every message the ServerApp pushes
is handed, in this process and at once, to the real :class:`flwr.clientapp.ClientApp`
of its destination node; the reply waits until the ServerApp pulls it. Each node has
one :class:`flwr.app.Context` for the run, set up as Flower's Simulation Engine sets
it up (``flwr/server/superlink/fleet/vce/vce_api.py``, ``_register_node_info_stores``):
``node_config`` is ``{"partition-id": i, "num-partitions": n}``, ``state`` is a
:class:`~flwr.app.RecordDict` that persists from message to message, and
``run_config`` is the run's Flower config.

What it keeps from Flower, so that tests see what a real run sees:

* Messages, replies and the context cross a serialisation boundary (Flower's own
  protobuf ``serde``): neither side can share Python objects with the other, and
  anything that cannot travel fails here as it would on the wire.
* Message ids, ``delivered_at`` and reply metadata are set as
  ``InMemoryGrid.push_messages`` and the Simulation Engine's worker set them.
* A handler that raises becomes an error reply exactly as in the Simulation
  Engine: the Ray actor wraps the exception in ``ClientAppException``
  (``flwr/simulation/ray_transport/ray_actor.py``) and the worker replies with
  ``Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason=str(type(ex)) +
  ":<'" + str(ex) + "'>")`` (``vce_api.worker``). The node's context is then left
  as it was before the message, as Flower leaves it.
* Node ids are large numbers unrelated to the partition ids (seeded), so nothing
  can rely on node order matching bank order.

Use it as a context manager: messages built with ``Message(content, dst, type)``
take their run id and source node from Flower's process-wide ``TaskIdentity``, which
the ServerApp runtime (or ``run_simulation``) sets; ``with FakeGrid(...)`` sets it for
the grid's run and restores the previous identity afterwards.

:meth:`FakeGrid.lose` models a bank that disappears: messages it matches are never
delivered and never answered, so the ServerApp waits for them until its timeout.
:attr:`FakeGrid.failures` lists every handler that raised, and :attr:`FakeGrid.pushes`
every push (one message exchange each), for tests to assert on.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from uuid import uuid4

from flwr.app import Context, Error, Message, RecordDict, UserConfig
from flwr.clientapp import ClientApp
from flwr.clientapp.client_app import ClientAppException
from flwr.common.constant import NUM_PARTITIONS_KEY, PARTITION_ID_KEY, SUPERLINK_NODE_ID, ErrorCode
from flwr.common.serde import (
    context_from_proto,
    context_to_proto,
    message_from_proto,
    message_to_proto,
)
from flwr.serverapp import Grid
from flwr.supercore.date import now
from flwr.supercore.run import Run
from flwr.supercore.task_identity import TaskIdentity

__all__ = ["Failure", "FakeGrid", "MessageFilter", "always"]

_log = logging.getLogger(__name__)

_IDENTITY = ("_task_id", "_run_id", "_node_id")
"""Flower's process-wide task identity (``TaskIdentity``), saved and restored by ``with``."""

MessageFilter = Callable[[Message], bool]
"""Chooses messages by what they are (type, group, content): True to match."""


def always(message: Message) -> bool:
    """Match every message (the default of :meth:`FakeGrid.lose`)."""
    return True


@dataclass(frozen=True)
class Failure:
    """A message whose handler raised: which node, which message, the error reply's reason."""

    partition_id: int
    message_type: str
    reason: str


@dataclass
class _Node:
    partition_id: int
    context: Context
    lost: MessageFilter | None = None


def _over_the_wire(message: Message) -> Message:
    """A copy of ``message`` as the other side receives it (Flower's protobuf serde)."""
    return message_from_proto(message_to_proto(message))


def _error_reason(error: Exception) -> str:
    """The reason the Simulation Engine gives when a ClientApp raised ``error``."""
    wrapped = ClientAppException(str(error))
    return str(type(wrapped)) + ":<'" + str(wrapped) + "'>"


class FakeGrid(Grid):
    """A Grid whose nodes are the real ClientApp, called in this process.

    Parameters
    ----------
    client_app : flwr.clientapp.ClientApp
        The app every node runs (e.g. ``simulation_client_app(plan)``).
    num_nodes : int
        Number of nodes (>= 1); node ``i`` gets ``partition-id`` ``i``.
    run_config : UserConfig
        Flower's run config for the nodes' contexts (``RunConfig.to_flower()``).
    run_id : int, default 1
        The Flower run id (> 0); a resumed run is a new Flower run, so give it a new id.
    seed : int, default 0
        Seeds the node ids.
    """

    def __init__(
        self,
        client_app: ClientApp,
        *,
        num_nodes: int,
        run_config: UserConfig,
        run_id: int = 1,
        seed: int = 0,
    ) -> None:
        if num_nodes < 1:
            raise ValueError(f"num_nodes must be >= 1; got {num_nodes}")
        if run_id < 1:
            raise ValueError(f"run_id must be >= 1; got {run_id}")
        self._client_app = client_app
        self._run = Run.create_empty(run_id=run_id)
        rng = random.Random(seed)
        node_ids = rng.sample(range(SUPERLINK_NODE_ID + 1, 2**63), num_nodes)
        self._nodes = {
            node_id: _Node(
                partition_id=index,
                context=Context(
                    run_id=run_id,
                    node_id=node_id,
                    node_config={PARTITION_ID_KEY: index, NUM_PARTITIONS_KEY: num_nodes},
                    state=RecordDict(),
                    run_config=dict(run_config),
                ),
            )
            for index, node_id in enumerate(node_ids)
        }
        self._replies: dict[str, Message] = {}
        self.failures: list[Failure] = []
        """Every handler that raised, in order (its reply was an error reply)."""
        self.pushes: list[list[Message]] = []
        """Every push, in order (one message exchange each): the messages as pushed."""
        self._saved_identity: list[dict[str, int | None]] = []

    # -- the test's handles ---------------------------------------------------------

    def node_id(self, partition_id: int) -> int:
        """The node id of the node with ``partition_id``."""
        for node_id, node in self._nodes.items():
            if node.partition_id == partition_id:
                return node_id
        raise KeyError(f"no node with partition-id {partition_id}")

    def context(self, partition_id: int) -> Context:
        """The context node ``partition_id`` keeps for the run (its state as of now)."""
        return self._nodes[self.node_id(partition_id)].context

    def lose(self, partition_id: int, when: MessageFilter = always) -> None:
        """From now on, never deliver (nor answer) messages ``when`` matches to that node."""
        self._nodes[self.node_id(partition_id)].lost = when

    def __enter__(self) -> FakeGrid:
        self._saved_identity.append({name: vars(TaskIdentity)[name] for name in _IDENTITY})
        TaskIdentity.task_id = 1
        TaskIdentity.run_id = self._run.run_id
        TaskIdentity.node_id = SUPERLINK_NODE_ID
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for name, value in self._saved_identity.pop().items():
            setattr(TaskIdentity, name, value)

    # -- flwr.serverapp.Grid ----------------------------------------------------------

    def set_run(self, run: Run) -> None:
        """Operate in ``run`` (the nodes' contexts keep the run id they were made with)."""
        if not isinstance(run, Run):
            raise TypeError(f"`run` must be an instance of Run, got {type(run).__name__}")
        self._run = run

    @property
    def run(self) -> Run:
        """A copy of the run's details, as Flower's grids return it."""
        return Run(**vars(self._run))

    def create_message(
        self,
        content: RecordDict,
        message_type: str,
        dst_node_id: int,
        group_id: str,
        ttl: float | None = None,
    ) -> Message:
        """Flower's (deprecated) factory: the ``Message`` constructor, nothing else."""
        return Message(content, dst_node_id, message_type, ttl=ttl, group_id=group_id)

    def get_node_ids(self) -> Iterable[int]:
        """Every node, lost ones included (a lost node stays registered)."""
        return list(self._nodes)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        """Deliver each message to its node now; keep the reply for :meth:`pull_messages`."""
        message_ids = []
        messages = list(messages)
        self.pushes.append(messages)
        for message in messages:
            message.metadata.__dict__["_message_id"] = str(uuid4())
            self._check(message)
            node = self._nodes[message.metadata.dst_node_id]
            delivered = _over_the_wire(message)
            delivered.metadata.delivered_at = now().isoformat()
            reply = self._handle(node, delivered)
            if reply is not None:
                reply.metadata.__dict__["_message_id"] = str(uuid4())
                self._replies[message.metadata.message_id] = _over_the_wire(reply)
            message_ids.append(message.metadata.message_id)
        return message_ids

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        """The replies that arrived for ``message_ids`` (each is handed out once)."""
        return [self._replies.pop(i) for i in list(message_ids) if i in self._replies]

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        """Push, then pull; replies are ready at once, so waiting is only for lost nodes."""
        pending = set(self.push_messages(messages))
        replies = list(self.pull_messages(pending))
        if len(replies) < len(pending) and timeout is not None:
            time.sleep(timeout)  # as Flower: wait the timeout out for replies that never come
        return replies

    # -- inside ---------------------------------------------------------------------

    def _check(self, message: Message) -> None:
        """Flower's checks of an instruction message, plus the run and the node."""
        metadata = message.metadata
        if not (
            metadata.message_id != ""
            and metadata.reply_to_message_id == ""
            and metadata.ttl > 0
            and metadata.delivered_at == ""
        ):
            raise ValueError(f"Invalid message: {message}")
        if metadata.run_id != self._run.run_id:
            raise ValueError(
                f"message for run {metadata.run_id} pushed to run {self._run.run_id}: "
                "build messages inside `with FakeGrid(...)`"
            )
        if metadata.dst_node_id not in self._nodes:
            raise ValueError(f"no node {metadata.dst_node_id} in this grid")

    def _handle(self, node: _Node, message: Message) -> Message | None:
        """The node's reply to ``message`` (None: the node is lost for it)."""
        if node.lost is not None and node.lost(message):
            return None
        context = context_from_proto(context_to_proto(node.context))
        try:
            reply = self._client_app(message, context)
        except Exception as error:
            _log.error("ClientApp of partition %d raised", node.partition_id, exc_info=error)
            reason = _error_reason(error)
            self.failures.append(Failure(node.partition_id, message.metadata.message_type, reason))
            code = ErrorCode.CLIENT_APP_RAISED_EXCEPTION
            return Message(Error(code=code, reason=reason), reply_to=message)
        node.context = context
        return reply
