"""The consortium PKI: a CA and a server certificate that verify for every host."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import stat
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from coordinator.ops.pki import (
    create_ca,
    issue_server_certificate,
    subject_alternative_names,
    write_certificate,
    write_private_key,
)
from credit.errors import ConfigError

HOSTS = ["fl.bank-consortium.example", "10.20.30.40"]


@pytest.fixture(scope="module")
def issued() -> tuple[x509.Certificate, x509.Certificate]:
    ca = create_ca("nordic")
    _, server = issue_server_certificate(ca, HOSTS)
    return ca.certificate, server


@pytest.mark.parametrize(
    "name",
    [
        x509.DNSName("fl.bank-consortium.example"),
        x509.IPAddress(ipaddress.ip_address("10.20.30.40")),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.DNSName("localhost"),
    ],
)
def test_server_certificate_verifies_for_each_host(
    issued: tuple[x509.Certificate, x509.Certificate], name: x509.DNSName | x509.IPAddress
) -> None:
    ca, server = issued
    verifier = PolicyBuilder().store(Store([ca])).build_server_verifier(name)
    chain = verifier.verify(server, [])
    assert chain[-1] == ca


def test_server_certificate_does_not_verify_for_other_names_or_cas(
    issued: tuple[x509.Certificate, x509.Certificate],
) -> None:
    ca, server = issued
    with pytest.raises(VerificationError):
        PolicyBuilder().store(Store([ca])).build_server_verifier(
            x509.DNSName("evil.example")
        ).verify(server, [])
    other = create_ca("other").certificate
    with pytest.raises(VerificationError):
        PolicyBuilder().store(Store([other])).build_server_verifier(
            x509.DNSName("localhost")
        ).verify(server, [])


def test_extensions(issued: tuple[x509.Certificate, x509.Certificate]) -> None:
    ca, server = issued
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    assert server.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    usages = server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [ExtendedKeyUsageOID.SERVER_AUTH]
    sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["fl.bank-consortium.example", "localhost"]
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == [
        "10.20.30.40",
        "127.0.0.1",
    ]


def test_sans_skip_bind_all_addresses_and_duplicates() -> None:
    names = subject_alternative_names(["0.0.0.0", "LOCALHOST", "127.0.0.1", "::1", "[::]"])
    assert [str(getattr(n, "value", n)) for n in names] == ["localhost", "127.0.0.1", "::1"]


def test_key_files_are_private_and_never_overwritten(tmp_path: Path) -> None:
    ca = create_ca("nordic")
    key_path = tmp_path / "ca" / "ca.key"
    write_private_key(ca.key, key_path)
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    before = key_path.read_bytes()
    with pytest.raises(ConfigError, match=r"ca\.key: already exists; refusing to overwrite"):
        write_private_key(create_ca("again").key, key_path)
    assert key_path.read_bytes() == before


def test_tls_handshake_with_python_ssl(tmp_path: Path) -> None:
    """OpenSSL (via Python's ssl) accepts the files as the SuperLink and banks use them."""
    ca = create_ca("nordic")
    server_key, server_cert = issue_server_certificate(ca, ["127.0.0.1"])
    write_certificate(ca.certificate, tmp_path / "ca.crt")
    write_certificate(server_cert, tmp_path / "server.pem")
    write_private_key(server_key, tmp_path / "server.key")
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(tmp_path / "server.pem", tmp_path / "server.key")
    client_context = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))

    left, right = socket.socketpair()
    with left, right:
        serving = threading.Thread(
            target=lambda: server_context.wrap_socket(right, server_side=True).close()
        )
        serving.start()
        with client_context.wrap_socket(left, server_hostname="127.0.0.1") as tls:
            assert tls.version() in {"TLSv1.2", "TLSv1.3"}
        serving.join(timeout=10)
