"""Running the service under uvicorn: TLS, mutual TLS and the listening socket.

:func:`uvicorn_config` turns the settings into uvicorn's: the certificate and key
(``--tls-cert``, ``--tls-key``), and with ``--client-ca`` a client certificate is
required (``ssl.CERT_REQUIRED``) and must chain to that CA: a client without one
fails the TLS handshake before HTTP starts. uvicorn's access log is off: the
service's own request and decision log (:mod:`serving.decision_log`) says what
happened without the client's address.

:func:`serve` runs until interrupted (``fedcredit serve``); :class:`ServiceThread`
runs a service in a background thread of this process (tests and benchmarks) and
tells which port it got.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from types import TracebackType

import uvicorn
from fastapi import FastAPI

from credit.errors import OperationFailed
from serving.settings import ServiceSettings

__all__ = ["ServiceThread", "serve", "uvicorn_config"]

SERVICE_LOGGER = "fedcredit.serve"
STARTUP_TIMEOUT = 30.0
"""Seconds :class:`ServiceThread` waits for the server to listen."""


def uvicorn_config(
    app: FastAPI, settings: ServiceSettings, *, log_level: str = "info"
) -> uvicorn.Config:
    """uvicorn's configuration of the service (module docstring); ``log_level`` is
    uvicorn's own (start-up, shutdown, errors)."""
    tls: dict[str, object] = {}
    if settings.tls_cert is not None and settings.tls_key is not None:
        tls = {"ssl_certfile": str(settings.tls_cert), "ssl_keyfile": str(settings.tls_key)}
    if settings.client_ca is not None:
        tls |= {"ssl_ca_certs": str(settings.client_ca), "ssl_cert_reqs": ssl.CERT_REQUIRED}
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        ws="none",  # no websocket routes (and no import of websockets' legacy module)
        access_log=False,
        server_header=False,
        log_level=log_level,
        **tls,  # type: ignore[arg-type]
    )


def serve(app: FastAPI, settings: ServiceSettings) -> None:
    """Serve ``app`` until interrupted (Ctrl-C or SIGTERM stop it gracefully).

    The service's own log lines (drift warnings) go to standard error with uvicorn's.
    """
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    service_logger = logging.getLogger(SERVICE_LOGGER)
    service_logger.addHandler(handler)
    service_logger.setLevel(logging.INFO)
    uvicorn.Server(uvicorn_config(app, settings)).run()


class ServiceThread:
    """A service running in a background thread: ``with ServiceThread(app, s) as url:``.

    The context gives the base URL (``http://127.0.0.1:PORT`` or ``https://...``) once
    the server listens; leaving it stops the server and joins the thread.
    """

    def __init__(self, app: FastAPI, settings: ServiceSettings) -> None:
        self.server = uvicorn.Server(uvicorn_config(app, settings, log_level="warning"))
        self.settings = settings
        self._thread = threading.Thread(target=self.server.run, name="fedcredit-serve")

    def __enter__(self) -> str:
        self._thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.server.should_exit = True
                raise OperationFailed("the scoring service did not start listening")
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        scheme = "https" if self.settings.tls else "http"
        return f"{scheme}://{self.settings.host}:{port}"

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=STARTUP_TIMEOUT)
