"""The node-indexed link state answers as Flower's own, and the engine really uses it."""

from __future__ import annotations

import importlib
import inspect
import secrets

import pytest
from flwr.app import ConfigRecord, Message, RecordDict
from flwr.common.constant import HEARTBEAT_INTERVAL_INF, NOOP_ACCOUNT_NAME, NOOP_FLWR_AID
from flwr.proto.task_pb2 import Task
from flwr.server.superlink.linkstate import InMemoryLinkState, LinkStateFactory
from flwr.server.superlink.linkstate.in_memory_linkstate import RunRecord
from flwr.supercore.constant import FLWR_IN_MEMORY_DB_NAME, NOOP_FEDERATION_ID
from flwr.supercore.object_store import ObjectStoreFactory
from flwr.supercore.run import Run
from flwr.supercore.task_identity import TaskIdentity
from flwr.superlink.federation import NoOpFederationManager
from flwr.superlink.grid import InMemoryGrid

from simulations.link_state import (
    IndexedLinkStateFactory,
    NodeIndexedLinkState,
    indexed_link_state,
)

RUN_ID, TASK_ID, SUPERLINK = 7, 11, 1
NODES, MESSAGES = 3, 8


@pytest.fixture(autouse=True)
def _superlink_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """Messages are created as the SuperLink's (Flower reads the process's task identity)."""
    monkeypatch.setattr(TaskIdentity, "_task_id", 1)
    monkeypatch.setattr(TaskIdentity, "_run_id", RUN_ID)
    monkeypatch.setattr(TaskIdentity, "_node_id", SUPERLINK)


def _sent(factory_type: type[LinkStateFactory]) -> tuple[InMemoryLinkState, list[int]]:
    """A link state with one run, three nodes and eight queries sent round-robin to them."""
    factory = factory_type(FLWR_IN_MEMORY_DB_NAME, NoOpFederationManager(), ObjectStoreFactory())
    state = factory.state()
    assert isinstance(state, InMemoryLinkState)
    run = Run.create_empty(run_id=RUN_ID)
    run.primary_task_id = TASK_ID
    run.federation_id = NOOP_FEDERATION_ID
    state.run_ids[RUN_ID] = RunRecord(run=run)
    state.task_store[TASK_ID] = Task(task_id=TASK_ID, run_id=RUN_ID)
    nodes = []
    for _ in range(NODES):
        node = state.create_node(
            NOOP_FLWR_AID,
            NOOP_ACCOUNT_NAME,
            secrets.token_bytes(32),
            heartbeat_interval=HEARTBEAT_INTERVAL_INF,
        )
        state.acknowledge_node_heartbeat(node_id=node, heartbeat_interval=HEARTBEAT_INTERVAL_INF)
        nodes.append(node)
    grid = InMemoryGrid(state_factory=factory)
    grid.set_run(run)
    queries = [
        Message(
            RecordDict({"query": ConfigRecord({"index": index})}),
            dst_node_id=nodes[index % NODES],
            message_type="query",
        )
        for index in range(MESSAGES)
    ]
    assert len(list(grid.push_messages(queries))) == MESSAGES
    return state, nodes


def _indices(messages: list[Message]) -> list[int]:
    return [int(message.content["query"]["index"]) for message in messages]  # type: ignore[arg-type]


def _deliveries(state: InMemoryLinkState, nodes: list[int]) -> list[list[int]]:
    """What the engine's sweep asks (one message per node), then everything left, twice."""
    answers = []
    for node in nodes:
        answers.append(_indices(state.get_message_ins(node_id=node, limit=1)))
        answers.append(_indices(state.get_message_ins(node_id=node, limit=None)))
        answers.append(_indices(state.get_message_ins(node_id=node, limit=None)))
    return answers


def test_the_indexed_state_delivers_what_flowers_delivers_once_each() -> None:
    indexed, indexed_nodes = _sent(IndexedLinkStateFactory)
    flower, flower_nodes = _sent(LinkStateFactory)

    assert isinstance(indexed, NodeIndexedLinkState)
    assert type(flower) is InMemoryLinkState
    expected = [[0], [3, 6], [], [1], [4, 7], [], [2], [5], []]
    assert _deliveries(flower, flower_nodes) == expected
    assert _deliveries(indexed, indexed_nodes) == expected
    assert all(m.metadata.delivered_at for m in indexed.message_ins_store.values())


def test_another_runs_messages_wait_for_their_run() -> None:
    state, nodes = _sent(IndexedLinkStateFactory)

    assert state.get_message_ins(node_id=nodes[0], limit=None, run_id=RUN_ID + 1) == []
    assert _indices(state.get_message_ins(node_id=nodes[0], limit=None, run_id=RUN_ID)) == [
        0,
        3,
        6,
    ]


def test_a_limit_below_one_is_refused_as_flower_refuses_it() -> None:
    state, nodes = _sent(IndexedLinkStateFactory)

    with pytest.raises(AssertionError, match="limit"):
        state.get_message_ins(node_id=nodes[0], limit=0)


def test_the_simulation_builds_its_link_state_through_the_patched_name() -> None:
    """If Flower stopped building its state via this name, the patch would do nothing."""
    flower_simulation = importlib.import_module("flwr.simulation.run_simulation")

    assert "LinkStateFactory(" in inspect.getsource(flower_simulation._main_loop)
    with indexed_link_state():
        assert flower_simulation.LinkStateFactory is IndexedLinkStateFactory
    assert flower_simulation.LinkStateFactory is LinkStateFactory
