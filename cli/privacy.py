"""``fedcredit privacy``: re-check privacy ledgers independently, repair a torn ledger line.

``verify RUN_DIR`` checks every bank's signed ledger summary in a run's outputs
(signature, independent epsilon, mechanism, completeness: see :mod:`privacy.verify`);
``verify --ledger FILE`` checks a bank's own ledger file; ``repair-ledger FILE``
drops a torn last line left by an interrupted write. Exit codes: 0 all checks
passed, 1 a check failed, 2 bad input (missing file, corrupt JSON, bad flag).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli.console import EXIT_RUN_FAILED, Column, fail_cleanly, say, show_table
from credit.errors import ConfigError

if TYPE_CHECKING:
    from privacy.verify import BankCheck

__all__ = ["privacy_app"]

privacy_app = typer.Typer(
    help="Differential privacy: re-check ledgers independently, repair a torn ledger line."
)

_COLUMNS = ("bank", "source", "reported ε", "RDP ε", "PLD ε", "max ε", "δ", "verdict")


@privacy_app.command("verify")
def verify(
    run_dir: Annotated[
        Path | None,
        typer.Argument(help="A run's output folder (holds metrics.json and ledgers/)."),
    ] = None,
    bank_key: Annotated[
        list[str] | None,
        typer.Option(
            "--bank-key",
            metavar="BANK=PUBFILE",
            help="A bank's public audit key (PEM or OpenSSH); repeat per bank. "
            "A simulation's keys are read from RUN_DIR/audit/<bank>.pub.",
        ),
    ] = None,
    ledger: Annotated[
        Path | None,
        typer.Option("--ledger", metavar="FILE", help="Check a bank's own ledger file instead."),
    ] = None,
) -> None:
    """Check signatures, recompute ε with dp_accounting, check q, steps, plans and δ."""
    with fail_cleanly():
        title, checks = _checks(run_dir, ledger, bank_key or [])
    passed = (
        f"all {len(checks)} ledger summaries verified: signed by their banks, consistent, "
        "within budget"
        if ledger is None
        else "the ledger is consistent and within budget"
    )
    _report(title, checks, passed)


@privacy_app.command("repair-ledger")
def repair_ledger(
    file: Annotated[Path, typer.Argument(help="The bank's ledger file (JSON lines).")],
) -> None:
    """Drop a torn last line (an interrupted write); the original is kept as FILE.bak."""
    from privacy.ledger import repair_ledger as repair

    with fail_cleanly():
        result = repair(file)
    what = "dropped the torn" if result.dropped else "completed the newline of the"
    say(f"{file}: {what} last line {result.line}; the original is kept in {result.backup}")


def _checks(
    run_dir: Path | None, ledger: Path | None, bank_keys: list[str]
) -> tuple[str, list[BankCheck]]:
    """The table's title and the checks of the run folder or the ledger file."""
    from privacy.verify import verify_ledger, verify_run

    if run_dir is not None and ledger is None:
        checks = verify_run(run_dir, bank_keys=_bank_keys(bank_keys))
        return f"Privacy ledgers of {run_dir} (independent: dp_accounting)", checks
    if ledger is not None and run_dir is None:
        if bank_keys:
            raise ConfigError("--bank-key applies to a run folder only", source="--ledger")
        return f"Privacy ledger {ledger} (independent: dp_accounting)", [verify_ledger(ledger)]
    raise ConfigError(
        "pass a run's output folder or --ledger FILE (one of the two)",
        source="fedcredit privacy verify",
    )


def _bank_keys(options: list[str]) -> dict[str, Path]:
    """``--bank-key BANK=PUBFILE`` options as a mapping (ConfigError on a bad one)."""
    keys: dict[str, Path] = {}
    for option in options:
        bank, separator, path = option.rpartition("=")  # bank names may hold "="
        if not separator or not bank or not path:
            raise ConfigError(f"expected BANK=PUBFILE; got '{option}'", source="--bank-key")
        if bank in keys:
            raise ConfigError(f"bank '{bank}' is given twice", source="--bank-key")
        keys[bank] = Path(path)
    return keys


def _report(title: str, checks: list[BankCheck], passed: str) -> None:
    """The table, one line per failed check, and the exit code."""
    show_table(
        title,
        [
            Column(name, justify="left" if name in ("bank", "source") else "right")
            for name in _COLUMNS
        ],
        [_row(check) for check in checks],
    )
    failed = [check for check in checks if not check.ok]
    for check in failed:
        for problem in check.problems:
            say(f"{check.bank} ({check.source}): {problem}")
    if not failed:
        say(passed)
        return
    say(f"{len(failed)} of {len(checks)} ledgers failed verification")
    raise typer.Exit(EXIT_RUN_FAILED)


def _row(check: BankCheck) -> tuple[str, ...]:
    """One ledger's line: the reported and independent epsilons, its budget and the verdict."""
    if check.problems:
        verdict = "FAILED"
    elif not check.agrees:
        verdict = "MISMATCH"
    elif not check.within_budget:
        verdict = "OVER BUDGET"
    else:
        verdict = "ok"
    return (
        check.bank,
        check.source,
        f"{check.reported:.4f}",
        f"{check.independent_rdp:.4f}",
        f"{check.independent_pld:.4f}",
        f"{check.max_epsilon:.4f}",
        f"{check.delta:.3g}",
        verdict,
    )
