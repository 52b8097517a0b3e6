"""``fedcredit audit``: check a tamper-evident audit log."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.console import fail_cleanly, say, say_pairs
from credit.errors import ConfigError, OperationFailed

__all__ = ["audit_app"]

audit_app = typer.Typer(
    help="Audit trail: verify a signed, hash-chained audit log.", no_args_is_help=True
)


@audit_app.callback()
def _audit() -> None:
    """Audit trail: verify a signed, hash-chained audit log."""


@audit_app.command("verify")
def verify(
    file: Annotated[Path, typer.Argument(help="The audit log (JSON lines).")],
    public_key: Annotated[
        Path | None,
        typer.Option(
            help="The writer's public key (PEM .pub, published out of band); "
            "default: the key recorded in the log itself."
        ),
    ] = None,
    allow_open: Annotated[
        bool,
        typer.Option(help="Accept a log that does not end with run-end (a run still going)."),
    ] = False,
) -> None:
    """Check every entry's signature and hash chain; name the first bad entry.

    Exit 0: intact. Exit 1: the log was edited, cut, reordered or signed with
    another key. Exit 2: the file or key cannot be read.
    """
    from credit.audit import AuditBroken, load_public_key, verify_audit

    with fail_cleanly():
        key = load_public_key(public_key) if public_key is not None else None
        if not file.is_file():
            raise ConfigError("no such audit log (or not a regular file)", source=str(file))
        try:
            report = verify_audit(file, key, allow_open=allow_open)
        except AuditBroken as exc:
            raise OperationFailed(str(exc)) from exc
    state = "closed" if report.closed else "open: the run may still be going"
    source = f"matches {public_key}" if public_key is not None else "as recorded in the log"
    say(f"audit log {file}: intact, {report.entries} entries signed by one key")
    say_pairs(
        [
            ("writer", report.writer),
            ("key", f"{report.fingerprint} ({source})"),
            ("first entry", f"{report.first_event} at {report.first_time}"),
            ("last entry", f"{report.last_event} at {report.last_time} ({state})"),
            ("head", report.head),
            ("events", ", ".join(f"{name} {count}" for name, count in report.events.items())),
        ]
    )
