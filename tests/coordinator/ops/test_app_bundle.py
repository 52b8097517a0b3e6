"""The folder ``flwr run`` builds the app bundle from: the packages, nothing else."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from flwr.cli.build import build_fab_from_disk

from coordinator.ops.flower_cli import app_bundle_dir, app_packages, project_dir

PACKAGES = [
    "cli",
    "coordinator",
    "credit",
    "deploy",
    "participant",
    "privacy",
    "serving",
    "simulations",
]


def test_the_app_packages_are_the_ones_pyproject_installs() -> None:
    assert app_packages(project_dir()) == PACKAGES


def test_the_staged_folder_holds_pyproject_and_the_packages_only() -> None:
    with app_bundle_dir() as staged:
        top = sorted(path.name for path in staged.iterdir())
        assert top == sorted([*PACKAGES, "pyproject.toml"])
        assert (staged / "coordinator" / "app" / "server_app.py").is_file()
        assert (staged / "participant" / "relay" / "client_app.py").is_file()
        assert not list(staged.rglob("__pycache__"))
    assert not staged.exists()  # removed afterwards


# Flower's build calls a pathspec pattern type that pathspec deprecates.
@pytest.mark.filterwarnings("ignore:GitWildMatchPattern:DeprecationWarning")
def test_the_bundle_ships_no_tests_benchmarks_or_environment() -> None:
    with app_bundle_dir() as staged:
        fab = build_fab_from_disk(staged)

    names = zipfile.ZipFile(io.BytesIO(fab)).namelist()
    assert "coordinator/app/server_app.py" in names
    assert "participant/relay/client_app.py" in names
    tops = {Path(name).parts[0] for name in names if "/" in name}
    assert tops <= {*PACKAGES, ".info"}, tops
