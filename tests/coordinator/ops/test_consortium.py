"""``coordinator init`` and ``consortium.toml``: the folder, its config and its errors."""

from __future__ import annotations

import hashlib
import stat
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app
from coordinator.ops.consortium import (
    RUN_DEFAULT_FIELDS,
    ConsortiumConfig,
    RunDefaults,
    load_consortium,
)
from coordinator.ops.layout import CONNECTION
from coordinator.ops.provisioning import init_consortium
from credit.errors import ConfigError, SchemaError
from credit.model_spec import ModelKind
from credit.run_config import RunConfig
from credit.schema import embedded_schema_path, load_schema


def _config(**fields: object) -> ConsortiumConfig:
    return ConsortiumConfig.model_validate({"name": "nordic", "hosts": ["fl.example"], **fields})


def test_defaults_and_edge_address() -> None:
    config = _config()
    assert (config.admin_host, config.superlink_port) == ("127.0.0.1", 9092)
    assert (config.edge_host, config.edge_port) == ("0.0.0.0", 9443)
    assert config.edge_address == "fl.example:9443"
    assert config.schema_file == "schema.toml"
    assert (config.run.rounds, config.run.min_banks, config.run.model) == (10, 2, ModelKind.LOGREG)
    assert config.run.secure_aggregation is True
    assert config.privacy is None
    assert _config(edge_port=443).edge_address == "fl.example:443"
    assert _config(edge_address="lb.example:8443").edge_address == "lb.example:8443"


def test_run_defaults_are_run_config_fields() -> None:
    """The [run] keys keep their names; types, defaults and bounds are RunConfig's own."""
    assert RUN_DEFAULT_FIELDS == (
        "rounds", "model", "min_banks", "local_epochs", "local_steps", "batch_size",
        "learning_rate", "secure_aggregation", "secagg_threshold_fraction", "strategy",
        "proximal_mu", "server_learning_rate", "server_momentum", "server_beta1",
        "server_beta2", "server_tau",
    )  # fmt: skip
    assert tuple(RunDefaults.model_fields) == RUN_DEFAULT_FIELDS
    for name in RUN_DEFAULT_FIELDS:
        ours, theirs = RunDefaults.model_fields[name], RunConfig.model_fields[name]
        assert ours.annotation == theirs.annotation, name
        assert ours.default == theirs.default, name
        assert ours.metadata == theirs.metadata, name
    assert RunDefaults().model_dump() == RunConfig().model_dump(include=set(RUN_DEFAULT_FIELDS))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("rounds", 0),
        ("min_banks", 0),
        ("local_epochs", -1),
        ("local_steps", -1),
        ("batch_size", 0),
        ("learning_rate", 0.0),
        ("learning_rate", -0.1),
        ("model", "forest"),
        ("secagg_threshold_fraction", 0.4),
        ("secagg_threshold_fraction", 1.0),
    ],
)
def test_run_defaults_refuse_what_run_config_refuses(name: str, value: object) -> None:
    with pytest.raises(ValueError, match=name):
        RunConfig.model_validate({name: value})
    with pytest.raises(ValueError, match=name):
        RunDefaults.model_validate({name: value})


@pytest.mark.parametrize(
    ("name", "value"),
    [("rounds", 1), ("min_banks", 1), ("batch_size", 1), ("learning_rate", 1e-6)],
)
def test_run_defaults_accept_what_run_config_accepts(name: str, value: object) -> None:
    assert getattr(RunDefaults.model_validate({name: value}), name) == value
    assert getattr(RunConfig.model_validate({name: value}), name) == value


def test_run_defaults_are_frozen_and_closed() -> None:
    defaults = RunDefaults()
    with pytest.raises(ValueError, match="frozen"):
        defaults.rounds = 3
    with pytest.raises(ValueError, match="epochs"):
        RunDefaults.model_validate({"epochs": 3})


def test_init_writes_the_folder(tmp_path: Path) -> None:
    root = tmp_path / "consortium"
    consortium = init_consortium(root, _config(privacy={"max_epsilon": 3.0}))
    paths = consortium.paths
    for path in (
        paths.config_file,
        paths.ca_cert,
        paths.ca_key,
        paths.server_cert,
        paths.server_key,
        paths.edge_config,
        paths.audit_key,
        paths.audit_public_key,
        paths.flwr_home / "config.toml",
    ):
        assert path.is_file(), path
    for key in (paths.ca_key, paths.server_key, paths.audit_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    assert consortium.schema_path.read_bytes() == embedded_schema_path().read_bytes()
    assert consortium.config_sha256 == hashlib.sha256(paths.config_file.read_bytes()).hexdigest()
    again = load_consortium(root)
    assert again.config == consortium.config
    assert again.config.privacy is not None and again.config.privacy.max_epsilon == 3.0


def test_flower_reads_the_connection(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Flower's own parser accepts flwr-home/config.toml and finds the default connection."""
    from flwr.cli.flower_config import read_superlink_connection

    consortium = init_consortium(tmp_path / "c", _config(superlink_port=19092))
    raw = tomllib.loads((consortium.paths.flwr_home / "config.toml").read_text())
    assert raw["superlink"]["default"] == CONNECTION
    monkeypatch.setenv("FLWR_HOME", str(consortium.paths.flwr_home))
    connection = read_superlink_connection(None)
    assert connection.name == CONNECTION
    assert connection.address == "127.0.0.1:19092"
    assert connection.root_certificates == str(consortium.paths.ca_cert)
    assert Path(connection.root_certificates).is_absolute()
    assert connection.insecure is False


def test_init_refuses_an_existing_consortium(tmp_path: Path) -> None:
    init_consortium(tmp_path / "c", _config())
    key = (tmp_path / "c" / "ca" / "ca.key").read_bytes()
    with pytest.raises(ConfigError, match="already holds a consortium"):
        init_consortium(tmp_path / "c", _config())
    assert (tmp_path / "c" / "ca" / "ca.key").read_bytes() == key


def test_init_copies_a_custom_schema_and_refuses_a_broken_one(tmp_path: Path) -> None:
    custom = tmp_path / "mine.toml"
    custom.write_text(embedded_schema_path().read_text().replace("uci-default", "mine-default"))
    consortium = init_consortium(tmp_path / "c", _config(), schema=custom)
    assert load_schema(consortium.schema_path).name == "mine-default-credit-card"
    broken = tmp_path / "broken.toml"
    broken.write_text("name = 1\n")
    with pytest.raises(SchemaError, match=r"broken\.toml"):
        init_consortium(tmp_path / "d", _config(), schema=broken)
    assert not (tmp_path / "d").exists()


def test_missing_folder_names_the_init_command(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"is not a consortium folder.*fedcredit coordinator init"
    ):
        load_consortium(tmp_path / "nothing")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda text: text + "\n[[[", r"consortium\.toml: not valid TOML"),
        (lambda text: "colour = 'red'\n" + text, r"consortium\.toml: 'colour': unknown key"),
        (
            lambda text: text.replace("superlink_port = 19092", "superlink_port = 70000"),
            r"consortium\.toml: 'superlink_port': Input should be less than or equal to 65535",
        ),
        (
            lambda text: text.replace("rounds = 10", "rounds = 0"),
            r"consortium\.toml: 'run\.rounds': Input should be greater than or equal to 1",
        ),
        (
            lambda text: text.replace('model = "logreg"', 'model = "forest"'),
            r"consortium\.toml: 'run\.model': Input should be",
        ),
        (
            lambda text: text.replace("[run]", "[run]\nepochs = 3"),
            r"consortium\.toml: 'run\.epochs': unknown key",
        ),
        (
            lambda text: text.replace('schema = "schema.toml"', 'schema = "../x.toml"'),
            r"consortium\.toml: 'schema' must be a file name inside the consortium folder",
        ),
    ],
)
def test_load_errors_name_file_and_key(tmp_path: Path, edit: object, message: str) -> None:
    consortium = init_consortium(tmp_path / "c", _config(superlink_port=19092))
    config_file = consortium.paths.config_file
    config_file.write_text(edit(config_file.read_text()))  # type: ignore[operator]
    with pytest.raises(ConfigError, match=message) as caught:
        load_consortium(tmp_path / "c")
    assert "\n" not in str(caught.value)


def test_privacy_section_is_validated() -> None:
    with pytest.raises(ValueError, match="delta"):
        _config(privacy={"max_epsilon": 1.0, "delta": 2.0})
    with pytest.raises(ValueError, match="max_epsilon"):
        _config(privacy={"delta": 1e-6})
    with pytest.raises(ValueError, match="max_epsilon"):
        _config(privacy={"max_epsilon": -1.0})


def test_init_command(tmp_path: Path) -> None:
    runner = CliRunner()
    root = tmp_path / "c"
    result = runner.invoke(
        app,
        [
            "coordinator", "init", str(root), "--name", "nordic",
            "--host", "fl.example", "--host", "10.0.0.7",
            "--superlink-port", "19092", "--edge-port", "19443", "--edge-host", "127.0.0.1",
            "--rounds", "4", "--max-epsilon", "2.5",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "banks will dial fl.example:19443" in result.stdout
    config = load_consortium(root).config
    assert config.hosts == ("fl.example", "10.0.0.7")
    assert config.run.rounds == 4
    assert config.privacy is not None and config.privacy.max_epsilon == 2.5
    assert config.edge_host == "127.0.0.1"

    again = runner.invoke(app, ["coordinator", "init", str(root), "--name", "x", "--host", "h"])
    assert again.exit_code == 2
    assert again.stderr.startswith("error: ") and "already holds a consortium" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1


def test_init_command_bad_flag_is_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["coordinator", "init", str(tmp_path / "c"), "--name", "bad name", "--host", "h"],
    )
    assert result.exit_code == 2
    assert result.stderr.startswith("error: fedcredit coordinator init: 'name': String should")
    assert not (tmp_path / "c").exists()
