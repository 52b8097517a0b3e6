"""Shared fixtures: offline Flower, the embedded schema and small, valid bank files."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest

from credit.datasets import embedded_data_path
from credit.schema import DatasetSchema, load_schema
from deploy.flower_env import SIMULATION_ENV

# The checks shared by a Simulation Engine test and its in-process equivalent are plain
# asserts in a helper module: have pytest rewrite them as it does a test module's, so
# a failure shows the compared values. (Registered before any test module imports it.)
pytest.register_assert_rewrite("tests.support.checks")

# Module-, class- and package-scoped fixtures: under `pytest -n` (pytest-xdist, `make
# test`), the tests that share one stay on one worker (see pytest_collection_modifyitems).
_SHARED_SCOPES = frozenset({"module", "class", "package"})


def pytest_configure(config: pytest.Config) -> None:
    """Under ``pytest -n N``, each worker's torch uses its share of the cores.

    torch's default (one intra-op thread per core) in each of N workers oversubscribes
    the machine; the simulation's own runs already use one thread (Ray's actors, and
    :mod:`tests.support.consortium`).
    """
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers is not None:
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(workers)))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Group each test that uses a shared fixture with its module (``--dist loadgroup``).

    A module-scoped fixture often runs a whole simulation: pytest-xdist would build it
    again on every worker that gets one of the module's tests. The other tests are
    spread freely.
    """
    for item in items:
        fixture_info = getattr(item, "_fixtureinfo", None)
        if fixture_info is None:
            continue
        definitions = fixture_info.name2fixturedefs.values()
        if any(fixture.scope in _SHARED_SCOPES for defs in definitions for fixture in defs):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))


@pytest.fixture(scope="session", autouse=True)
def offline_flower() -> Iterator[None]:
    """Flower and Ray offline and quiet in this process and every child it starts.

    A value already set in the environment is kept (as the Simulation Engine does).
    """
    with pytest.MonkeyPatch.context() as patch:
        for key, value in SIMULATION_ENV.items():
            patch.setenv(key, os.environ.get(key, value))
        yield


@pytest.fixture(autouse=True)
def coordinator_key_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A per-test home for the coordinator's per-user audit key, never the user's own.

    Runs that name no ``audit-key`` sign with ``$FEDCREDIT_DATA_HOME/coordinator-audit.key``
    (see :func:`coordinator.app.audit_trail.default_key_path`); this process and every
    child it starts use a fresh folder per test.
    """
    home = tmp_path_factory.mktemp("fedcredit-home")
    monkeypatch.setenv("FEDCREDIT_DATA_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def schema() -> DatasetSchema:
    """The schema of the embedded UCI credit-card data set."""
    return load_schema()


@pytest.fixture(scope="session")
def embedded_frame() -> pd.DataFrame:
    """The embedded data set as raw strings-free pandas frame (read once per session)."""
    return pd.read_csv(embedded_data_path())


@pytest.fixture
def write_bank_csv(tmp_path: Path, embedded_frame: pd.DataFrame) -> Callable[..., Path]:
    """Write ``n_rows`` valid rows of the embedded data to a CSV; return its path.

    Keyword ``start`` picks the first row; ``gzip=True`` compresses the file.
    """

    def write(n_rows: int = 200, *, start: int = 0, gzip: bool = False, name: str = "bank") -> Path:
        path = tmp_path / (f"{name}.csv.gz" if gzip else f"{name}.csv")
        embedded_frame.iloc[start : start + n_rows].to_csv(path, index=False)
        return path

    return write
