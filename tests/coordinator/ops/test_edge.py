"""The edge proxy's nginx config: valid for nginx, fleet-only, self-contained."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from coordinator.ops import edge
from coordinator.ops.consortium import Consortium, ConsortiumConfig
from coordinator.ops.provisioning import init_consortium
from credit.errors import ConfigError


@pytest.fixture
def consortium(tmp_path: Path) -> Consortium:
    config = ConsortiumConfig.model_validate(
        {
            "name": "nordic",
            "hosts": ["fl.example"],
            "superlink_port": 19092,
            "edge_host": "127.0.0.1",
            "edge_port": 19443,
        }
    )
    return init_consortium(tmp_path / "c", config)


@pytest.mark.deployment  # runs nginx
def test_rendered_config_passes_nginx_t(consortium: Consortium) -> None:
    edge.test_nginx_config(consortium)


@pytest.mark.deployment  # runs nginx
def test_nginx_t_failure_is_one_line_naming_the_config(consortium: Consortium) -> None:
    consortium.paths.server_cert.unlink()
    with pytest.raises(ConfigError) as caught:
        edge.test_nginx_config(consortium)
    message = str(caught.value)
    assert message.startswith(f"{consortium.paths.edge_config}: nginx rejects the edge config:")
    assert "server.pem" in message
    assert "\n" not in message


def test_only_fleet_and_health_are_forwarded(consortium: Consortium) -> None:
    text = edge.render_nginx_conf(consortium)
    locations = re.findall(r"location ([^{]+)\{", text)
    assert [loc.strip() for loc in locations] == ["/v1/fleet/", "= /health", "/"]
    upstream = "https://127.0.0.1:19092"
    assert re.findall(r"proxy_pass (\S+);", text) == [
        f"{upstream}/v1/fleet/",
        f"{upstream}/health",
    ]
    catch_all = text[text.index("location / {") :]
    assert f'return 403 "{edge.REFUSAL}\\n";' in catch_all
    assert "listen 127.0.0.1:19443 ssl;" in text


def test_superlink_certificate_is_verified(consortium: Consortium) -> None:
    text = edge.render_nginx_conf(consortium)
    assert "proxy_ssl_verify on;" in text
    assert f"proxy_ssl_trusted_certificate {consortium.paths.ca_cert};" in text
    assert "proxy_ssl_name localhost;" in text  # a DNS SAN of the server certificate
    assert f"ssl_certificate {consortium.paths.server_cert};" in text
    assert f"ssl_certificate_key {consortium.paths.server_key};" in text


def test_every_path_stays_in_the_consortium_folder(consortium: Consortium) -> None:
    text = edge.render_nginx_conf(consortium)
    root = str(consortium.paths.root)
    directives = "\n".join(line for line in text.splitlines() if not line.strip().startswith("#"))
    paths = re.findall(r"(?<![\w:/])(/[\w./-]+)", directives)
    file_paths = [p for p in paths if not p.startswith(("/v1/", "/health"))]
    assert file_paths, "expected absolute file paths in the config"
    assert all(p.startswith(root) for p in file_paths), file_paths
    for directive in (
        "pid",
        "error_log",
        "access_log",
        "client_body_temp_path",
        "proxy_temp_path",
        "fastcgi_temp_path",
        "uwsgi_temp_path",
        "scgi_temp_path",
    ):
        assert re.search(rf"^\s*{directive} {re.escape(root)}/edge/", text, re.M), directive
    assert "daemon off;" in text


def test_nginx_command_is_self_contained(consortium: Consortium) -> None:
    command = edge.nginx_command(consortium)
    prefix = str(consortium.paths.edge_config.parent)
    assert command[1:] == [
        "-p",
        f"{prefix}/",
        "-e",
        f"{prefix}/logs/error.log",
        "-c",
        str(consortium.paths.edge_config),
    ]


def test_missing_nginx_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(edge, "NGINX_LOCATIONS", ())
    with pytest.raises(ConfigError, match=r"nginx is not installed.*`apt-get install -y nginx`"):
        edge.nginx_binary()
