"""What every ``fedcredit`` command shares: the consoles, exit codes, errors and tables.

Errors the user can fix (bad data, schema, flags, configuration) print one line on
stderr and exit with code 2; a run or service that fails exits with 1.

A command body has one shape: load and act inside :func:`fail_cleanly`, then show
the result with :func:`say`, :func:`say_pairs` or :func:`show_table`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import typer
from rich.console import Console, JustifyMethod, OverflowMethod
from rich.table import Table

from credit.errors import FedcreditError

if TYPE_CHECKING:
    from credit.validation import ValidationReport

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_RUN_FAILED",
    "Column",
    "console",
    "error_console",
    "fail_cleanly",
    "say",
    "say_pairs",
    "show_table",
    "show_violations",
    "warn",
]

console = Console(soft_wrap=True)
error_console = Console(stderr=True, soft_wrap=True)

EXIT_BAD_INPUT = 2
"""Exit code of input the user can fix (the default of :class:`FedcreditError`)."""
EXIT_RUN_FAILED = 1
"""Exit code of a well-formed request that failed."""


@contextlib.contextmanager
def fail_cleanly() -> Iterator[None]:
    """Turn fedcredit's own errors into one line on stderr and an exit code."""
    try:
        yield
    except FedcreditError as exc:
        error_console.print(f"error: {exc}", markup=False, highlight=False)
        raise typer.Exit(exc.exit_code) from None


def say(*lines: str, style: str | None = None) -> None:
    """Print ``lines`` verbatim (no rich markup, no highlighting) on stdout."""
    console.print("\n".join(lines), style=style, markup=False, highlight=False)


def warn(text: str) -> None:
    """Print ``warning: text`` on stderr (the command goes on)."""
    error_console.print(f"warning: {text}", markup=False, highlight=False)


def say_pairs(pairs: Iterable[tuple[str, object]], *, indent: int = 2) -> None:
    """Print ``label  value`` lines, labels padded to one width."""
    rows = [(label, str(value)) for label, value in pairs]
    width = max((len(label) for label, _ in rows), default=0)
    say(*(f"{' ' * indent}{label:<{width}}  {value}" for label, value in rows))


@dataclass(frozen=True)
class Column:
    """A table column: its header and how its cells are laid out."""

    header: str
    justify: JustifyMethod = "left"
    no_wrap: bool = False
    overflow: OverflowMethod = "ellipsis"


def show_table(
    title: str, columns: Sequence[str | Column], rows: Iterable[Sequence[object]]
) -> None:
    """Print a table; a column given as a plain string is left-aligned."""
    table = Table(title=title)
    for column in columns:
        spec = column if isinstance(column, Column) else Column(column)
        table.add_column(
            spec.header, justify=spec.justify, no_wrap=spec.no_wrap, overflow=spec.overflow
        )
    for row in rows:
        table.add_row(*(str(cell) for cell in row))
    console.print(table)


def show_violations(report: ValidationReport, note: str) -> None:
    """Print every violation of a data file's check, one row per column and problem.

    ``note`` follows the file's name in the title (e.g. what was or was not done).
    """
    show_table(
        f"{report.source}: every problem found ({note})",
        [
            Column("column", no_wrap=True),
            "problem",
            Column("count", justify="right"),
            Column("first rows", no_wrap=True),
            "hint",
        ],
        [
            (v.column or "(file)", v.problem, f"{v.count:,}", v.rows_text, v.hint)
            for v in report.violations
        ],
    )
