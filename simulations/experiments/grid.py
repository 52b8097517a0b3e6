"""A grid file: fixed options and lists to vary, expanded to runs with a stable hash each.

Format (TOML)::

    [fixed]                 # options every run sets
    rounds = 10
    model = "logreg"

    [vary]                  # one run per combination of these lists
    epsilon = [0.5, 1, "none"]
    seed = [0, 1, 2]

Keys are ``fedcredit simulate``'s options spelled as their flags without the leading
dashes, ``-`` or ``_`` alike (``local-epochs``, ``local_epochs``). ``"none"`` sets an
option whose default is none to none (``epsilon = "none"``: the run without DP).
Relative paths are read from the grid file's folder. A ``[vary]`` key that is not an
option and lists tables varies several options together (one point per table)::

    setup = [{model = "logreg", encoding = "binned"},
             {model = "mlp", encoding = "standardized"}]

Runs come in a stable order: the product of the ``[vary]`` lists in the file's order,
the first key varying slowest. Each run's hash is the first 12 hex digits of the
SHA-256 of its canonical options: every option whose validated value differs from the
command's default, as JSON with sorted keys. The same run has the same hash whatever
the order or spelling of the file's keys (and whether a default is written out), a
different one if any option differs; an option added to the command later leaves
the hashes of existing runs alone (a run that does not set it does what it did).
Changing a default of the command does not change the hashes of the runs that rely
on it: after such an upgrade, start a new experiment folder.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from credit.config_files import first_problem
from credit.errors import ConfigError
from simulations.experiments.options import OptionSpace, is_path_type

__all__ = ["HASH_DIGITS", "Grid", "GridRun", "expand_grid", "load_grid", "run_hash"]

HASH_DIGITS = 12
"""Hex digits of a run's hash (48 bits: collisions negligible for any grid)."""

_TABLES = ("fixed", "vary")


@dataclass(frozen=True)
class GridRun:
    """One run of a grid.

    Attributes
    ----------
    hash : str
        Stable short hash of ``options``.
    options : dict
        Every option of the command, validated, as JSON values (the canonical form).
    given : dict
        The options the grid sets for this run (``[fixed]`` and this run's ``[vary]``
        values), as JSON values: what the run passes on the command line.
    varied : dict
        This run's ``[vary]`` values, in the file's key order.
    """

    hash: str
    options: dict[str, Any]
    given: dict[str, Any]
    varied: dict[str, Any]


@dataclass(frozen=True)
class Grid:
    """A loaded grid file: its runs in order and the options it varies."""

    path: Path
    varied: tuple[str, ...]
    runs: tuple[GridRun, ...]


def load_grid(path: Path, space: OptionSpace) -> Grid:
    """Read, validate and expand the grid file at ``path`` against ``space``.

    Raises
    ------
    ConfigError
        One line naming the file and the key: unreadable or invalid TOML, an unknown
        table or option, a value the option refuses, an empty or repeated list.
    """
    return expand_grid(_read_toml(path), path, space)


def expand_grid(document: Mapping[str, Any], path: Path, space: OptionSpace) -> Grid:
    """Validate and expand a grid ``document`` (a parsed grid file) against ``space``.

    ``path`` is the grid's file (relative paths are read from its folder; errors name
    it). A benchmark that narrows an example grid (fewer seeds) edits the parsed
    document and expands it here.

    Raises
    ------
    ConfigError
        As :func:`load_grid`.
    """
    for key in document.keys() - set(_TABLES):
        raise ConfigError(
            f"'{key}': unknown table; a grid has [fixed] and [vary]", source=str(path)
        )
    fixed = _options(_table(document, "fixed", path), "[fixed]", path, space)
    axes = {
        key: _axis(key, values, path, space)
        for key, values in _table(document, "vary", path).items()
    }
    varied = _varied(fixed, axes, path)
    _check_values(fixed, path, space, where="[fixed]")
    for key, axis in axes.items():
        _check_axis(key, axis, fixed, path, space)
    runs = [
        _run(fixed, combination, varied, path, space)
        for combination in itertools.product(*axes.values())
    ]
    return Grid(path=path, varied=tuple(varied), runs=tuple(runs))


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read the grid file ({exc.strerror})", source=str(path)) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML ({exc})", source=str(path)) from exc
    return document


def _table(document: Mapping[str, Any], table: str, path: Path) -> dict[str, Any]:
    raw = document.get(table, {})
    if not isinstance(raw, dict):
        raise ConfigError(f"'{table}' must be a table ([{table}])", source=str(path))
    return raw


def _options(raw: Mapping[str, Any], where: str, path: Path, space: OptionSpace) -> dict[str, Any]:
    """``raw`` with option names normalised (``-`` -> ``_``), each a known option."""
    options: dict[str, Any] = {}
    for key, value in raw.items():
        name = key.replace("-", "_")
        if name not in space.model.model_fields:
            raise ConfigError(
                f"{where} '{key}': not an option a grid can set; see `fedcredit simulate "
                "--help` (out, dashboard, dashboard-port and folds are the runner's)",
                source=str(path),
            )
        if name in options:
            raise ConfigError(f"{where} '{key}': set twice", source=str(path))
        options[name] = value
    return options


def _axis(key: str, values: Any, path: Path, space: OptionSpace) -> list[dict[str, Any]]:
    """A ``[vary]`` list as the settings of each of its points.

    ``epsilon = [1, 2]`` is ``[{"epsilon": 1}, {"epsilon": 2}]``; a key that is not an
    option and lists tables is a bundle of options varied together:
    ``setup = [{model = "logreg", encoding = "binned"}, {model = "mlp", ...}]``.
    """
    if not isinstance(values, list) or not values:
        raise ConfigError(
            f"[vary] '{key}': must be a non-empty list; got {values!r}", source=str(path)
        )
    if all(isinstance(value, dict) for value in values) and key.replace("-", "_") not in (
        space.model.model_fields
    ):
        return [_options(value, f"[vary] '{key}':", path, space) for value in values]
    name = next(iter(_options({key: None}, "[vary]", path, space)))
    return [{name: value} for value in values]


def _varied(
    fixed: Mapping[str, Any], axes: Mapping[str, list[dict[str, Any]]], path: Path
) -> list[str]:
    """The options the axes vary, in file order; each set in one place only."""
    varied: list[str] = []
    for key, axis in axes.items():
        for name in dict.fromkeys(name for point in axis for name in point):
            if name in fixed or name in varied:
                raise ConfigError(
                    f"[vary] '{key}': sets '{name}', also set elsewhere in the grid; keep one",
                    source=str(path),
                )
            varied.append(name)
    return varied


def _check_axis(
    key: str, axis: list[dict[str, Any]], fixed: Mapping[str, Any], path: Path, space: OptionSpace
) -> None:
    """Each point of a ``[vary]`` axis is valid, and none is listed twice."""
    bundle = any(list(point) != [key.replace("-", "_")] for point in axis)
    where = f"[vary] '{key}':" if bundle else "[vary]"
    seen: list[dict[str, Any]] = []
    for point in axis:
        validated = _check_values({**fixed, **point}, path, space, where=where)
        canonical = {name: validated[name] for name in point}
        if canonical in seen:
            value = point if len(point) > 1 else next(iter(point.values()))
            raise ConfigError(f"[vary] '{key}': {value!r} is listed twice", source=str(path))
        seen.append(canonical)


def _check_values(
    given: Mapping[str, Any], path: Path, space: OptionSpace, *, where: str
) -> dict[str, Any]:
    """Validate ``given`` (with the defaults); the canonical JSON form of every option."""
    fields = space.model.model_fields
    values = {
        name: _resolved(value, fields[name].annotation, fields[name].default is None, path)
        for name, value in given.items()
    }
    try:
        validated = space.model.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(f"{where} {first_problem(exc)}", source=str(path)) from exc
    return validated.model_dump(mode="json")


def _resolved(value: Any, kind: Any, optional: bool, path: Path) -> Any:
    """``"none"`` for an option whose default is none; relative paths from the grid's folder."""
    if optional and value == "none":
        return None
    if is_path_type(kind):
        folder = path.resolve().parent
        if isinstance(value, str):
            return str(folder / value)
        if isinstance(value, list):
            return [str(folder / item) if isinstance(item, str) else item for item in value]
    return value


def _run(
    fixed: Mapping[str, Any],
    combination: tuple[dict[str, Any], ...],
    varied: list[str],
    path: Path,
    space: OptionSpace,
) -> GridRun:
    given = dict(fixed)
    for point in combination:
        given |= point
    options = _check_values(given, path, space, where="[vary]")
    return GridRun(
        hash=run_hash(options, space.defaults()),
        options=options,
        given={name: options[name] for name in given},
        varied={name: options[name] for name in varied},
    )


def run_hash(options: Mapping[str, Any], defaults: Mapping[str, Any]) -> str:
    """The stable hash of a run's validated ``options`` (see the module docstring)."""
    changed = {name: value for name, value in options.items() if value != defaults[name]}
    canonical = json.dumps(changed, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:HASH_DIGITS]
