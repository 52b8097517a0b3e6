"""The options a grid may set: a pydantic model built from a typer command's signature.

A grid names ``fedcredit simulate`` options by their parameter names (``epsilon``,
``partition``, ``secagg_threshold_fraction``). The command's own signature is the one
source of truth: :func:`option_space` reads each parameter's type, default and typer
``min``/``max`` into a frozen pydantic model (``extra="forbid"``), and its flags as
click parses them (the command typer builds: ``--secure-aggregation`` and
``--no-secure-aggregation``, a declared spelling such as
``--secagg-threshold-fraction``), so a grid is checked against the real options and a
run is handed back to the command as the flags it reads. Nothing here names an
option: an option added to the command is one a grid can set and vary. The CLI
passes the command in (:mod:`cli.experiment`); this package never imports the CLI.
"""

from __future__ import annotations

import inspect
import typing
import warnings
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import typer
from pydantic import BaseModel, ConfigDict, Field, create_model
from typer.models import OptionInfo

__all__ = ["OptionSpace", "is_path_type", "option_space"]


@dataclass(frozen=True)
class OptionSpace:
    """The options of one command, as a grid may set them.

    Attributes
    ----------
    model : type of pydantic.BaseModel
        Every settable option: its type, default and bounds; unknown keys refused.
    flags : mapping of str to str
        Option name -> its long flag (``"secagg_threshold_fraction"`` ->
        ``"--secagg-threshold-fraction"``).
    off_flags : mapping of str to str
        Boolean option name -> the flag that turns it off (``"secure_aggregation"`` ->
        ``"--no-secure-aggregation"``); a flag without one is absent.
    """

    model: type[BaseModel]
    flags: Mapping[str, str]
    off_flags: Mapping[str, str]

    def defaults(self) -> dict[str, Any]:
        """Every option's default, as JSON values (what a run that sets nothing gets)."""
        return self.model.model_validate({}).model_dump(mode="json")

    def arguments(self, options: Mapping[str, Any]) -> list[str]:
        """The command-line arguments that set ``options`` (JSON-mode values).

        ``None`` sets nothing (the command's default), a boolean is its flag or its off
        flag (nothing when it has none: false is then the default), a list repeats the
        flag once per item.
        """
        arguments: list[str] = []
        for name in sorted(options):
            arguments += self._option_arguments(name, options[name])
        return arguments

    def _option_arguments(self, name: str, value: Any) -> list[str]:
        if value is None:
            return []
        if isinstance(value, bool):
            off = self.off_flags.get(name)
            return [self.flags[name]] if value else [off] if off else []
        return _value_arguments(self.flags[name], value)


def _value_arguments(flag: str, value: Any) -> list[str]:
    if isinstance(value, list):
        return [part for item in value for part in (flag, str(item))]
    return [flag, str(value)]


def option_space(command: Callable[..., Any], *, exclude: Collection[str]) -> OptionSpace:
    """The options of typer ``command`` except ``exclude`` (and its ``typer.Context``).

    Parameters
    ----------
    command : callable
        A typer command whose parameters are ``Annotated[T, typer.Option(...)]``.
    exclude : collection of str
        Parameter names a grid may not set (the runner sets them, or they make no
        sense in a batch: an output folder, a dashboard).
    """
    hints = typing.get_type_hints(command, include_extras=True)
    parsed = _click_options(command)
    fields: dict[str, Any] = {}
    flags: dict[str, str] = {}
    off_flags: dict[str, str] = {}
    for name, parameter in inspect.signature(command).parameters.items():
        if name in exclude or hints[name] is typer.Context:
            continue
        kind, info = _option_of(hints[name])
        fields[name] = (kind, Field(default=parameter.default, **_bounds(info)))
        flags[name] = _long(parsed[name].opts)
        if parsed[name].secondary_opts:
            off_flags[name] = _long(parsed[name].secondary_opts)
    with warnings.catch_warnings():
        # `simulate --schema` shadows BaseModel.schema(), a deprecated classmethod no one
        # calls on this model; pydantic warns at class creation.
        warnings.filterwarnings("ignore", message='Field name "schema"', category=UserWarning)
        model = create_model(
            f"{command.__name__.title()}Options",
            __config__=ConfigDict(extra="forbid", frozen=True),
            **fields,
        )
    return OptionSpace(model=model, flags=flags, off_flags=off_flags)


def _click_options(command: Callable[..., Any]) -> dict[str, click.Option]:
    """The click options typer makes of ``command``'s parameters, by parameter name."""
    app = typer.Typer()
    app.command()(command)
    parsed = typer.main.get_command(app)
    return {
        param.name: param
        for param in parsed.params
        if isinstance(param, click.Option) and param.name is not None
    }


def _option_of(annotation: Any) -> tuple[Any, OptionInfo | None]:
    """The value type and typer's option info of ``Annotated[T, typer.Option(...)]``."""
    if typing.get_origin(annotation) is not typing.Annotated:
        return annotation, None
    kind, *metadata = typing.get_args(annotation)
    infos = [item for item in metadata if isinstance(item, OptionInfo)]
    return kind, infos[0] if infos else None


def _bounds(info: OptionInfo | None) -> dict[str, Any]:
    if info is None:
        return {}
    bounds = {"ge": info.min, "le": info.max}
    return {key: value for key, value in bounds.items() if value is not None}


def _long(opts: Sequence[str]) -> str:
    """The first long spelling among click's ``opts`` (``-e``/``--epsilon``: ``--epsilon``)."""
    return next((opt for opt in opts if opt.startswith("--")), opts[0])


def is_path_type(kind: Any) -> bool:
    """Whether ``kind`` holds paths (``Path``, ``Path | None``, ``list[Path] | None``)."""
    if kind is Path:
        return True
    return any(is_path_type(arg) for arg in typing.get_args(kind))
