"""Throwaway certificates for TLS and mutual-TLS tests: a CA, a server and two clients.

The server certificate comes from the consortium's own PKI code
(:func:`coordinator.ops.pki.issue_server_certificate`, SANs 127.0.0.1 and localhost);
client certificates (clientAuth) are signed by the same CA or by a stranger's.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from coordinator.ops.pki import (
    CertificateAuthority,
    create_ca,
    issue_server_certificate,
    write_certificate,
    write_private_key,
)


@dataclass(frozen=True)
class TlsFiles:
    """PEM files of a test PKI."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    stranger_cert: Path
    stranger_key: Path


def _client(ca: CertificateAuthority, name: str, folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP384R1())
    start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca.key, hashes.SHA384())
    )
    cert_path, key_path = folder / f"{name}.pem", folder / f"{name}.key"
    write_certificate(certificate, cert_path)
    write_private_key(key, key_path)
    return cert_path, key_path


def make_pki(folder: Path) -> TlsFiles:
    """A CA, its server certificate for 127.0.0.1 and a client; a stranger's client."""
    folder.mkdir(parents=True, exist_ok=True)
    ca = create_ca("test-consortium")
    server_key, server_cert = issue_server_certificate(ca, ["127.0.0.1"])
    write_certificate(ca.certificate, folder / "ca.pem")
    write_certificate(server_cert, folder / "server.pem")
    write_private_key(server_key, folder / "server.key")
    client_cert, client_key = _client(ca, "bank-client", folder)
    stranger_cert, stranger_key = _client(create_ca("strangers"), "stranger", folder)
    return TlsFiles(
        ca=folder / "ca.pem",
        server_cert=folder / "server.pem",
        server_key=folder / "server.key",
        client_cert=client_cert,
        client_key=client_key,
        stranger_cert=stranger_cert,
        stranger_key=stranger_key,
    )
