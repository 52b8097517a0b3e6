"""``fedcredit model verify`` and ``fedcredit score``: the output contract, tampering, bad data."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from credit.audit import load_or_create_signing_key, public_key_pem
from credit.package import load_package
from credit.package.manifest import sign_folder
from credit.scoring import Scorer, check_applicants, score_csv
from credit.scoring.batch import spreadsheet_safe
from tests.support.cli import invoke, one_error_line
from tests.support.packages import (
    PACKAGE_FILES,
    applicant_rows,
    build_test_package,
    signer_key_path,
    signer_public_path,
)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_test_package(tmp_path_factory.mktemp("cli-package"), "woe")


@pytest.fixture
def package(built: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(built, tmp_path / "model"))


@pytest.fixture
def applicants(tmp_path: Path) -> Path:
    path = tmp_path / "applicants.csv"
    applicant_rows(0, 300).to_csv(path, index=False)
    return path


def test_verify_prints_digest_signer_run_and_files(built: Path) -> None:
    result = invoke("model", "verify", built, "--signer", signer_public_path(built.parent))
    assert result.exit_code == 0, result.output
    digest = load_package(built).digest
    assert f"digest   {digest}" in result.stdout
    assert "(the pinned key" in result.stdout
    assert "run      test-run" in result.stdout
    for name in set(PACKAGE_FILES) - {"manifest.json", "manifest.sig"}:
        assert f"  {name}" in result.stdout


def test_score_writes_the_contract_columns(package: Path, applicants: Path, tmp_path: Path) -> None:
    out = tmp_path / "scores.csv"
    result = invoke("score", "--model", package, "--data", applicants, "--out", out)
    assert result.exit_code == 0, result.output
    written = pd.read_csv(out, dtype={"ID": str}, keep_default_na=False)
    reasons = [f"reason_{k}" for k in range(1, 5)]
    assert list(written.columns) == ["ID", "probability", "score", "decision", *reasons]
    loaded = load_package(package)
    rows = check_applicants(applicant_rows(0, 300), loaded.schema, source="rows").data
    assert rows is not None
    scored = Scorer(loaded).score(rows.frame)
    np.testing.assert_array_equal(written["probability"].to_numpy(), scored.probability)
    np.testing.assert_array_equal(written["score"].to_numpy(), scored.score)
    assert written["ID"].tolist() == applicant_rows(0, 300)["ID"].tolist()
    expected_decisions = np.where(scored.decline, "decline", "approve")
    assert written["decision"].tolist() == expected_decisions.tolist()
    for k, column in enumerate(reasons):
        assert written[column].tolist() == [
            row[k].text if len(row) > k else "" for row in scored.reasons
        ]
    declined = int(scored.decline.sum())
    assert f"scored 300 applicants into {out}" in result.stdout
    assert f"declined  {declined:,} ({declined / 300:.1%})" in result.stdout
    assert "median" in result.stdout


def test_score_without_id_column_and_with_options(package: Path, tmp_path: Path) -> None:
    data = tmp_path / "no-id.csv"
    applicant_rows(0, 50).drop(columns=["ID"]).to_csv(data, index=False)
    out = tmp_path / "scores.csv"
    result = invoke(
        "score", "--model", package, "--data", data, "--out", out, "--cutoff", "1", "--top-k", "2"
    )
    assert result.exit_code == 0, result.output
    written = pd.read_csv(out, keep_default_na=False)
    assert list(written.columns) == ["probability", "score", "decision", "reason_1", "reason_2"]
    assert set(written["decision"]) == {"approve"}


@pytest.mark.parametrize("name", PACKAGE_FILES)
def test_one_changed_byte_is_refused_by_verify_and_score(
    package: Path, applicants: Path, tmp_path: Path, name: str
) -> None:
    data = bytearray((package / name).read_bytes())
    data[len(data) // 2] ^= 0x01
    (package / name).write_bytes(bytes(data))
    expected = r"manifest\.(json|sig): " if name.startswith("manifest") else f"{name}: sha256"
    assert re.search(expected, one_error_line(invoke("model", "verify", package)))
    out = tmp_path / "scores.csv"
    one_error_line(invoke("score", "--model", package, "--data", applicants, "--out", out))
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("change", ["added file", "missing file", "other signer"])
def test_a_changed_package_is_refused_by_verify_and_score(
    package: Path, applicants: Path, tmp_path: Path, built: Path, change: str
) -> None:
    signer = ["--signer", str(signer_public_path(built.parent))]
    if change == "added file":
        (package / "notes.txt").write_text("hello\n")
    elif change == "missing file":
        (package / "scorecard.csv").unlink()
    else:
        other = tmp_path / "other.pub"
        other.write_bytes(public_key_pem(Ed25519PrivateKey.generate().public_key()))
        signer = ["--signer", str(other)]
    line = one_error_line(invoke("model", "verify", package, *signer))
    assert {"added file": "notes.txt: not listed", "missing file": "scorecard.csv: missing",
            "other signer": "not by the pinned signer"}[change] in line  # fmt: skip
    out = tmp_path / "scores.csv"
    assert (
        one_error_line(
            invoke("score", "--model", package, "--data", applicants, "--out", out, *signer)
        )
        == line
    )
    assert not out.exists()


def test_bad_data_lists_every_violation_and_writes_nothing(package: Path, tmp_path: Path) -> None:
    frame = applicant_rows(0, 120).drop(columns=["PAY_2"])
    frame.loc[[4, 90], "AGE"] = "old"
    frame.loc[100, "LIMIT_BAL"] = "-1"
    frame.loc[7, "ID"] = frame.loc[3, "ID"]
    data = tmp_path / "bad.csv"
    frame.to_csv(data, index=False)
    out = tmp_path / "scores.csv"
    out.write_text("an earlier file\n")
    result = invoke("score", "--model", package, "--data", data, "--out", out)
    line = one_error_line(result)
    assert line == f"error: {data}: 4 problems in 4 columns; fix the file and check it again"
    for text in ("PAY_2", "missing column", "ID", "duplicate id", "LIMIT_BAL", "-1", "AGE", "old"):
        assert text in result.stdout
    assert "5, 91" in result.stdout  # AGE's rows
    assert out.read_text() == "an earlier file\n"  # unchanged
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv", "model", "scores.csv"]


def test_unreadable_data_and_bad_flags_are_one_line(package: Path, tmp_path: Path) -> None:
    out = tmp_path / "scores.csv"
    missing = tmp_path / "none.csv"
    line = one_error_line(invoke("score", "--model", package, "--data", missing, "--out", out))
    assert line == f"error: {missing}: file not found (check the path to the data file)"
    data = tmp_path / "a.csv"
    applicant_rows(0, 5).to_csv(data, index=False)
    line = one_error_line(
        invoke("score", "--model", package, "--data", data, "--out", tmp_path / "no" / "s.csv")
    )
    assert "--out: folder" in line
    result = invoke("score", "--model", package, "--data", data, "--out", out, "--cutoff", "2")
    assert result.exit_code == 2
    assert not out.exists()


def test_chunks_write_what_one_chunk_writes(
    package: Path, applicants: Path, tmp_path: Path
) -> None:
    scorer = Scorer(load_package(package))
    whole = score_csv(applicants, tmp_path / "whole.csv", scorer)
    chunked = score_csv(applicants, tmp_path / "chunked.csv", scorer, chunk_rows=7)
    assert whole.rows == chunked.rows == 300
    assert (tmp_path / "whole.csv").read_bytes() == (tmp_path / "chunked.csv").read_bytes()
    np.testing.assert_array_equal(whole.scores, chunked.scores)


def test_a_header_without_rows_gives_a_header(package: Path, tmp_path: Path) -> None:
    data = tmp_path / "empty.csv"
    applicant_rows(0, 0).to_csv(data, index=False)
    out = tmp_path / "scores.csv"
    result = invoke("score", "--model", package, "--data", data, "--out", out)
    assert result.exit_code == 0, result.output
    header = "ID,probability,score,decision,reason_1,reason_2,reason_3,reason_4"
    assert out.read_text().strip() == header


def test_a_reason_text_that_reads_as_a_formula_is_neutralised_in_the_csv(
    package: Path, applicants: Path, tmp_path: Path
) -> None:
    """A signed description like ``=HYPERLINK(...)`` is written as text, never as a formula."""
    scoring = json.loads((package / "scoring.json").read_text())
    scoring["descriptions"] = {
        name: f'=HYPERLINK("http://x","{name}")' for name in scoring["descriptions"]
    }
    (package / "scoring.json").write_text(json.dumps(scoring))
    for name in ("manifest.json", "manifest.sig"):
        (package / name).unlink()
    sign_folder(
        package,
        run="test-run",
        signing_key=load_or_create_signing_key(signer_key_path(tmp_path / "x")),
    )
    out = tmp_path / "scores.csv"
    result = invoke("score", "--model", package, "--data", applicants, "--out", out)
    assert result.exit_code == 0, result.output
    reasons = pd.read_csv(out, dtype=str, keep_default_na=False).filter(like="reason_")
    cells = [cell for cell in reasons.to_numpy().ravel() if cell]
    assert cells and all(cell.startswith("'=HYPERLINK(") for cell in cells)


def test_spreadsheet_safe_leaves_ordinary_texts_alone() -> None:
    texts = np.array(["Repayment status: 2", "", "-1 months", "@x", "+1", "\tx"], dtype=object)
    assert spreadsheet_safe(texts).tolist() == [
        "Repayment status: 2", "", "'-1 months", "'@x", "'+1", "'\tx",
    ]  # fmt: skip
