"""The edge proxy: the only door partner banks get, serving Flower's Fleet API alone.

Flower 1.41 serves the Fleet, Control and Runtime APIs and the OpenAPI pages on one
port, and in its open-source build the Control and Runtime APIs take no credentials:
whoever reaches that port can register nodes and submit runs every bank would
execute. So the SuperLink binds loopback (or an admin network) and nginx, a
maintained server from the distribution's packages, faces the banks:

- it terminates TLS with the consortium's server certificate;
- it forwards ``/v1/fleet/*`` (POST) and ``/health`` (GET) to the SuperLink over TLS,
  verifying the SuperLink's certificate against the consortium CA;
- it answers every other path with 403 and :data:`REFUSAL`.

SuperNode authentication travels in request headers (``flwr-public-key``,
``flwr-timestamp``, ``flwr-signature``; plus ``flwr-package-*`` and
``flwr-component-name`` for version checks): nginx forwards all request headers,
and these use hyphens only, so ``underscores_in_headers`` is not needed. SuperNodes
speak HTTP/1.1 (httpx without HTTP/2); every Fleet call is a unary POST, so no
streaming settings are needed.

The rendered file is self-contained: run it with ``nginx -p DIR/edge -e
DIR/edge/logs/error.log -c DIR/edge/nginx.conf``; pid, logs and temporary files stay
in ``DIR/edge`` and nothing needs root. Started as root, nginx runs its workers as
``nobody``; request bodies and responses are kept in memory, so workers write no files.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import subprocess
from pathlib import Path

from coordinator.ops.consortium import Consortium
from credit.errors import ConfigError

__all__ = [
    "REFUSAL",
    "EdgeFiles",
    "nginx_binary",
    "nginx_command",
    "render_nginx_conf",
    "test_nginx_config",
    "write_edge_config",
]

REFUSAL = "fedcredit edge: only the Fleet API is served here"
"""The body of the edge's 403 answer to everything but the Fleet API and /health."""

MAX_BODY = "64m"
"""Largest request body: model parameters travel in push-object requests."""

NGINX_LOCATIONS = (Path("/usr/sbin/nginx"), Path("/usr/local/sbin/nginx"))
"""Where Debian and source builds put nginx when ``sbin`` is not on PATH."""

_TEMP_KINDS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


class EdgeFiles:
    """Where the edge's configuration, pid, logs and temporary files live."""

    def __init__(self, consortium: Consortium) -> None:
        self.config = consortium.paths.edge_config
        self.prefix = self.config.parent

    @property
    def pid(self) -> Path:
        return self.prefix / "nginx.pid"

    @property
    def logs(self) -> Path:
        return self.prefix / "logs"

    @property
    def error_log(self) -> Path:
        return self.logs / "error.log"

    @property
    def access_log(self) -> Path:
        return self.logs / "access.log"

    @property
    def temp(self) -> Path:
        return self.prefix / "tmp"


def _listen(host: str, port: int) -> str:
    shown = f"[{host.strip('[]')}]" if ":" in host else host
    return f"{shown}:{port}"


def _user_directive() -> str:
    """``user nobody <its group>;`` when started as root, so workers drop privileges.

    Unprivileged, nginx runs every process as the invoking user and needs no directive.
    """
    if os.geteuid() != 0:
        return ""
    try:
        nobody = pwd.getpwnam("nobody")
        group = grp.getgrgid(nobody.pw_gid).gr_name
    except KeyError:
        return ""
    return f"user nobody {group};\n"


def render_nginx_conf(consortium: Consortium) -> str:
    """The nginx configuration of ``consortium``'s edge (see the module docstring)."""
    config = consortium.config
    paths = consortium.paths
    files = EdgeFiles(consortium)
    upstream = f"https://{consortium.superlink_dial_host}:{config.superlink_port}"
    temp_paths = "\n".join(f"    {kind}_temp_path {files.temp / kind};" for kind in _TEMP_KINDS)
    user = _user_directive()
    return f"""\
# fedcredit edge proxy for consortium '{config.name}'.
# Written by fedcredit from {paths.config_file}; `fedcredit coordinator start` rewrites it.
# Partner banks reach only the Fleet API (/v1/fleet/*) and /health; all else gets 403.
{user}worker_processes 1;
daemon off;
pid {files.pid};
error_log {files.error_log} notice;

events {{
    worker_connections 512;
}}

http {{
    access_log {files.access_log};
{temp_paths}
    server_tokens off;
    default_type text/plain;
    client_max_body_size {MAX_BODY};
    # Bodies and responses stay in memory: no temporary files the workers must write.
    client_body_buffer_size {MAX_BODY};
    proxy_max_temp_file_size 0;

    server {{
        listen {_listen(config.edge_host, config.edge_port)} ssl;
        ssl_certificate {paths.server_cert};
        ssl_certificate_key {paths.server_key};
        ssl_protocols TLSv1.2 TLSv1.3;

        # Re-encrypt to the SuperLink and check its certificate (DNS SAN localhost).
        proxy_http_version 1.1;
        proxy_ssl_trusted_certificate {paths.ca_cert};
        proxy_ssl_verify on;
        proxy_ssl_verify_depth 2;
        proxy_ssl_name localhost;
        proxy_ssl_server_name on;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_read_timeout 300s;
        proxy_send_timeout 300s;

        # The Fleet API. proxy_pass with a URI forwards the normalised path, so
        # dot segments and encoded slashes cannot step out of /v1/fleet/.
        location /v1/fleet/ {{
            limit_except POST {{ deny all; }}
            proxy_pass {upstream}/v1/fleet/;
        }}

        location = /health {{
            limit_except GET {{ deny all; }}
            proxy_pass {upstream}/health;
        }}

        # Control API, Runtime API, /docs, /openapi.json and anything else.
        location / {{
            return 403 "{REFUSAL}\\n";
        }}
    }}
}}
"""


def write_edge_config(consortium: Consortium) -> Path:
    """Render the edge config into ``DIR/edge/nginx.conf`` and make its folders."""
    files = EdgeFiles(consortium)
    files.logs.mkdir(parents=True, exist_ok=True)
    for kind in _TEMP_KINDS:
        (files.temp / kind).mkdir(parents=True, exist_ok=True)
    files.config.write_text(render_nginx_conf(consortium), encoding="utf-8")
    return files.config


def nginx_binary() -> Path:
    """The nginx executable; ConfigError saying how to install it when missing."""
    found = shutil.which("nginx") or next((str(p) for p in NGINX_LOCATIONS if p.is_file()), None)
    if found is None:
        raise ConfigError(
            "nginx is not installed; the edge proxy needs it: "
            "`apt-get install -y nginx` (Debian/Ubuntu)"
        )
    return Path(found)


def nginx_command(consortium: Consortium, *extra: str) -> list[str]:
    """``nginx -p DIR/edge -e DIR/edge/logs/error.log -c DIR/edge/nginx.conf [extra]``."""
    files = EdgeFiles(consortium)
    return [
        str(nginx_binary()),
        "-p",
        f"{files.prefix}/",
        "-e",
        str(files.error_log),
        "-c",
        str(files.config),
        *extra,
    ]


def test_nginx_config(consortium: Consortium) -> None:
    """Run ``nginx -t`` on the edge config; ConfigError with nginx's complaint in one line."""
    result = subprocess.run(
        nginx_command(consortium, "-t", "-q"),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if "[emerg]" in line]
        detail = (lines or result.stderr.strip().splitlines() or ["no output"])[0]
        raise ConfigError(
            f"nginx rejects the edge config: {detail.removeprefix('nginx: ')}",
            source=str(EdgeFiles(consortium).config),
        )
