"""``fedcredit privacy``: re-check a run's privacy ledgers with a second accountant."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli.console import EXIT_RUN_FAILED, Column, fail_cleanly, say, show_table

if TYPE_CHECKING:
    from privacy.verify import BankCheck

__all__ = ["privacy_app"]

privacy_app = typer.Typer(help="Differential privacy: re-check a run's privacy ledgers.")

_COLUMNS = ("bank", "reported ε", "RDP ε", "PLD ε", "max ε", "δ", "verdict")


@privacy_app.command("verify")
def verify(
    run_dir: Annotated[Path, typer.Argument(help="A run's output folder (holds metrics.json).")],
) -> None:
    """Recompute each bank's epsilon from its ledger with Google's dp_accounting."""
    from privacy.verify import TOLERANCE, verify_run

    with fail_cleanly():
        checks = verify_run(run_dir)
    show_table(
        f"Privacy ledgers of {run_dir} (independent: dp_accounting)",
        [Column(name, justify="left" if name == "bank" else "right") for name in _COLUMNS],
        [_row(check) for check in checks],
    )
    if all(check.agrees and check.within_budget for check in checks):
        say(f"all {len(checks)} ledgers agree within {TOLERANCE:.0%} and are within budget")
        return
    raise typer.Exit(EXIT_RUN_FAILED)


def _row(check: BankCheck) -> tuple[str, ...]:
    """One bank's line: the reported and independent epsilons, its budget and the verdict."""
    if not check.agrees:
        verdict = "MISMATCH"
    elif not check.within_budget:
        verdict = "OVER BUDGET"
    else:
        verdict = "ok"
    return (
        check.bank,
        f"{check.reported:.4f}",
        f"{check.independent_rdp:.4f}",
        f"{check.independent_pld:.4f}",
        f"{check.max_epsilon:.4f}",
        f"{check.delta:.3g}",
        verdict,
    )
