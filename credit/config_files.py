"""Configuration in, typed model out: the one way fedcredit reads its settings.

Every configuration fedcredit takes (``consortium.toml``, a bank's ``bundle.toml``,
a simulation's budget file, command-line flags, Flower's ``run_config``) becomes a
frozen pydantic model, and every problem becomes one :class:`~credit.errors.ConfigError`
line naming where it came from (the file, flag or config) and the first bad key::

    /srv/c/consortium.toml: 'run.rounds': Input should be greater than or equal to 1; got 0
    /srv/c/consortium.toml: 'colour': unknown key
    bundle/bundle.toml: not valid TOML (Expected '=' after a key ... (at line 3, column 5))
    budgets.toml: file not found; pass an existing TOML file

:func:`load_toml_model` reads a TOML file into a model; :func:`validate_fields`
validates fields that were already parsed (flags, Flower's run config), optionally
naming keys as the user spelled them (``num-server-rounds``, not ``rounds``);
:func:`read_toml` is the reading half on its own, for callers that also need the
file's bytes (the consortium hashes its config).
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from credit.errors import ConfigError

__all__ = ["TomlFile", "first_problem", "load_toml_model", "read_toml", "validate_fields"]

Model = TypeVar("Model", bound=BaseModel)

_SCALARS = (str, int, float, bool)


@dataclass(frozen=True)
class TomlFile:
    """A TOML file as read: where it is, its bytes and its top-level table."""

    path: Path
    data: bytes
    table: dict[str, Any]

    @property
    def sha256(self) -> str:
        """SHA-256 (hex) of the file's bytes."""
        return hashlib.sha256(self.data).hexdigest()


def read_toml(path: Path, *, if_missing: str = "pass an existing TOML file") -> TomlFile:
    """Read and parse the TOML file ``path``.

    Parameters
    ----------
    path : pathlib.Path
        The file.
    if_missing : str
        What the user should do when the file does not exist; appended to
        "file not found".

    Raises
    ------
    ConfigError
        The file does not exist, cannot be read, is not UTF-8 or is not valid TOML;
        one line naming the file.
    """
    source = str(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"file not found; {if_missing}", source=source) from None
    except OSError as exc:
        raise ConfigError(f"cannot read ({exc.strerror or exc})", source=source) from exc
    try:
        table = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"not valid TOML (not UTF-8 text: byte {exc.start})", source=source
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML ({_one_line(str(exc))})", source=source) from exc
    return TomlFile(path=path, data=data, table=table)


def load_toml_model(
    model: type[Model], path: Path, *, if_missing: str = "pass an existing TOML file"
) -> Model:
    """Read the TOML file ``path`` into ``model``.

    Raises
    ------
    ConfigError
        As :func:`read_toml`, or the contents break a rule of ``model``: one line
        naming the file and the first bad key ("unknown key" for keys the model
        does not have).
    """
    return validate_fields(model, read_toml(path, if_missing=if_missing).table, source=str(path))


def validate_fields(
    model: type[Model],
    fields: Mapping[str, Any],
    *,
    source: str,
    spelled: Mapping[str, str] | None = None,
) -> Model:
    """Validate already-parsed ``fields`` (flags, a run config, a TOML table) into ``model``.

    Parameters
    ----------
    model : type
        The pydantic model (frozen, ``extra="forbid"``).
    fields : mapping
        Field values keyed by field name (or alias).
    source : str
        Where the fields come from, named first in the error (a file, a command,
        ``"run config"``).
    spelled : mapping, optional
        Field name -> the key as the user wrote it (``{"rounds":
        "num-server-rounds"}``), so the error names the user's key.

    Raises
    ------
    ConfigError
        One line: ``source: 'key': what is wrong[; got value]``.
    """
    try:
        return model.model_validate(dict(fields))
    except ValidationError as exc:
        raise ConfigError(first_problem(exc, spelled=spelled), source=source) from exc


def first_problem(exc: ValidationError, *, spelled: Mapping[str, str] | None = None) -> str:
    """The first error of a pydantic validation as one line: ``'key': what is wrong``.

    Extra keys read "unknown key"; a scalar input the message does not already
    quote is appended as ``; got VALUE``; ``spelled`` renames the first part of
    the key (see :func:`validate_fields`).
    """
    first = exc.errors()[0]
    parts = [str(part) for part in first["loc"]]
    if parts and spelled:
        parts[0] = spelled.get(parts[0], parts[0])
    key = ".".join(parts)
    if first["type"] == "extra_forbidden":
        message = "unknown key"
    else:
        message = str(first["msg"]).removeprefix("Value error, ")
        value = first.get("input")
        if parts and isinstance(value, _SCALARS) and "got" not in message:
            message += f"; got {value!r}"
    message = _one_line(message)
    return f"'{key}': {message}" if key else message


def _one_line(text: str) -> str:
    return " ".join(text.split())
