"""The service's settings, parsed once at the edge (``fedcredit serve``'s flags).

Security settings fail loudly, never fall back to a weaker mode:

* plain HTTP only on a loopback address (``127.0.0.1``, ``::1``, ``localhost``); any
  other host needs ``--tls-cert`` and ``--tls-key``;
* ``--tls-cert`` and ``--tls-key`` go together and must be readable PEM files;
* ``--client-ca`` (mutual TLS: a client must present a certificate this CA signed)
  needs TLS;
* ``--token-file``: a file holding the API token (one line, at least
  :data:`MIN_TOKEN_CHARS` characters); every endpoint but ``/healthz`` then wants
  ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import ipaddress
import ssl
from pathlib import Path
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from credit.config_files import first_problem
from credit.governance.stability import DEFAULT_QUANTILE
from serving.applicants import DEFAULT_MAX_BATCH
from serving.drift import DEFAULT_DRIFT_EVERY, DEFAULT_DRIFT_MIN_ROWS
from serving.errors import ServiceRefused

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_PORT",
    "MIN_TOKEN_CHARS",
    "ServiceSettings",
    "is_loopback",
    "read_token",
]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_MAX_BODY_BYTES = 1_048_576
"""1 MiB: a full batch of 1,000 applicants of the embedded schema is about 600 kB."""
MIN_TOKEN_CHARS = 32
"""An API token shorter than this is refused (e.g. ``openssl rand -hex 32``)."""


_FLAGS = {
    name: "--" + name.replace("_", "-")
    for name in ("host", "port", "cutoff", "max_batch", "drift_every", "drift_min_rows")
} | {"max_body_bytes": "--max-body", "drift_quantile": "--quantile", "log_path": "--log"}


def is_loopback(host: str) -> bool:
    """Whether ``host`` names only this machine (``localhost`` or a loopback address)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_token(path: Path) -> SecretStr:
    """The API token in ``path`` (surrounding whitespace stripped).

    Raises
    ------
    ServiceRefused
        The file is unreadable, or the token is shorter than :data:`MIN_TOKEN_CHARS`
        or spans several lines.
    """
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ServiceRefused(
            f"cannot read the token file {path} ({exc})", source="--token-file"
        ) from None
    if len(text) < MIN_TOKEN_CHARS or any(c.isspace() for c in text):
        raise ServiceRefused(
            f"{path} must hold one token of at least {MIN_TOKEN_CHARS} characters without "
            "spaces (e.g. the output of `openssl rand -hex 32`)",
            source="--token-file",
        )
    return SecretStr(text)


def _readable(path: Path | None, flag: str) -> None:
    if path is not None and not path.is_file():
        raise ServiceRefused(f"{path} is not a readable file", source=flag)


class ServiceSettings(BaseModel):
    """How ``fedcredit serve`` listens, guards and logs (module docstring).

    Parameters
    ----------
    host : str, default 127.0.0.1
        Address to bind; a non-loopback one needs TLS.
    port : int, default 8000
        TCP port (0: any free port, for tests).
    cutoff : float, optional
        Decline when the probability of default is at least this, in (0, 1); the
        package's cut-off when omitted.
    tls_cert, tls_key : pathlib.Path, optional
        The server's certificate chain and private key (PEM), together.
    client_ca : pathlib.Path, optional
        CA certificate(s) (PEM) a client certificate must chain to (mutual TLS).
    token : pydantic.SecretStr, optional
        The API token clients send as ``Authorization: Bearer``; never logged.
    log_path : pathlib.Path, optional
        Append the request and decision log (JSON lines) to this file; standard
        output when omitted.
    log_features : bool, default False
        Also log each applicant's raw fields (off: no applicant data in the log).
    max_batch : int, default 1,000
        Applicants one request may hold.
    max_body_bytes : int, default 1 MiB
        Larger request bodies are refused (413) before they are read whole.
    drift_every : int, default 100
        Scoring requests between two drift comparisons.
    drift_min_rows : int, default 100
        Applicants counted before the first drift comparison.
    drift_quantile : float, default 0.99
        The drift flag's quantile, as ``fedcredit monitor --quantile``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = DEFAULT_HOST
    port: int = Field(default=DEFAULT_PORT, ge=0, le=65_535)
    cutoff: float | None = Field(default=None, gt=0.0, lt=1.0)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    client_ca: Path | None = None
    token: SecretStr | None = None
    log_path: Path | None = None
    log_features: bool = False
    max_batch: int = Field(default=DEFAULT_MAX_BATCH, ge=1)
    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, ge=1_024)
    drift_every: int = Field(default=DEFAULT_DRIFT_EVERY, ge=1)
    drift_min_rows: int = Field(default=DEFAULT_DRIFT_MIN_ROWS, ge=1)
    drift_quantile: float = Field(default=DEFAULT_QUANTILE, gt=0.0, lt=1.0)

    @classmethod
    def build(cls, **fields: object) -> ServiceSettings:
        """Validated settings from the command line's values.

        Raises
        ------
        ServiceRefused
            A value breaks a rule (module docstring); the message names the flag.
        """
        try:
            return cls.model_validate(fields)
        except ValidationError as exc:
            cause = exc.errors()[0].get("ctx", {}).get("error")
            if isinstance(cause, ServiceRefused):
                raise ServiceRefused(cause.problem, source=cause.source) from None
            raise ServiceRefused(first_problem(exc, spelled=_FLAGS)) from None

    def _check_pem(self) -> None:
        """Load the certificate, key and client CA once, so a bad file is one line here
        and not a traceback at start-up."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        if self.tls_cert is not None and self.tls_key is not None:
            try:
                context.load_cert_chain(self.tls_cert, self.tls_key)
            except (ssl.SSLError, OSError) as exc:
                raise ServiceRefused(
                    f"{self.tls_cert} and {self.tls_key} are not a PEM certificate and its "
                    f"private key ({exc})",
                    source="--tls-cert",
                ) from None
        if self.client_ca is not None:
            try:
                context.load_verify_locations(cafile=self.client_ca)
            except (ssl.SSLError, OSError) as exc:
                raise ServiceRefused(
                    f"{self.client_ca} holds no PEM CA certificate ({exc})", source="--client-ca"
                ) from None

    @property
    def tls(self) -> bool:
        """Whether the service speaks HTTPS."""
        return self.tls_cert is not None

    @model_validator(mode="after")
    def _secure_enough(self) -> Self:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ServiceRefused(
                "--tls-cert and --tls-key go together: give both or neither",
                source="--tls-key" if self.tls_key is None else "--tls-cert",
            )
        _readable(self.tls_cert, "--tls-cert")
        _readable(self.tls_key, "--tls-key")
        _readable(self.client_ca, "--client-ca")
        self._check_pem()
        if self.client_ca is not None and not self.tls:
            raise ServiceRefused(
                "mutual TLS needs TLS: give --tls-cert and --tls-key too", source="--client-ca"
            )
        if not self.tls and not is_loopback(self.host):
            raise ServiceRefused(
                f"plain HTTP is served on loopback only; to listen on {self.host} give "
                "--tls-cert and --tls-key",
                source="--host",
            )
        return self
