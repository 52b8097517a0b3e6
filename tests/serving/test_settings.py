"""The service's settings refuse weak or broken security set-ups, naming the flag."""

from __future__ import annotations

from pathlib import Path

import pytest

from serving.errors import ServiceRefused
from serving.settings import MIN_TOKEN_CHARS, ServiceSettings, is_loopback, read_token
from tests.support.tls import TlsFiles, make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.8.0.1", True), ("::1", True), ("localhost", True),
     ("0.0.0.0", False), ("10.0.0.5", False), ("bank.example", False)],
)  # fmt: skip
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_plain_http_on_a_public_address_is_refused() -> None:
    with pytest.raises(ServiceRefused, match=r"^--host: plain HTTP is served on loopback only"):
        ServiceSettings.build(host="0.0.0.0")


def test_a_public_address_with_tls_is_accepted(pki: TlsFiles) -> None:
    settings = ServiceSettings.build(
        host="0.0.0.0", tls_cert=pki.server_cert, tls_key=pki.server_key
    )
    assert settings.tls


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"tls_cert": "CERT"}, r"^--tls-key: --tls-cert and --tls-key go together"),
        ({"client_ca": "CA"}, r"^--client-ca: mutual TLS needs TLS"),
        ({"tls_cert": "CA", "tls_key": "CA"}, r"^--tls-cert: .* not a PEM certificate and its"),
        ({"tls_cert": "CERT", "tls_key": "KEY", "client_ca": "KEY"}, r"^--client-ca: .* no PEM"),
        ({"tls_cert": "nowhere.pem", "tls_key": "KEY"}, r"^--tls-cert: nowhere.pem is not a"),
        ({"cutoff": 1.5}, r"^'--cutoff': Input should be less than 1"),
        ({"port": 70_000}, r"^'--port': Input should be less than or equal to 65535"),
    ],
)
def test_broken_settings_are_refused_naming_the_flag(
    pki: TlsFiles, fields: dict[str, object], message: str
) -> None:
    files = {"CERT": pki.server_cert, "KEY": pki.server_key, "CA": pki.ca}
    values = {name: files.get(str(value), value) for name, value in fields.items()}
    with pytest.raises(ServiceRefused, match=message):
        ServiceSettings.build(**values)


def test_the_token_is_read_and_never_shown(tmp_path: Path) -> None:
    token = "a" * MIN_TOKEN_CHARS
    path = tmp_path / "token"
    path.write_text(f"{token}\n")
    secret = read_token(path)
    assert secret.get_secret_value() == token
    settings = ServiceSettings.build(token=secret)
    assert token not in repr(settings) and token not in str(settings.model_dump())


@pytest.mark.parametrize("text", ["short", "a" * 20 + " " + "b" * 20])
def test_a_weak_token_is_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / "token"
    path.write_text(text)
    with pytest.raises(ServiceRefused, match=r"^--token-file: .* at least 32 characters"):
        read_token(path)


def test_a_missing_token_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ServiceRefused, match=r"^--token-file: cannot read the token file"):
        read_token(tmp_path / "absent")
