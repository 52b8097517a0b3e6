"""The guard service's socket: the relay's requests answered, bad frames and strangers refused."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flwr.app import MessageType, RecordDict

from credit import __version__
from credit import message_keys as keys
from credit.schema import DatasetSchema
from participant.contract import ContractError, GuardRequest, ReplyStatus, RequestKind
from participant.guard.bank_guard import BankGuard, task_of
from participant.guard.server import GuardServer
from participant.relay.client_app import GuardRefused, make_relay_app
from participant.relay.node_config import RelayConfig
from participant.relay.socket_link import GuardUnreachable, SocketLink
from tests.participant.guard.bank_messages import (
    acme_settings,
    context,
    feature_stats_query,
    message,
    round_content,
)


@pytest.fixture
def audit(tmp_path: Path) -> Path:
    return tmp_path / "audit.jsonl"


@pytest.fixture
def served(
    tmp_path: Path, audit: Path, write_bank_csv: Callable[..., Path]
) -> Iterator[GuardServer]:
    guard = BankGuard(acme_settings(write_bank_csv(300), max_epsilon=None, audit_log=audit))
    server = GuardServer(guard, tmp_path / "guard.sock", allowed_uids=frozenset({os.getuid()}))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _relay_context(path: Path) -> object:
    return context({"guard-socket": str(path)})


def test_the_relay_reaches_the_guard_through_its_socket_only(
    served: GuardServer, schema: DatasetSchema
) -> None:
    relay = make_relay_app()
    ctx = _relay_context(served.path)
    joined = relay(message(MessageType.QUERY, feature_stats_query(schema)), ctx)
    assert joined.content[keys.BANK]["name"] == "acme"
    content, _ = round_content(schema, 1)
    trained = relay(message(MessageType.TRAIN, content), ctx)
    assert keys.ARRAYS in trained.content
    assert served.path.stat().st_mode & 0o777 == 0o600
    assert RelayConfig.from_context(ctx).guard_socket == served.path  # type: ignore[arg-type]


def test_the_guard_log_names_each_request_and_its_query_task(
    served: GuardServer, schema: DatasetSchema, caplog: pytest.LogCaptureFixture
) -> None:
    relay = make_relay_app()
    ctx = _relay_context(served.path)
    with caplog.at_level("INFO", logger="participant.guard.server"):
        relay(message(MessageType.QUERY, feature_stats_query(schema)), ctx)
        relay(message(MessageType.TRAIN, round_content(schema, 1)[0]), ctx)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("request ")]
    assert lines[0].startswith("request kind=query task=feature-stats run=")
    assert lines[1].startswith("request kind=train task=train run=")
    unreadable = GuardRequest(kind=RequestKind.QUERY, flower_run_id=1, node_id=5, relay_version="x")
    assert task_of(unreadable, RecordDict()) == "malformed"


def test_a_request_for_another_holdout_split_is_refused_and_logged(
    served: GuardServer, schema: DatasetSchema, audit: Path
) -> None:
    relay = make_relay_app()
    ctx = _relay_context(served.path)
    content, _ = round_content(schema, 1)
    config = content.config_records[keys.CONFIG]
    config["test-fraction"] = 0.9  # every row but a few in the unprotected test split
    with pytest.raises(GuardRefused, match="the bank's split is fixed"):
        relay(message(MessageType.EVALUATE, content), ctx)
    last = json.loads(audit.read_text().splitlines()[-1])
    assert last["event"] == "refusal" and last["data"]["kind"] == "holdout-split"


def test_a_broken_frame_is_refused_and_the_guard_keeps_serving(
    served: GuardServer, schema: DatasetSchema, audit: Path
) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as raw:
        raw.connect(str(served.path))
        raw.sendall(b"GET / HTTP/1.1\r\n\r\n")
        raw.shutdown(socket.SHUT_WR)
        assert raw.recv(4) == b"FCG1"  # a refusal frame comes back
    last = json.loads(audit.read_text().splitlines()[-1])
    assert (
        last["data"]["kind"] == "malformed-request"
        and "not a fedcredit guard frame" in (last["data"]["reason"])
    )
    request = GuardRequest(
        kind=RequestKind.QUERY, flower_run_id=1, node_id=5, relay_version=__version__
    )
    reply, _ = SocketLink(served.path).ask(request, feature_stats_query(schema))
    assert reply.status is ReplyStatus.ANSWERED


def test_a_process_of_another_user_gets_no_answer(
    tmp_path: Path, write_bank_csv: Callable[..., Path], schema: DatasetSchema
) -> None:
    guard = BankGuard(acme_settings(write_bank_csv(200), max_epsilon=None))
    server = GuardServer(guard, tmp_path / "g.sock", allowed_uids=frozenset({os.getuid() + 1}))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        request = GuardRequest(
            kind=RequestKind.QUERY, flower_run_id=1, node_id=5, relay_version=__version__
        )
        with pytest.raises((ContractError, GuardUnreachable)):
            SocketLink(server.path).ask(request, feature_stats_query(schema))
    finally:
        server.shutdown()
        server.server_close()


def test_without_a_guard_the_relay_says_so(tmp_path: Path, schema: DatasetSchema) -> None:
    request = GuardRequest(kind=RequestKind.QUERY, flower_run_id=1, node_id=5, relay_version="x")
    with pytest.raises(GuardUnreachable, match="does not answer on"):
        SocketLink(tmp_path / "none.sock").ask(request, feature_stats_query(schema))


def test_the_relay_imports_neither_torch_nor_pandas_nor_the_guard() -> None:
    probe = (
        "import sys, participant.relay.client_app; "
        "print(sorted(m for m in ('torch', 'pandas', 'opacus', 'participant.guard', 'privacy') "
        "if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == "[]"
