"""The ``fedcredit`` command line: the root command and one command group per role."""

from __future__ import annotations

from cli.app import app, main

__all__ = ["app", "main"]
