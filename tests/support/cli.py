"""The ``fedcredit`` command line in-process, and the one-line error every bad input gets."""

from __future__ import annotations

from pathlib import Path

from click.testing import Result
from typer.testing import CliRunner

from cli.app import app


def invoke(*args: str | Path) -> Result:
    """``fedcredit ARGS...`` through Typer's runner (paths as strings)."""
    return CliRunner().invoke(app, [str(arg) for arg in args])


def one_error_line(result: Result) -> str:
    """The single ``error: ...`` line of a refused command (exit code 2, no traceback)."""
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]
