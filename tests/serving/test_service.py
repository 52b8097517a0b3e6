"""The real service over HTTP: the scorer's exact answers, clear refusals, metrics, log.

uvicorn runs on 127.0.0.1 (ephemeral port) in a thread; a real ``httpx`` client talks
to it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from credit.package import ModelPackage
from credit.scoring import Scorer
from tests.serving.conftest import as_applicants, typed_rows


def metric_samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text exposition, by name and sorted labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_http_answers_are_exactly_the_scorers(start_service: Any, package: ModelPackage) -> None:
    frame = typed_rows(package, 1_000, 60)
    expected = Scorer(package).score(frame)
    with httpx.Client(base_url=start_service()) as client:
        batch = client.post("/v1/score", json={"applicants": as_applicants(frame)})
        single = client.post("/v1/score", json=as_applicants(frame)[7])
    assert batch.status_code == 200, batch.text
    document = batch.json()
    assert document["model"] == package.digest
    results = document["results"]
    assert [r["probability"] for r in results] == expected.probability.tolist()
    assert [r["score"] for r in results] == expected.score.tolist()
    assert [r["decision"] == "decline" for r in results] == expected.decline.tolist()
    assert 0 < sum(expected.decline) < len(frame)  # both decisions occur
    assert [
        [(x["feature"], x["text"], x["points_lost"]) for x in r["reasons"]] for r in results
    ] == [[(x.feature, x.text, x.points_lost) for x in row] for row in expected.reasons]
    assert single.json() == {"results": [results[7]], "model": package.digest}


BAD = [
    (b"{", "body", "not valid JSON"),
    (b'{"applicants": [', "body", "not valid JSON"),
    (b"[]", "body", "expected one applicant object"),
]


def bad_bodies(row: dict[str, Any]) -> list[tuple[bytes, str, str]]:
    missing = {k: v for k, v in row.items() if k != "PAY_AMT2"}
    return [
        *BAD,
        (json.dumps(missing).encode(), "PAY_AMT2", "Field required"),
        (json.dumps({**row, "LIMIT_BAL": 3_000_000}).encode(), "LIMIT_BAL", "less than or equal"),
        (json.dumps({**row, "PAY_3": 11}).encode(), "PAY_3", "Input should be -2, -1"),
        (json.dumps({**row, "income": 1}).encode(), "income", "Extra inputs are not permitted"),
        (
            json.dumps({"applicants": [row, {**row, "AGE": 12}]}).encode(),
            "applicants[1].AGE",
            "greater than or equal to 18",
        ),
    ]


def test_bad_requests_are_refused_naming_the_field_and_change_nothing(
    start_service: Any, package: ModelPackage
) -> None:
    row = as_applicants(typed_rows(package, 0, 1))[0]
    with httpx.Client(base_url=start_service(drift_every=1, drift_min_rows=1)) as client:
        for body, field, message in bad_bodies(row):
            answer = client.post(
                "/v1/score", content=body, headers={"content-type": "application/json"}
            )
            assert answer.status_code == 422, (body, answer.text)
            problems = answer.json()["problems"]
            assert problems[0]["field"] == field and message in problems[0]["problem"], problems
            assert answer.json()["detail"].startswith(f"{field}: ")
        after = metric_samples(client.get("/metrics").text)
        good = client.post("/v1/score", json=row)
    assert good.status_code == 200 and good.json()["results"][0]["decision"] in {
        "approve",
        "decline",
    }
    assert after[("fedcredit_drift_rows", ())] == 0
    assert ("fedcredit_decisions_total", (("decision", "approve"),)) not in after
    assert ("fedcredit_decisions_total", (("decision", "decline"),)) not in after
    assert after[("fedcredit_out_of_range_total", (("feature", "LIMIT_BAL"),))] == 1
    assert after[("fedcredit_out_of_range_total", (("feature", "AGE"),))] == 1
    assert after[("fedcredit_validation_failures_total", (("field", "PAY_3"),))] == 1
    assert after[("fedcredit_validation_failures_total", (("field", "(unknown)"),))] == 1
    assert after[("fedcredit_validation_failures_total", (("field", "(body)"),))] == 3
    labels = (("endpoint", "/v1/score"), ("status", "422"))
    assert after[("fedcredit_requests_total", labels)] == len(bad_bodies(row))


def test_an_oversized_body_is_refused_before_it_is_read(
    start_service: Any, package: ModelPackage
) -> None:
    row = as_applicants(typed_rows(package, 0, 1))[0]
    big = json.dumps({"applicants": [row] * 50}).encode()
    assert len(big) > 2_048

    def chunks() -> Any:
        for start in range(0, len(big), 512):
            yield big[start : start + 512]

    with httpx.Client(base_url=start_service(max_body_bytes=2_048)) as client:
        declared = client.post("/v1/score", content=big)
        streamed = client.post("/v1/score", content=chunks())  # chunked: no Content-Length
        fine = client.post("/v1/score", json=row)
    assert declared.status_code == 413 and "over 2,048 bytes" in declared.json()["detail"]
    assert streamed.status_code == 413
    assert fine.status_code == 200


def test_model_health_and_openapi(start_service: Any, package: ModelPackage) -> None:
    with httpx.Client(base_url=start_service(cutoff=0.4)) as client:
        model = client.get("/v1/model").json()
        health = client.get("/healthz").json()
        openapi = client.get("/openapi.json").json()
        pages = [client.get(path).status_code for path in ("/docs", "/redoc")]
    assert pages == [404, 404]  # no page that would load scripts from a CDN
    assert model["model"] == package.digest
    assert model["signer"] == package.manifest.signer.fingerprint
    assert model["run"] == "test-run"
    assert model["schema"] == {"name": package.schema.name, "hash": package.schema.schema_hash()}
    assert model["kind"] == "logreg" and model["encoding"] == "binned"
    assert model["cutoff"] == 0.4
    assert model["top_k"] == package.scoring.top_k
    assert model["drift"]["baseline"] is True
    assert model["drift"]["development_noise"] is False  # a package of exact counts
    assert health == {"status": "ok", "model": package.digest}
    applicant = openapi["components"]["schemas"]["Applicant"]
    assert applicant["properties"]["LIMIT_BAL"]["maximum"] == 2_000_000
    assert applicant["additionalProperties"] is False
    body = openapi["paths"]["/v1/score"]["post"]["requestBody"]["content"]["application/json"]
    assert {"$ref": "#/components/schemas/ApplicantBatch"} in body["schema"]["anyOf"]


def test_metrics_count_requests_decisions_and_latency(
    start_service: Any, package: ModelPackage
) -> None:
    frame = typed_rows(package, 0, 30)
    declines = int(np.count_nonzero(Scorer(package).score(frame).decline))
    with httpx.Client(base_url=start_service()) as client:
        for row in as_applicants(frame):
            assert client.post("/v1/score", json=row).status_code == 200
        client.get("/healthz")
        samples = metric_samples(client.get("/metrics").text)
    ok = (("endpoint", "/v1/score"), ("status", "200"))
    assert samples[("fedcredit_requests_total", ok)] == 30
    assert samples[("fedcredit_requests_total", (("endpoint", "/healthz"), ("status", "200")))] == 1
    assert samples[("fedcredit_request_seconds_count", (("endpoint", "/v1/score"),))] == 30
    assert samples[("fedcredit_decisions_total", (("decision", "decline"),))] == declines
    assert samples[("fedcredit_decisions_total", (("decision", "approve"),))] == 30 - declines


def read_log(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_log_holds_no_raw_applicant_data_by_default(
    start_service: Any, package: ModelPackage, tmp_path: Path
) -> None:
    frame = typed_rows(package, 200, 3)
    rows = as_applicants(frame)
    log = tmp_path / "decisions.jsonl"
    with httpx.Client(base_url=start_service(log_path=log)) as client:
        answer = client.post(
            "/v1/score", json={"applicants": rows}, headers={"x-request-id": "req-1"}
        )
        client.post("/v1/score", json={**rows[0], "AGE": 150, "nickname": "Alice"})
    assert answer.headers["x-request-id"] == "req-1"
    scored, refused = read_log(log)
    assert scored["request_id"] == "req-1" and scored["model"] == package.digest
    assert scored["applicants"] == 3 and scored["status"] == 200
    assert scored["decisions"] == [r["decision"] for r in answer.json()["results"]]
    assert scored["scores"] == [r["score"] for r in answer.json()["results"]]
    assert refused["status"] == 422
    assert refused["problems"] == [
        {"field": "AGE", "type": "less_than_equal"},
        {"field": "(unknown)", "type": "extra_forbidden"},
    ]
    text = log.read_text()
    for name in ("LIMIT_BAL", "BILL_AMT1", "PAY_AMT1", "nickname", "Alice", "150"):
        assert name not in text
    assert str(rows[0]["BILL_AMT1"]) not in text.replace(package.digest, "")


def test_log_features_adds_the_raw_fields(
    start_service: Any, package: ModelPackage, tmp_path: Path
) -> None:
    rows = as_applicants(typed_rows(package, 200, 2))
    log = tmp_path / "decisions.jsonl"
    with httpx.Client(base_url=start_service(log_path=log, log_features=True)) as client:
        client.post("/v1/score", json={"applicants": rows})
    (scored,) = read_log(log)
    assert [entry["LIMIT_BAL"] for entry in scored["features"]] == [
        row["LIMIT_BAL"] for row in rows
    ]


@pytest.mark.parametrize(("start", "shifted"), [(0, False), (0, True)])
def test_drift_alert_fires_on_shifted_applicants_only(
    start_service: Any,
    package: ModelPackage,
    start: int,
    shifted: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    rows = as_applicants(typed_rows(package, start, 400))  # the development rows
    if shifted:
        rows = [{**row, "PAY_0": 8, "PAY_2": 7} for row in rows]
    url = start_service(drift_every=10, drift_min_rows=100)
    with (
        caplog.at_level(logging.WARNING, "fedcredit.serve.drift"),
        httpx.Client(base_url=url) as client,
    ):
        for offset in range(0, len(rows), 40):
            batch = {"applicants": rows[offset : offset + 40]}
            assert client.post("/v1/score", json=batch).status_code == 200
        samples = metric_samples(client.get("/metrics").text)
    alerts = {
        dict(labels)["name"]: value
        for (name, labels), value in samples.items()
        if name == "fedcredit_drift_alert"
    }
    assert samples[("fedcredit_drift_rows", ())] == 400
    assert set(alerts) == {*package.scoring.development.features, "score"}  # type: ignore[union-attr]
    flagged = {name for name, value in alerts.items() if value == 1.0}
    warned = {r.getMessage().split()[1] for r in caplog.records if r.levelno == logging.WARNING}
    assert warned == flagged  # one warning per crossing, naming the characteristic
    if shifted:
        assert {"PAY_0", "PAY_2"} <= flagged
        assert samples[("fedcredit_drift_alerts", ())] == len(flagged)
    else:
        assert flagged == set()


def test_an_unusable_request_id_is_replaced(start_service: Any) -> None:
    with httpx.Client(base_url=start_service()) as client:
        kept = client.get("/healthz", headers={"x-request-id": "abc.DEF_1-2"})
        replaced = client.get("/healthz", headers={"x-request-id": "x" * 65})
        fresh = client.get("/healthz")
    assert kept.headers["x-request-id"] == "abc.DEF_1-2"
    assert len(replaced.headers["x-request-id"]) == 32 != 65
    assert fresh.headers["x-request-id"] != replaced.headers["x-request-id"]


def test_a_scorer_failure_answers_500_without_the_applicants_values(
    start_service: Any,
    package: ModelPackage,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    row = as_applicants(typed_rows(package, 0, 1))[0]

    def broken(self: Scorer, frame: Any) -> Any:
        raise ValueError(f"no bin for LIMIT_BAL value {frame['LIMIT_BAL'].iloc[0]!r}")

    monkeypatch.setattr(Scorer, "score", broken)
    log = tmp_path / "log.jsonl"
    with (
        caplog.at_level(logging.ERROR, "fedcredit.serve"),
        httpx.Client(base_url=start_service(log_path=log)) as client,
    ):
        answer = client.post("/v1/score", json=row, headers={"x-request-id": "r-500"})
    assert answer.status_code == 500
    assert answer.json() == {"detail": "scoring failed (request r-500)"}
    assert [r.getMessage().split(":")[0] for r in caplog.records] == ["request r-500"]
    assert str(row["LIMIT_BAL"]) not in caplog.text + log.read_text()
    assert read_log(log)[0]["status"] == 500


def test_drift_checks_never_queue_up(package: ModelPackage, tmp_path: Path) -> None:
    """Checks asked for faster than they finish merge: one runs, at most one waits."""
    import threading

    from serving.service import ScoringService
    from serving.settings import ServiceSettings

    settings = ServiceSettings.build(host="127.0.0.1", port=0, log_path=tmp_path / "log.jsonl")
    service = ScoringService(package, settings)
    assert service.drift is not None
    running, release = threading.Event(), threading.Event()
    calls: list[int] = []

    def slow_check() -> None:
        calls.append(1)
        running.set()
        release.wait(10)

    service.check_drift = slow_check  # type: ignore[method-assign]
    service._queue_drift_check()
    assert running.wait(10)  # the first check runs and holds the worker
    for _ in range(100):
        service._queue_drift_check()  # one more is queued, the rest merged into it
    assert service._checker._work_queue.qsize() == 1  # type: ignore[attr-defined]
    release.set()
    service._checker.shutdown(wait=True)
    assert len(calls) == 2
