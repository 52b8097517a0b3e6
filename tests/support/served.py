"""The scoring service against ``fedcredit score``: the same applicants both ways."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pandas as pd

from credit.package import load_package
from credit.scoring import check_applicants
from serving import ServiceSettings, ServiceThread, create_app
from serving.applicants import DEFAULT_MAX_BATCH
from tests.serving.conftest import as_applicants
from tests.support.cli import invoke


def assert_served_as_scored(
    package_dir: Path, applicants: Path, signer: Path, out: Path
) -> list[dict[str, Any]]:
    """Score ``applicants`` with ``fedcredit score`` (to ``out``) and through a real
    service over HTTP, in batches of the service's largest; assert every answer's
    probability, score, decision and reason texts equal the CSV's. Returns the answers.
    """
    result = invoke(
        "score", "--model", package_dir, "--data", applicants, "--out", out, "--signer", signer
    )
    assert result.exit_code == 0, result.output
    written = pd.read_csv(out, keep_default_na=False)
    package = load_package(package_dir)
    checked = check_applicants(
        pd.read_csv(applicants, dtype=str, keep_default_na=False), package.schema, source="x"
    )
    assert checked.data is not None
    rows = as_applicants(checked.data.frame)
    settings = ServiceSettings.build(port=0)
    answers: list[dict[str, Any]] = []
    with (
        ServiceThread(create_app(package, settings), settings) as url,
        httpx.Client(base_url=url, timeout=60.0) as client,
    ):
        assert client.get("/v1/model").json()["kind"] == package.kind
        for start in range(0, len(rows), DEFAULT_MAX_BATCH):
            batch = {"applicants": rows[start : start + DEFAULT_MAX_BATCH]}
            answer = client.post("/v1/score", json=batch)
            assert answer.status_code == 200, answer.text
            answers.extend(answer.json()["results"])
    assert len(answers) == len(written)
    assert [a["probability"] for a in answers] == written["probability"].tolist()
    assert [a["score"] for a in answers] == written["score"].tolist()
    assert [a["decision"] for a in answers] == written["decision"].tolist()
    top_k = package.scoring.top_k
    texts = written[[f"reason_{k + 1}" for k in range(top_k)]].to_numpy().tolist()
    assert [
        [r["text"] for r in a["reasons"]] + [""] * (top_k - len(a["reasons"])) for a in answers
    ] == texts
    return answers
