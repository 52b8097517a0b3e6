"""A real scoring service on 127.0.0.1 (uvicorn in a thread, an ephemeral port) for the tests.

The package is a small signed one (:mod:`tests.support.packages`), built once per module.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from credit.package import ModelPackage, load_package
from credit.scoring import check_applicants
from serving import ServiceSettings, ServiceThread, create_app
from tests.support.packages import applicant_rows, build_test_package


@pytest.fixture(scope="module")
def package_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_test_package(tmp_path_factory.mktemp("package"), "logreg")


@pytest.fixture(scope="module")
def package(package_dir: Path) -> ModelPackage:
    return load_package(package_dir)


def typed_rows(package: ModelPackage, start: int, rows: int) -> pd.DataFrame:
    """Embedded rows as the package's scorer takes them (validated, typed, no target)."""
    checked = check_applicants(applicant_rows(start, rows), package.schema, source="test")
    assert checked.data is not None, checked.report.error()
    return checked.data.frame


def as_applicants(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Typed rows as JSON applicant objects (integers stay integers)."""
    rows: list[dict[str, Any]] = json.loads(frame.to_json(orient="records"))
    return rows


@pytest.fixture
def start_service(package: ModelPackage) -> Iterator[Any]:
    """``start_service(**settings) -> base URL``: services stopped when the test ends."""
    threads: list[ServiceThread] = []

    def start(**fields: Any) -> str:
        settings = ServiceSettings.build(host="127.0.0.1", port=0, **fields)
        thread = ServiceThread(create_app(package, settings), settings)
        url = thread.__enter__()
        threads.append(thread)
        return url

    yield start
    for thread in threads:
        thread.__exit__(None, None, None)
