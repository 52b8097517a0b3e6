"""The consortium's certificate authority and the server certificate it signs.

``fedcredit coordinator init`` makes one CA per consortium and one server certificate
that both the SuperLink (admin side) and the edge proxy (partner side) present. Banks
receive only the CA certificate (in their onboarding bundle) and trust nothing else
for this connection.

Keys are EC P-384 (NIST curve, accepted by Python's ``ssl``, uvicorn, nginx and
httpx); private keys are written unencrypted in PKCS#8 PEM with mode 0600: the
operator protects the consortium folder.

Notes
-----
The server certificate carries a subject alternative name for every host the banks
may dial (DNS names or IP addresses), plus ``IP:127.0.0.1`` and ``DNS:localhost``:
the SuperLink's own SuperExec dials 127.0.0.1, and nginx verifies the SuperLink's
certificate by the DNS name ``localhost`` (nginx checks DNS names, not IP SANs).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from credit.errors import ConfigError

__all__ = [
    "CA_VALIDITY_DAYS",
    "LOOPBACK_NAMES",
    "SERVER_VALIDITY_DAYS",
    "CertificateAuthority",
    "create_ca",
    "issue_server_certificate",
    "load_certificate",
    "subject_alternative_names",
    "write_certificate",
    "write_private_key",
]

CA_VALIDITY_DAYS = 3650
SERVER_VALIDITY_DAYS = 825
LOOPBACK_NAMES = ("127.0.0.1", "localhost")
"""Always in the server certificate: the SuperExec and nginx reach the SuperLink so."""

_CURVE = ec.SECP384R1()
_UNSPECIFIED = {"0.0.0.0", "::"}


@dataclass(frozen=True)
class CertificateAuthority:
    """A CA key and its self-signed certificate."""

    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def create_ca(consortium: str) -> CertificateAuthority:
    """A new self-signed CA named after the consortium (CA:TRUE, may sign leaves only).

    Parameters
    ----------
    consortium : str
        The consortium's name, used in the certificate's common name.
    """
    key = ec.generate_private_key(_CURVE)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, consortium),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{consortium} consortium CA"),
        ]
    )
    start = _now() - dt.timedelta(minutes=5)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=CA_VALIDITY_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA384())
    )
    return CertificateAuthority(key=key, certificate=certificate)


def subject_alternative_names(hosts: Iterable[str]) -> list[x509.GeneralName]:
    """SAN entries for ``hosts`` plus 127.0.0.1 and localhost, without duplicates.

    IP literals become ``IPAddress`` entries, anything else a ``DNSName``. The
    unspecified addresses 0.0.0.0 and :: (bind-all, never dialled) are skipped.
    """
    entries: list[x509.GeneralName] = []
    seen: set[str] = set()
    for host in [*hosts, *LOOPBACK_NAMES]:
        text = host.strip().strip("[]")
        if not text or text in _UNSPECIFIED or text.lower() in seen:
            continue
        seen.add(text.lower())
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(text)))
        except ValueError:
            entries.append(x509.DNSName(text.lower()))
    return entries


def issue_server_certificate(
    ca: CertificateAuthority, hosts: Sequence[str]
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A new server key and a certificate for ``hosts`` signed by ``ca`` (serverAuth).

    Parameters
    ----------
    ca : CertificateAuthority
        The consortium's CA.
    hosts : sequence of str
        DNS names or IP addresses banks and the operator dial; 127.0.0.1 and
        localhost are always added.
    """
    key = ec.generate_private_key(_CURVE)
    common_name = next((h for h in hosts if h not in _UNSPECIFIED), "localhost")
    start = _now() - dt.timedelta(minutes=5)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=SERVER_VALIDITY_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.SubjectAlternativeName(subject_alternative_names(hosts)), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
        .sign(ca.key, hashes.SHA384())
    )
    return key, certificate


def write_private_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    """Write ``key`` as unencrypted PKCS#8 PEM, created with mode 0600 (never overwrites)."""
    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write_new(path, data, mode=0o600)


def write_certificate(certificate: x509.Certificate, path: Path) -> None:
    """Write ``certificate`` as PEM (mode 0644, never overwrites)."""
    _write_new(path, certificate.public_bytes(serialization.Encoding.PEM), mode=0o644)


def load_certificate(path: Path) -> x509.Certificate:
    """Read a PEM certificate; ConfigError naming the file if it is missing or not PEM."""
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except OSError as exc:
        raise ConfigError(f"cannot read certificate ({exc.strerror})", source=str(path)) from exc
    except ValueError as exc:
        raise ConfigError("not a PEM certificate", source=str(path)) from exc


def _write_new(path: Path, data: bytes, *, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError as exc:
        raise ConfigError("already exists; refusing to overwrite it", source=str(path)) from exc
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
    os.chmod(path, mode)  # the umask may have narrowed it
