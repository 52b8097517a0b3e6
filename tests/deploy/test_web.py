"""The dashboards' web layer: a real uvicorn on 127.0.0.1, a real HTTP client, live audit logs.

The server serves one page, its JSON state and the files its source names; it is
read-only, loopback-only unless told otherwise, answers only to loopback host names,
and its page may load nothing but itself and its state.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from credit.audit import AuditLog, public_key_pem
from credit.errors import ConfigError
from deploy.web import DashboardPage, DashboardServer, check_host, dashboard_server, read_audit

TEMPLATE = """{% extends "base.html" %}
{% block body %}<div id="value"></div>{% endblock %}
{% block script %}function render(state) { fill("value", state.value); }{% endblock %}
"""


class Source:
    """A state the test changes, and one file it serves."""

    def __init__(self, folder: Path) -> None:
        self.value: Any = "first"
        self.report = folder / "report.html"
        self.report.write_text("<!DOCTYPE html><title>report</title>")

    def state(self) -> dict[str, Any]:
        return {"value": self.value, "ratio": float("nan")}

    def file(self, name: str) -> Path | None:
        return self.report if name == "report.html" else None


@pytest.fixture
def source(tmp_path: Path) -> Source:
    return Source(tmp_path)


@pytest.fixture
def server(source: Source) -> Iterator[DashboardServer]:
    page = DashboardPage(title="Test <dashboard>", template=TEMPLATE, poll_seconds=0.5)
    running = dashboard_server(page, source, host="127.0.0.1", port=0)
    running.start()
    yield running
    running.stop()


def test_loopback_only_unless_the_user_allows_another_address() -> None:
    for host in ("127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"):
        assert check_host(host, allow_remote=False) == host
    for host in ("0.0.0.0", "192.168.1.10", "example.org", "::"):
        with pytest.raises(ConfigError, match=r"^--host: .*loopback only.*--allow-remote"):
            check_host(host, allow_remote=False)
    assert check_host("0.0.0.0", allow_remote=True) == "0.0.0.0"


def test_the_page_is_escaped_and_may_load_nothing_but_itself(server: DashboardServer) -> None:
    reply = httpx.get(server.url)
    assert reply.status_code == 200
    assert "<title>Test &lt;dashboard&gt;</title>" in reply.text  # autoescaped
    policy = reply.headers["content-security-policy"]
    nonce = re.search(r"'nonce-([^']+)'", policy)
    assert nonce is not None and policy.startswith("default-src 'none'; script-src 'nonce-")
    assert "connect-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert reply.text.count(f'nonce="{nonce.group(1)}"') == 2  # the style and the script
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", reply.text)  # nothing from elsewhere
    assert httpx.get(server.url).headers["content-security-policy"] != policy  # fresh nonce


def test_the_state_is_read_at_every_request_and_sent_as_json(
    server: DashboardServer, source: Source
) -> None:
    first = httpx.get(server.url + "api/state")
    assert first.status_code == 200 and first.headers["cache-control"] == "no-store"
    assert first.json() == {"value": "first", "ratio": None}  # NaN is not JSON: null
    source.value = [1, 2]
    assert httpx.get(server.url + "api/state").json()["value"] == [1, 2]


def test_only_the_files_the_source_names_are_served(server: DashboardServer) -> None:
    report = httpx.get(server.url + "files/report.html")
    assert report.status_code == 200 and report.text.startswith("<!DOCTYPE html>")
    assert "sandbox" in report.headers["content-security-policy"]
    for name in ("files/other.html", "files/../report.html", "files/%2e%2e/etc/passwd"):
        assert httpx.get(server.url + name).status_code == 404, name


def test_read_only_and_only_for_loopback_host_names(server: DashboardServer) -> None:
    assert httpx.post(server.url + "api/state").status_code == 405
    assert httpx.delete(server.url).status_code == 405
    rebound = httpx.get(server.url + "api/state", headers={"host": f"evil.example:{server.port}"})
    assert rebound.status_code == 400  # a page elsewhere cannot read it by DNS rebinding
    named = httpx.get(server.url + "api/state", headers={"host": f"localhost:{server.port}"})
    assert named.status_code == 200


def test_an_ipv6_loopback_dashboard_answers_to_its_own_address(source: Source) -> None:
    page = DashboardPage(title="t", template=TEMPLATE)
    running = dashboard_server(page, source, host="::1", port=0)
    running.start()
    try:
        assert running.url == f"http://[::1]:{running.port}/"
        assert httpx.get(running.url + "api/state").status_code == 200
        other = {"host": f"[::2]:{running.port}"}
        assert httpx.get(running.url + "api/state", headers=other).status_code == 400
    finally:
        running.stop()


def test_a_taken_port_is_one_clear_error(source: Source) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        page = DashboardPage(title="t", template=TEMPLATE)
        with pytest.raises(ConfigError, match=rf"^--port: cannot listen on 127.0.0.1:{port} "):
            dashboard_server(page, source, host="127.0.0.1", port=port)


def test_the_poll_interval_is_bounded() -> None:
    with pytest.raises(ValueError, match=r"poll_seconds must be in \[0.2, 60\]; got 0.01"):
        DashboardPage(title="t", template=TEMPLATE, poll_seconds=0.01)


# --- audit logs, read while they are written ---------------------------------------


@pytest.fixture
def signed_log(tmp_path: Path) -> tuple[AuditLog, Path]:
    key = Ed25519PrivateKey.generate()
    log = AuditLog(tmp_path / "audit.jsonl", key, "coordinator")
    public = tmp_path / "audit.pub"
    public.write_bytes(public_key_pem(key.public_key()))
    log.append("run-start", {"run": "q3"})
    return log, public


def test_a_live_log_verifies_and_grows(signed_log: tuple[AuditLog, Path]) -> None:
    log, public = signed_log
    view = read_audit(log.path, public)
    assert view.present and view.verified and view.problem is None
    shown = (view.entries, view.last_event, view.closed, view.key)
    assert shown == (2, "run-start", False, str(public))
    assert view.head == log.head and view.fingerprint == log.fingerprint
    log.append("run-end", {"status": "completed"})
    grown = read_audit(log.path, public)
    assert (grown.entries, grown.closed, [e["event"] for e in grown.events]) == (
        3,
        True,
        ["log-open", "run-start", "run-end"],
    )


def test_an_edited_log_or_another_key_is_reported_not_trusted(
    signed_log: tuple[AuditLog, Path], tmp_path: Path
) -> None:
    log, public = signed_log
    lines = log.path.read_text().splitlines(keepends=True)
    entry = json.loads(lines[1])
    entry["data"]["run"] = "q4"
    edited = tmp_path / "edited.jsonl"
    edited.write_text(lines[0] + json.dumps(entry, sort_keys=True, separators=(",", ":")) + "\n")
    view = read_audit(edited, public)
    assert view.present and not view.verified
    assert view.problem is not None and "line 2" in view.problem
    assert [e["data"].get("run") for e in view.events] == [None, "q4"]  # shown, flagged
    other = tmp_path / "other.pub"
    other.write_bytes(public_key_pem(Ed25519PrivateKey.generate().public_key()))
    assert not read_audit(log.path, other).verified


def test_a_torn_last_line_is_read_again_then_reported(signed_log: tuple[AuditLog, Path]) -> None:
    log, public = signed_log
    with log.path.open("ab") as handle:
        handle.write(b'{"seq": 3, "event": "round"')  # a writer caught mid-line
    view = read_audit(log.path, public)
    assert not view.verified and "incomplete last line" in (view.problem or "")
    assert [e["event"] for e in view.events] == ["log-open", "run-start"]


def test_no_log_yet(tmp_path: Path) -> None:
    view = read_audit(tmp_path / "audit.jsonl", tmp_path / "missing.pub")
    assert (view.present, view.verified, view.problem, view.key) == (
        False,
        False,
        None,
        "the log's own key",
    )
