"""The service's protections, each played against by a client that lacks what it asks for.

API token (Bearer, constant-time compare), TLS with a CA-signed server certificate,
mutual TLS (a client certificate from the consortium's CA, not a stranger's).
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from credit.package import ModelPackage
from tests.serving.conftest import as_applicants, typed_rows
from tests.support.tls import TlsFiles, make_pki

TOKEN = "f" * 24 + "0123456789abcdef"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_pki(tmp_path_factory.mktemp("pki"))


def client_context(
    pki: TlsFiles, cert: Path | None = None, key: Path | None = None
) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca))
    if cert is not None:
        context.load_cert_chain(cert, key)
    return context


def test_requests_without_the_right_token_are_refused(
    start_service: Any, package: ModelPackage, tmp_path: Path
) -> None:
    row = as_applicants(typed_rows(package, 0, 1))[0]
    log = tmp_path / "log.jsonl"
    url = start_service(token=SecretStr(TOKEN), log_path=log)
    with httpx.Client(base_url=url) as client:
        missing = client.post("/v1/score", json=row)
        wrong = client.post("/v1/score", json=row, headers={"authorization": f"Bearer {TOKEN}x"})
        other_scheme = client.get("/metrics", headers={"authorization": f"Basic {TOKEN}"})
        model = client.get("/v1/model")
        health = client.get("/healthz")  # liveness stays open
        good = client.post("/v1/score", json=row, headers={"authorization": f"Bearer {TOKEN}"})
        metrics = client.get("/metrics", headers={"authorization": f"Bearer {TOKEN}"})
    for refused in (missing, wrong, other_scheme, model):
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == "Bearer"
        assert "Authorization: Bearer <token>" in refused.json()["detail"]
    assert health.status_code == 200 and good.status_code == 200
    assert 'fedcredit_requests_total{endpoint="/v1/score",status="401"} 2.0' in metrics.text
    assert TOKEN not in log.read_text()


def test_tls_serves_https_with_the_given_certificate(
    start_service: Any, package: ModelPackage, pki: TlsFiles
) -> None:
    url = start_service(tls_cert=pki.server_cert, tls_key=pki.server_key)
    assert url.startswith("https://127.0.0.1:")
    with httpx.Client(base_url=url, verify=client_context(pki)) as client:
        assert client.get("/healthz").status_code == 200
    with pytest.raises(httpx.ConnectError), httpx.Client(base_url=url) as untrusting:
        untrusting.get("/healthz")  # the system's CAs do not know the consortium's CA
    plain = url.replace("https://", "http://")
    with pytest.raises(httpx.HTTPError), httpx.Client(base_url=plain) as client:
        client.get("/healthz")


def test_mutual_tls_admits_only_clients_of_the_ca(
    start_service: Any, package: ModelPackage, pki: TlsFiles
) -> None:
    url = start_service(tls_cert=pki.server_cert, tls_key=pki.server_key, client_ca=pki.ca)
    member = client_context(pki, pki.client_cert, pki.client_key)
    with httpx.Client(base_url=url, verify=member) as client:
        assert client.get("/v1/model").status_code == 200
    for context in (
        client_context(pki),  # no client certificate
        client_context(pki, pki.stranger_cert, pki.stranger_key),  # another CA's
    ):
        with pytest.raises(httpx.HTTPError), httpx.Client(base_url=url, verify=context) as c:
            c.get("/v1/model")
