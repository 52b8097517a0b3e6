"""Fixtures of the coordinator tests: a real consortium running on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.deployment.consortium import RunningConsortium, started_consortium


@pytest.fixture(scope="module")
def running_consortium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningConsortium]:
    """A consortium (SuperLink + edge) started on free loopback ports, stopped afterwards.

    Module-scoped: the tests of one module share it (start-up takes ~10 s).
    """
    root = tmp_path_factory.mktemp("deployment") / "consortium"
    with started_consortium(root) as running:
        yield running
