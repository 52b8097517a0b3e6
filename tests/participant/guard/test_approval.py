"""A bank's guard answers only a relay of the fedcredit release it approved.

The guard's refusal and its audit record: ``test_audit_trail.py``.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from credit import __version__
from participant.guard.approval import UnapprovedApp, check_approved


def test_the_code_version_is_the_package_version() -> None:
    pyproject = tomllib.loads(Path(__file__).parents[3].joinpath("pyproject.toml").read_text())
    assert __version__ == pyproject["project"]["version"]


def test_the_approved_release_runs() -> None:
    check_approved(__version__, __version__)


def test_another_release_is_refused() -> None:
    with pytest.raises(
        UnapprovedApp, match=r"approved fedcredit 0\.0\.9; the run ships fedcredit 0\.1"
    ):
        check_approved("0.0.9", "0.1")


def test_simulations_have_nothing_to_approve() -> None:
    check_approved(None, "anything")
