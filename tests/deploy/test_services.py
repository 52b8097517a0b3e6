"""Background services: start, find, stop, and a clear error when one dies at start-up."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from deploy.services import Service, ServiceError, wait_for_port


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_service_starts_listens_and_stops(tmp_path: Path) -> None:
    port = _free_port()
    service = Service("echo", tmp_path)
    command = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    pid = service.start(command)
    try:
        wait_for_port("127.0.0.1", port, timeout=20, service=service)
        assert service.pid() == pid
        with pytest.raises(ServiceError, match="already runs"):
            service.start(command)
    finally:
        assert service.stop()
    assert service.pid() is None
    assert not service.pid_file.exists()
    assert not service.stop()


def test_a_service_that_exits_at_start_up_is_reported_with_its_log(tmp_path: Path) -> None:
    service = Service("broken", tmp_path)
    service.start([sys.executable, "-c", "import sys; print('bad flag --x'); sys.exit(3)"])
    with pytest.raises(ServiceError, match=r"(?s)exited during start-up.*bad flag --x"):
        wait_for_port("127.0.0.1", _free_port(), timeout=20, service=service)
