"""``fedcredit simulate --ray-address``: a run on a two-node Ray cluster at 127.0.0.1.

The cluster (:mod:`tests.support.ray_cluster`) has one CPU per node, so Flower's
actor pool holds one actor per node; Ray's own task records must show virtual banks
(``ClientAppActor.run``) on both nodes, and fedcredit's packages shipped to the
cluster. On this 2-core machine, shared, starting the two nodes took about 25 s and
the run with its checks about 75 s.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.ray_cluster import LocalRayCluster, tasks_per_node, two_node_cluster

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(sys.platform != "linux", reason="multi-node Ray runs on Linux only"),
]

RUN_TIMEOUT = 300
CLIENT_APP_TASK = "ClientAppActor.run"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalRayCluster]:
    with two_node_cluster(tmp_path) as started:
        yield started


def test_simulate_runs_virtual_banks_on_both_nodes(
    cluster: LocalRayCluster, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    completed = subprocess.run(
        [
            sys.executable, "-c", "from cli.app import main; main()", "simulate",
            "--banks", "3", "--rounds", "2", "--local-steps", "5",
            "--ray-address", cluster.address, "--out", str(out),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        timeout=RUN_TIMEOUT,
        check=False,
    )  # fmt: skip

    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert f"on the Ray cluster at {cluster.address}" in completed.stdout
    assert "round   2/2" in completed.stdout
    assert (out / "metrics.json").is_file()
    assert (out / "model" / "model.pt").is_file()

    record = tasks_per_node(cluster.address)
    head, worker = record["nodes"]
    banks_run = record["tasks"][CLIENT_APP_TASK]
    assert set(banks_run) == {head, worker}, record
    assert all(count > 0 for count in banks_run.values())

    shipped = cluster.temp_dir / "session_latest" / "runtime_resources" / "py_modules_files"
    assert list(shipped.glob("*/simulations/ray_cluster.py")), "fedcredit was not shipped"

    assert cluster.processes()
    assert cluster.stop() == set()
    assert cluster.processes() == set()
