"""A boosted-trees package through ``fedcredit model verify``, ``score``, ``serve`` and
``monitor --model``: any changed byte refused in one line; the service answers exactly
what ``fedcredit score`` writes."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.support.cli import invoke, one_error_line
from tests.support.gbdt_packages import GBDT_FILES, build_gbdt_package
from tests.support.packages import applicant_rows, signer_public_path
from tests.support.served import assert_served_as_scored

SERVED_ROWS = 2_000
"""Rows through HTTP and through ``fedcredit score`` (several service batches)."""


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_gbdt_package(tmp_path_factory.mktemp("cli-gbdt"))


@pytest.fixture
def package(built: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(built, tmp_path / "model"))


@pytest.fixture
def applicants(tmp_path: Path) -> Path:
    path = tmp_path / "applicants.csv"
    applicant_rows(400, 300).to_csv(path, index=False)
    return path


@pytest.mark.parametrize("name", GBDT_FILES)
def test_one_changed_byte_is_refused_by_verify_score_and_serve(
    package: Path, applicants: Path, tmp_path: Path, name: str
) -> None:
    data = bytearray((package / name).read_bytes())
    data[len(data) // 2] ^= 0x01
    (package / name).write_bytes(bytes(data))
    expected = r"manifest\.(json|sig): " if name.startswith("manifest") else f"{name}: sha256"
    line = one_error_line(invoke("model", "verify", package))
    assert re.search(expected, line)
    out = tmp_path / "scores.csv"
    assert one_error_line(invoke("score", "--model", package, "--data", applicants, "--out", out))
    assert not out.exists()
    assert re.search(expected, one_error_line(invoke("serve", "--model", package, "--port", "0")))


def test_verify_lists_the_trees_files_signed_by_the_pinned_key(built: Path) -> None:
    signer = signer_public_path(built.parent.parent)
    result = invoke("model", "verify", built, "--signer", signer)
    assert result.exit_code == 0, result.output
    assert "intact, 6 files signed" in result.output
    assert "xgboost.json" in result.output and "encoder.json" in result.output
    assert f"(the pinned key {signer})" in result.output


def test_monitor_refuses_trees_without_development_bins_in_one_line(
    built: Path, applicants: Path, tmp_path: Path
) -> None:
    line = one_error_line(
        invoke("monitor", "--model", built, "--later-data", applicants, "--out", tmp_path / "m")
    )
    assert "--model: the package holds no development bins" in line
    assert "boosted-trees run releases no development bins" in line


def test_the_service_answers_exactly_what_fedcredit_score_writes(
    built: Path, tmp_path: Path
) -> None:
    applicants = tmp_path / "applicants.csv"
    applicant_rows(0, SERVED_ROWS).to_csv(applicants, index=False)
    signer = signer_public_path(built.parent.parent)
    answers = assert_served_as_scored(built, applicants, signer, tmp_path / "scored.csv")
    assert len(answers) == SERVED_ROWS
    assert sum(len(a["reasons"]) for a in answers) > SERVED_ROWS  # reasons are given
