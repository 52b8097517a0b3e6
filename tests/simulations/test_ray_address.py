"""``--ray-address``: its spelling, the probe of the cluster, the CLI's one-line errors.

No Ray cluster is started here (that is ``test_ray_cluster.py``, slow): a wrong
address must fail in seconds, before any data is split, with one line naming the flag
and the value.
"""

from __future__ import annotations

import socket
import threading
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app
from cli.experiment import simulate_options
from credit.errors import ConfigError
from simulations.ray_cluster import (
    SHIPPED_PACKAGES,
    RayAddress,
    cluster_runtime_env,
    parse_ray_address,
    probe_ray_cluster,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("value", "address"),
    [
        ("127.0.0.1:6379", RayAddress("127.0.0.1", 6379)),
        (" head-node.lab:40000 ", RayAddress("head-node.lab", 40000)),
        ("[::1]:6379", RayAddress("::1", 6379)),
    ],
)
def test_host_and_port_are_parsed(value: str, address: RayAddress) -> None:
    assert parse_ray_address(value) == address
    assert str(address) == value.strip()


@pytest.mark.parametrize(
    "value",
    [
        "",
        "auto",
        "6379",
        "127.0.0.1",
        "127.0.0.1:",
        "127.0.0.1:0",
        "127.0.0.1:port",
        "127.0.0.1:70000",
        "127.0.0.1:6379/jobs",
        "user@127.0.0.1:6379",
        "ray://127.0.0.1:10001",
    ],
)
def test_malformed_addresses_are_refused_naming_flag_and_value(value: str) -> None:
    with pytest.raises(ConfigError, match="HOST:PORT") as refused:
        parse_ray_address(value)
    assert str(refused.value).startswith(f"--ray-address: '{value}'")


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """A loopback port that accepts connections and never says a word."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.1)
    accepted: list[socket.socket] = []
    done = threading.Event()

    def accept() -> None:
        while not done.is_set():
            try:
                accepted.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        done.set()
        thread.join(timeout=5)
        server.close()
        for connection in accepted:
            connection.close()


def test_nothing_listening_is_refused_at_once() -> None:
    address = RayAddress("127.0.0.1", _closed_port())
    started = time.monotonic()
    with pytest.raises(ConfigError, match=r"no Ray cluster at '127\.0\.0\.1:\d+'"):
        probe_ray_cluster(address, timeout=5)
    assert time.monotonic() - started < 5


def test_a_port_that_never_answers_is_refused_after_the_timeout(silent_listener: int) -> None:
    address = RayAddress("127.0.0.1", silent_listener)
    started = time.monotonic()
    with pytest.raises(ConfigError, match=r"no Ray cluster answered at .* within 1 s"):
        probe_ray_cluster(address, timeout=1)
    assert time.monotonic() - started < 5


def _simulate(tmp_path: Path, *args: str) -> tuple[int, str, str, float]:
    out = tmp_path / "out"
    started = time.monotonic()
    result = CliRunner().invoke(app, ["simulate", "--banks", "3", "--out", str(out), *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert not out.exists()  # refused before any data is split or written
    return result.exit_code, result.stdout, result.stderr, time.monotonic() - started


@pytest.mark.parametrize("value", ["127.0.0.1", "ray://127.0.0.1:10001", "127.0.0.1:99999"])
def test_cli_malformed_address_is_one_error_line(tmp_path: Path, value: str) -> None:
    code, stdout, stderr, _ = _simulate(tmp_path, "--ray-address", value)

    assert code == 2, stderr
    assert stderr.splitlines() == [stderr.strip()], stderr
    assert stderr.startswith(f"error: --ray-address: '{value}'"), stderr
    assert "Traceback" not in stdout + stderr


def test_cli_unreachable_address_is_one_error_line_within_seconds(tmp_path: Path) -> None:
    value = f"127.0.0.1:{_closed_port()}"

    code, stdout, stderr, seconds = _simulate(tmp_path, "--ray-address", value)

    assert code == 2, stderr
    assert stderr.splitlines() == [stderr.strip()], stderr
    assert stderr.startswith(f"error: --ray-address: no Ray cluster at '{value}'"), stderr
    assert "Traceback" not in stdout + stderr
    assert "Simulation Engine" not in stdout
    assert seconds < 30


def test_cli_refuses_cpus_with_a_cluster(tmp_path: Path) -> None:
    code, _, stderr, _ = _simulate(tmp_path, "--ray-address", "127.0.0.1:6379", "--cpus", "2")

    assert code == 2, stderr
    assert stderr.startswith("error: --ray-address: cannot be combined with --cpus"), stderr


def test_grids_pass_the_address_to_simulate() -> None:
    space = simulate_options()
    options = space.model.model_validate({"ray_address": "127.0.0.1:6379"}).model_dump()
    assert space.arguments({"ray_address": options["ray_address"]}) == [
        "--ray-address",
        "127.0.0.1:6379",
    ]


def test_every_top_level_package_is_shipped_to_the_workers() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert list(SHIPPED_PACKAGES) == pyproject["tool"]["mypy"]["packages"]
    environment = cluster_runtime_env()
    shipped = [Path(folder) for folder in environment["py_modules"]]
    assert [folder.name for folder in shipped] == list(SHIPPED_PACKAGES)
    assert all((folder / "__init__.py").is_file() for folder in shipped)
    assert "__pycache__/" in environment["excludes"]
    assert environment["env_vars"]["RAY_USAGE_STATS_ENABLED"] == "0"
    assert environment["env_vars"]["FLWR_TELEMETRY_ENABLED"] == "0"


def test_a_cluster_without_cpus_is_refused_and_left(monkeypatch: pytest.MonkeyPatch) -> None:
    """Joined, found to have no CPU: one error naming the flag, and the driver disconnects."""
    import ray

    from simulations import ray_cluster

    calls: list[str] = []
    monkeypatch.setattr(ray_cluster, "probe_ray_cluster", lambda address: calls.append("probe"))
    monkeypatch.setattr(
        ray, "init", lambda **arguments: calls.append(f"init {arguments['address']}")
    )
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"memory": 1e9})
    monkeypatch.setattr(ray, "shutdown", lambda: calls.append("shutdown"))

    with (
        pytest.raises(
            ConfigError, match=r"^--ray-address: the Ray cluster at '10\.0\.0\.5:6379' has no CPU"
        ),
        ray_cluster.connected_to(RayAddress("10.0.0.5", 6379)),
    ):
        pytest.fail("the block must not run")

    assert calls == ["probe", "init 10.0.0.5:6379", "shutdown"]
