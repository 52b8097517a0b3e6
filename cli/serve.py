"""``fedcredit serve``: the bank's scoring service for a signed model package.

Verifies the package first (a package that fails verification: one line, exit 2,
nothing started), then serves ``POST /v1/score``, ``GET /v1/model``, ``GET /healthz``
and ``GET /metrics`` (:mod:`serving`) until interrupted. Plain HTTP only on loopback;
any other host needs ``--tls-cert`` and ``--tls-key``.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated

import typer

from cli.console import fail_cleanly, say, say_pairs

__all__ = ["serve"]

Model = Annotated[
    Path, typer.Option(help="The model package: a run's model/ folder (verified before use).")
]
Signer = Annotated[
    Path | None,
    typer.Option(
        help="Pin the signer: the consortium's audit public key (PEM .pub); default: the key "
        "the manifest names."
    ),
]
Host = Annotated[str, typer.Option(help="Address to listen on; other than loopback only with TLS.")]
Port = Annotated[int, typer.Option(min=0, max=65_535, help="TCP port.")]
Cutoff = Annotated[
    float | None,
    typer.Option(help="Decline when the probability of default >= this; default: the package's."),
]
TlsCert = Annotated[
    Path | None, typer.Option(help="Server certificate chain (PEM): the consortium's or your own.")
]
TlsKey = Annotated[Path | None, typer.Option(help="The certificate's private key (PEM).")]
ClientCa = Annotated[
    Path | None,
    typer.Option(help="Mutual TLS: require a client certificate signed by this CA (PEM)."),
]
TokenFile = Annotated[
    Path | None,
    typer.Option(
        help="Require 'Authorization: Bearer <token>' (the token in this file, >= 32 "
        "characters) on every endpoint but /healthz."
    ),
]
Log = Annotated[
    Path | None,
    typer.Option(
        help="Append the request and decision log (JSON lines) here; default: standard output."
    ),
]
LogFeatures = Annotated[
    bool,
    typer.Option(help="Also log the applicants' raw fields (off: no applicant data is logged)."),
]
DriftEvery = Annotated[
    int, typer.Option(min=1, help="Scoring requests between two drift comparisons.")
]


def serve(
    model: Model,
    signer: Signer = None,
    host: Host = "127.0.0.1",
    port: Port = 8000,
    cutoff: Cutoff = None,
    tls_cert: TlsCert = None,
    tls_key: TlsKey = None,
    client_ca: ClientCa = None,
    token_file: TokenFile = None,
    log: Log = None,
    log_features: LogFeatures = False,
    drift_every: DriftEvery = 100,
) -> None:
    """Score applicants over HTTP with a verified model package (until Ctrl-C)."""
    with fail_cleanly():
        from credit.audit import load_public_key
        from credit.package import load_package
        from serving import ServiceSettings, create_app, read_token

        settings = ServiceSettings.build(
            host=host,
            port=port,
            cutoff=cutoff,
            tls_cert=tls_cert,
            tls_key=tls_key,
            client_ca=client_ca,
            token=None if token_file is None else read_token(token_file),
            log_path=log,
            log_features=log_features,
            drift_every=drift_every,
        )
        pinned = None if signer is None else load_public_key(signer)
        package = load_package(model, signer=pinned)
        app = create_app(package, settings)
    service = app.state.service
    scheme = "https" if settings.tls else "http"
    say(f"fedcredit serve: {scheme}://{host}:{port} (OpenAPI docs at /docs)")
    say_pairs(
        [
            ("package", f"{package.digest} (verified)"),
            ("signer", package.manifest.signer.fingerprint + (" (pinned)" if pinned else "")),
            ("run", package.manifest.run),
            ("cut-off", f"{service.cutoff:g}"),
            ("TLS", _tls_text(settings.tls, client_ca)),
            ("API token", "required" if token_file is not None else "off"),
            (
                "decision log",
                f"{log or 'standard output'}"
                + (", with raw fields" if log_features else ", no raw fields"),
            ),
            (
                "drift",
                "on"
                if service.drift is not None
                else f"off: {package.scoring.development_missing}",
            ),
        ]
    )
    from serving import serve as run_service

    with contextlib.suppress(KeyboardInterrupt):  # uvicorn stopped, then re-raised Ctrl-C
        run_service(app, settings)
    say("fedcredit serve: stopped")


def _tls_text(tls: bool, client_ca: Path | None) -> str:
    if not tls:
        return "off (loopback only)"
    return "on, client certificates required (mutual TLS)" if client_ca else "on"
