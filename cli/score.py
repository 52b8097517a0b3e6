"""``fedcredit score``: score a file of applicants with a signed model package.

The package (a logistic regression's, an MLP's or boosted trees') is verified before
anything is read from it (``--signer`` pins the consortium's key); the file is
validated against the package's schema (every violation listed, as ``fedcredit
participant check`` does; the target column is not needed) and scored chunk by chunk
into a temporary file, renamed to ``--out`` only when the whole file scored
(:mod:`credit.scoring.batch`). Any error: one line on stderr, exit code 2, nothing
written.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from cli.console import (
    Column,
    console,
    fail_cleanly,
    say,
    say_pairs,
    show_table,
    show_violations,
)
from cli.model import Signer

__all__ = ["score"]


def score(
    model: Annotated[Path, typer.Option(help="The signed model package (a run's model/ folder).")],
    data: Annotated[
        Path, typer.Option(help="Applicants' CSV (plain or gzip) in the package's schema.")
    ],
    out: Annotated[
        Path,
        typer.Option(
            help="Output CSV: id (if any), probability, score, decision, reason_1..reason_k."
        ),
    ],
    signer: Signer = None,
    cutoff: Annotated[
        float | None,
        typer.Option(
            min=0.0, max=1.0, help="Decline at probabilities >= this; default: the package's."
        ),
    ] = None,
    top_k: Annotated[
        int | None,
        typer.Option(min=1, help="Reason codes per applicant; default: the package's (4)."),
    ] = None,
) -> None:
    """Validate and score applicants: probability, score, decision and reason codes."""
    from credit.audit import load_public_key
    from credit.errors import SchemaError
    from credit.package import load_package
    from credit.scoring import Scorer, score_csv, score_quantiles
    from credit.scoring.batch import CHUNK_ROWS, count_rows

    with fail_cleanly():
        pinned = load_public_key(signer) if signer is not None else None
        package = load_package(model, signer=pinned)
        scorer = Scorer(package, cutoff=cutoff, top_k=top_k)
        total = count_rows(data) if data.is_file() else 0
        with _progress(total, CHUNK_ROWS) as advance:
            outcome = score_csv(data, out, scorer, progress=advance)
    report = outcome.report
    for warning in report.warnings:
        say(f"warning: {warning}")
    if not report.ok:
        show_violations(report, "nothing was written")
        with fail_cleanly():
            raise SchemaError(report.summary(), file=report.source)
    rate = outcome.declines / outcome.rows if outcome.rows else 0.0
    say(f"scored {outcome.rows:,} applicants into {out}")
    say_pairs(
        [
            ("model", f"{package.digest} (run {package.manifest.run})"),
            ("signer", package.manifest.signer.fingerprint + ("" if pinned else " (not pinned)")),
            ("cut-off", f"decline at probability >= {scorer.cutoff:g}"),
            ("declined", f"{outcome.declines:,} ({rate:.1%})"),
        ]
    )
    quantiles = score_quantiles(outcome.scores)
    if quantiles:
        show_table(
            "score distribution",
            [Column(name, justify="right") for name in quantiles],
            [[f"{value:.1f}" for value in quantiles.values()]],
        )


@contextlib.contextmanager
def _progress(total_rows: int, chunk_rows: int) -> Iterator[Callable[[int], None]]:
    """A progress bar over the file's chunks; yields the callback that advances it."""
    chunks = max(1, -(-total_rows // chunk_rows))
    columns = (TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), TextColumn("chunks"))
    shown = console.is_terminal
    with Progress(*columns, console=console, transient=True, disable=not shown) as progress:
        task = progress.add_task("scoring", total=chunks)
        yield lambda rows: progress.advance(task)
