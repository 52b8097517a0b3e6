"""Errors shared by every fedcredit package.

Hierarchy::

    FedcreditError                      root of every error fedcredit raises on purpose
    ├── SchemaError(ValueError)         a data file or schema breaks the dataset contract
    ├── ConfigError(ValueError)         a flag, run config or config file is invalid
    ├── MalformedMessage(ValueError)    a message from the network breaks the contract
    ├── PackageRefused(ValueError)      a model package fails verification (signature,
    │                                   digests, files, signer)
    └── OperationFailed                 a well-formed request failed (a run, a service)

Every error that reaches the command line is printed as one line naming what went
wrong, where (file, column, row, flag) and what to do next; the CLI exits with the
error's :attr:`~FedcreditError.exit_code`: 2 for input the user can fix, 1 for a
request that failed. Each package's ``errors`` module roots its own errors here.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

__all__ = [
    "ConfigError",
    "FedcreditError",
    "MalformedMessage",
    "OperationFailed",
    "PackageRefused",
    "SchemaError",
]


class FedcreditError(Exception):
    """Root of the errors fedcredit raises deliberately.

    Attributes
    ----------
    exit_code : int
        The command line's exit code for this error: 2 (bad input, the default) or
        1 (a well-formed request that failed).
    """

    exit_code: ClassVar[int] = 2


class OperationFailed(FedcreditError):
    """A well-formed request that failed (a run, a service): exit code 1, not 2."""

    exit_code: ClassVar[int] = 1


class MalformedMessage(FedcreditError, ValueError):
    """A message from the network does not follow the message contract.

    The receiver drops that message (and its sender from the exchange), never the run.

    Parameters
    ----------
    problem : str
        What is wrong, naming the record and field, e.g. ``"'config.seed' must be an
        integer; got 'x'"``.
    """


class SchemaError(FedcreditError, ValueError):
    """A data file or dataset schema violates the dataset contract.

    Parameters
    ----------
    problem : str
        What is wrong, e.g. ``"non-numeric value 'abc'"``.
    file : pathlib.Path or str, optional
        The file in which the problem was found.
    column : str, optional
        The offending column.
    row : int, optional
        The first offending data row, 1-based and not counting the header line,
        so that row 1 is the first line of data; 0 means the header itself.
    hint : str, optional
        What the reader should do about it.
    """

    def __init__(
        self,
        problem: str,
        *,
        file: Path | str | None = None,
        column: str | None = None,
        row: int | None = None,
        hint: str | None = None,
    ) -> None:
        self.problem = problem
        self.file = str(file) if file is not None else None
        self.column = column
        self.row = row
        self.hint = hint
        super().__init__(self._render())

    def _render(self) -> str:
        where = []
        if self.file is not None:
            where.append(self.file)
        if self.column is not None:
            where.append(f"column '{self.column}'")
        if self.row is not None:
            where.append("header row" if self.row == 0 else f"row {self.row}")
        text = f"{', '.join(where)}: {self.problem}" if where else self.problem
        if self.hint:
            text += f" ({self.hint})"
        return text


class ConfigError(FedcreditError, ValueError):
    """A command-line flag, run configuration or configuration file is invalid.

    Parameters
    ----------
    problem : str
        What is wrong and what to do, e.g. ``"--banks must be >= 1; got 0"``.
    source : str, optional
        The flag, key or file the problem comes from.
    """

    def __init__(self, problem: str, *, source: str | None = None) -> None:
        self.problem = problem
        self.source = source
        super().__init__(f"{source}: {problem}" if source else problem)


class PackageRefused(FedcreditError, ValueError):
    """A signed model package failed verification and was not loaded.

    Parameters
    ----------
    problem : str
        What failed, e.g. ``"sha256 differs from the manifest's"``.
    file : pathlib.Path or str
        The package file (or folder) the problem was found in.
    hint : str
        What to do, e.g. copy the package again from the consortium.
    """

    def __init__(self, problem: str, *, file: Path | str, hint: str) -> None:
        self.problem = problem
        self.file = str(file)
        self.hint = hint
        super().__init__(f"{self.file}: {problem} ({hint})")
