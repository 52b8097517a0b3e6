"""Errors shared by every fedcredit package.

Hierarchy::

    FedcreditError                      root of every error fedcredit raises on purpose
    ├── SchemaError(ValueError)         a data file or schema breaks the dataset contract
    └── ConfigError(ValueError)         a flag, run config or config file is invalid

Every error that reaches the command line is printed as one line naming what went
wrong, where (file, column, row, flag) and what to do next; the CLI exits with code 2.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["ConfigError", "FedcreditError", "SchemaError"]


class FedcreditError(Exception):
    """Root of the errors fedcredit raises deliberately."""


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
