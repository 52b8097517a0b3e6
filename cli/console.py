"""What every ``fedcredit`` command shares: the consoles, exit codes and error handling.

Errors the user can fix (bad data, schema, flags, configuration) print one line on
stderr and exit with code 2; a run or service that fails exits with 1.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import typer
from rich.console import Console

from credit.errors import FedcreditError

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_RUN_FAILED",
    "console",
    "error_console",
    "fail_cleanly",
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
