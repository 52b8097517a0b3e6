"""TOML file or parsed fields -> frozen pydantic model, or one ConfigError naming file and key."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict, Field

from credit.config_files import load_toml_model, read_toml, validate_fields
from credit.errors import ConfigError


class _Limits(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    ceiling: float = Field(gt=0)
    floor: float = 0.0


class _Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z]+$")
    rounds: int = Field(default=10, ge=1)
    limits: _Limits | None = None


def _load(path: Path, text: str | bytes) -> _Settings:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return load_toml_model(_Settings, path)


def _one_line_error(caught: pytest.ExceptionInfo[ConfigError], path: Path) -> str:
    message = str(caught.value)
    assert "\n" not in message
    assert caught.value.source == str(path)
    assert message.startswith(f"{path}: ")
    return message


def test_a_valid_file_becomes_the_frozen_model(tmp_path: Path) -> None:
    settings = _load(tmp_path / "s.toml", 'name = "nordic"\n[limits]\nceiling = 2.5\n')

    assert settings == _Settings(name="nordic", limits=_Limits(ceiling=2.5))
    with pytest.raises(ValueError, match="frozen"):
        settings.rounds = 3  # type: ignore[misc]


def test_read_toml_keeps_the_bytes_and_their_hash(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text('name = "nordic"\n', encoding="utf-8")

    file = read_toml(path)

    assert file.table == {"name": "nordic"}
    assert file.data == path.read_bytes()
    assert file.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_missing_file_says_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(ConfigError) as caught:
        load_toml_model(_Settings, path, if_missing="run `fedcredit init` first")

    assert _one_line_error(caught, path) == (f"{path}: file not found; run `fedcredit init` first")


def test_unreadable_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "a-folder.toml"
    path.mkdir()  # reading a folder fails for every user, root included
    with pytest.raises(ConfigError) as caught:
        load_toml_model(_Settings, path)

    assert _one_line_error(caught, path).startswith(f"{path}: cannot read (")


def test_invalid_toml_is_named_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    with pytest.raises(ConfigError) as caught:
        _load(path, 'name = "nordic"\n[limits\nceiling = 1\n')

    message = _one_line_error(caught, path)
    assert message.startswith(f"{path}: not valid TOML (")
    assert "line 2" in message


def test_text_that_is_not_utf8_is_invalid_toml(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    with pytest.raises(ConfigError) as caught:
        _load(path, b'name = "n\xe9"\n')

    assert _one_line_error(caught, path).startswith(f"{path}: not valid TOML (not UTF-8")


_NORDIC = 'name = "nordic"\n'
BAD_FILES = [
    (_NORDIC + 'colour = "red"\n', "'colour': unknown key"),
    (_NORDIC + "[limits]\nceiling = 1\nwall = 2\n", "'limits.wall': unknown key"),
    (_NORDIC + "rounds = 0\n", "'rounds': Input should be greater than or equal to 1; got 0"),
    (
        _NORDIC + 'rounds = "many"\n',
        "'rounds': Input should be a valid integer, unable to parse string as an integer; "
        "got 'many'",
    ),
    (
        'name = "Nordic Bank"\n',
        "'name': String should match pattern '^[a-z]+$'; got 'Nordic Bank'",
    ),
    (
        _NORDIC + "[limits]\nceiling = -1\n",
        "'limits.ceiling': Input should be greater than 0; got -1",
    ),
    (_NORDIC + "[limits]\nfloor = 1\n", "'limits.ceiling': Field required"),
    ("rounds = 3\n", "'name': Field required"),
]


@pytest.mark.parametrize(("text", "expected"), BAD_FILES)
def test_first_bad_key_is_named(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "s.toml"
    with pytest.raises(ConfigError) as caught:
        _load(path, text)

    assert _one_line_error(caught, path) == f"{path}: {expected}"


def test_fields_name_their_source_and_the_users_spelling() -> None:
    spelled = {"rounds": "num-server-rounds"}
    with pytest.raises(ConfigError) as caught:
        validate_fields(_Settings, {"name": "x", "rounds": 0}, source="run config", spelled=spelled)

    assert str(caught.value) == (
        "run config: 'num-server-rounds': Input should be greater than or equal to 1; got 0"
    )
    assert caught.value.source == "run config"


def test_nested_keys_keep_their_path_under_the_users_spelling() -> None:
    with pytest.raises(ConfigError) as caught:
        validate_fields(
            _Settings,
            {"name": "x", "limits": {"ceiling": 0}},
            source="fedcredit init",
            spelled={"limits": "budget"},
        )

    assert str(caught.value) == (
        "fedcredit init: 'budget.ceiling': Input should be greater than 0; got 0"
    )


def test_unknown_field_is_an_unknown_key_as_spelled() -> None:
    with pytest.raises(ConfigError) as caught:
        validate_fields(
            _Settings, {"name": "x", "bogus_key": 1}, source="run config",
            spelled={"bogus_key": "bogus-key"},
        )  # fmt: skip

    assert str(caught.value) == "run config: 'bogus-key': unknown key"


def test_a_whole_model_rule_has_no_key() -> None:
    class _Pair(BaseModel):
        model_config = ConfigDict(frozen=True, extra="forbid")
        low: int
        high: int

        def model_post_init(self, context: object) -> None:
            if self.low > self.high:
                raise ValueError(f"low must not exceed high; got {self.low} > {self.high}")

    with pytest.raises(ConfigError) as caught:
        validate_fields(_Pair, {"low": 2, "high": 1}, source="pair.toml")

    assert str(caught.value) == "pair.toml: low must not exceed high; got 2 > 1"


def test_valid_fields_pass_through() -> None:
    assert validate_fields(_Settings, {"name": "x"}, source="flags") == _Settings(name="x")
