"""The fake Grid behaves as Flower's transport does for what the suite relies on."""

from __future__ import annotations

import pytest
from flwr.app import ConfigRecord, Context, Message, MessageType, RecordDict
from flwr.clientapp import ClientApp
from flwr.common.constant import SUPERLINK_NODE_ID, ErrorCode
from flwr.supercore.task_identity import TaskIdentity

from tests.support.fake_grid import FakeGrid


def _counting_app() -> ClientApp:
    """Counts queries in the node's state; raises (after counting) when asked to."""
    app = ClientApp()

    @app.query()
    def query(message: Message, context: Context) -> Message:
        count = context.state.config_records.get("count", ConfigRecord({"n": 0}))["n"]
        seen = (count if isinstance(count, int) else 0) + 1
        context.state["count"] = ConfigRecord({"n": seen})
        if message.content.config_records["ask"]["fail"]:
            raise ValueError("bank file is broken")
        reply = ConfigRecord(
            {
                "n": seen,
                "partition": context.node_config["partition-id"],
                "of": context.node_config["num-partitions"],
                "rounds": context.run_config["num-server-rounds"],
            }
        )
        return Message(RecordDict({"reply": reply}), reply_to=message)

    return app


def _ask(node_id: int, *, fail: bool = False) -> Message:
    return Message(RecordDict({"ask": ConfigRecord({"fail": fail})}), node_id, MessageType.QUERY)


@pytest.fixture
def grid() -> FakeGrid:
    return FakeGrid(
        _counting_app(), num_nodes=3, run_config={"num-server-rounds": 4}, run_id=77, seed=5
    )


def test_replies_answer_their_messages_once(grid: FakeGrid) -> None:
    with grid:
        messages = [_ask(node_id) for node_id in grid.get_node_ids()]
        ids = list(grid.push_messages(messages))
        replies = list(grid.pull_messages(ids))
        assert list(grid.pull_messages(ids)) == []
    assert len(set(ids)) == 3 and all(ids)
    by_id = {reply.metadata.reply_to_message_id: reply for reply in replies}
    assert set(by_id) == set(ids)
    for message in messages:
        reply = by_id[message.metadata.message_id]
        assert reply.metadata.src_node_id == message.metadata.dst_node_id
        assert reply.metadata.dst_node_id == SUPERLINK_NODE_ID
        assert reply.metadata.run_id == message.metadata.run_id == 77
        assert reply.metadata.message_id not in ("", message.metadata.message_id)


def test_each_node_keeps_its_own_context_between_messages(grid: FakeGrid) -> None:
    first = grid.node_id(0)
    with grid:
        grid.send_and_receive([_ask(first)])
        (reply,) = grid.send_and_receive([_ask(first)])
        (other,) = grid.send_and_receive([_ask(grid.node_id(2))])
    assert dict(reply.content.config_records["reply"]) == {
        "n": 2,
        "partition": 0,
        "of": 3,
        "rounds": 4,
    }
    assert other.content.config_records["reply"]["n"] == 1
    assert other.content.config_records["reply"]["partition"] == 2
    assert sorted(grid.get_node_ids()) == sorted(grid.node_id(i) for i in range(3))
    assert grid.node_id(0) != 0  # node ids are not partition ids


def test_a_raising_handler_is_flowers_error_reply_and_leaves_the_context_as_it_was(
    grid: FakeGrid,
) -> None:
    node = grid.node_id(1)
    with grid:
        grid.send_and_receive([_ask(node)])
        (error,) = grid.send_and_receive([_ask(node, fail=True)])
        (after,) = grid.send_and_receive([_ask(node)])
    assert error.has_error() and error.metadata.src_node_id == node
    assert error.error.code == ErrorCode.CLIENT_APP_RAISED_EXCEPTION
    assert error.error.reason == (
        "<class 'flwr.clientapp.client_app.ClientAppException'>:<'\n"
        "Exception ClientAppException occurred. Message: bank file is broken'>"
    )
    assert after.content.config_records["reply"]["n"] == 2  # the failed count is not kept
    assert [(f.partition_id, f.message_type) for f in grid.failures] == [(1, "query")]
    assert grid.failures[0].reason == error.error.reason


def test_a_lost_node_never_answers_what_it_lost(grid: FakeGrid) -> None:
    grid.lose(2, when=lambda message: bool(message.content.config_records["ask"]["fail"]))
    lost = grid.node_id(2)
    with grid:
        assert list(grid.send_and_receive([_ask(lost, fail=True)], timeout=0.01)) == []
        (reply,) = grid.send_and_receive([_ask(lost)])
    assert reply.content.config_records["reply"]["n"] == 1
    assert lost in grid.get_node_ids()
    assert grid.failures == []


def test_with_sets_flowers_task_identity_and_restores_it(grid: FakeGrid) -> None:
    before = {name: vars(TaskIdentity)[name] for name in ("_task_id", "_run_id", "_node_id")}
    with grid:
        assert TaskIdentity.run_id == grid.run.run_id == 77
        assert TaskIdentity.node_id == SUPERLINK_NODE_ID
    assert {name: vars(TaskIdentity)[name] for name in before} == before


def test_a_message_of_another_run_is_refused(grid: FakeGrid) -> None:
    other = FakeGrid(_counting_app(), num_nodes=1, run_config={}, run_id=78)
    with other:
        stray = _ask(grid.node_id(0))
    with grid, pytest.raises(ValueError, match="message for run 78 pushed to run 77"):
        grid.push_messages([stray])
