"""The guard service logs its request lines at INFO, whatever its libraries configured."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from participant.node.supervisor import configure_guard_logging


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    """The root logger, restored after the test."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield root
    root.handlers[:] = handlers
    root.setLevel(level)


def test_request_lines_reach_stdout_after_a_library_configured_the_root_logger(
    root_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    # What Opacus does when imported (opacus/utils/module_utils.py): a root handler at
    # WARNING, which turns a later plain basicConfig into a no-op.
    logging.basicConfig(level=logging.WARNING, force=True)
    configure_guard_logging()
    logging.getLogger("participant.guard.server").info("request kind=train task=- run=1")
    assert "INFO request kind=train task=- run=1" in capsys.readouterr().out
