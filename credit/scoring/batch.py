"""Score a CSV file of applicants into a CSV file, chunk by chunk, all or nothing.

The output (the contract of ``fedcredit score``): the input's id column when the
schema has one and the file carries it, then ``probability,score,decision,
reason_1..reason_k`` (``decision`` is ``approve`` or ``decline``; a reason cell holds
the reason's text, empty when the row has fewer reasons). Probabilities are written
in full (``repr``: they read back to the same float64). A reason text that a
spreadsheet would read as a formula (it begins with ``=``, ``+``, ``-``, ``@``, a tab
or a carriage return: the texts come from the package's schema descriptions, which
the bank did not write) is written with a leading ``'``, as OWASP's CSV-injection
advice says, so opening the file never runs it (:func:`spreadsheet_safe`).

The file is read :data:`CHUNK_ROWS` rows at a time: each chunk is validated
(:class:`~credit.scoring.applicants.ApplicantTally`), scored and appended to a
temporary file beside the output; once a violation is found the rest is only
validated. Only a file without violations is moved to the output path (an atomic
rename); otherwise the temporary file is removed and the report lists every
violation.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from credit.errors import ConfigError
from credit.loading import read_csv_chunks
from credit.scoring.applicants import ApplicantTally
from credit.scoring.scorer import ScoredRows, Scorer
from credit.validation import ValidationReport

__all__ = [
    "CHUNK_ROWS",
    "BatchOutcome",
    "count_rows",
    "output_columns",
    "score_csv",
    "score_quantiles",
]

CHUNK_ROWS = 50_000
"""Rows per chunk: a few tens of MB of strings at a time."""


@dataclass(frozen=True, eq=False)  # holds arrays: compared by identity
class BatchOutcome:
    """What :func:`score_csv` did.

    Attributes
    ----------
    report : ValidationReport
        Every violation of the file (none: the output was written).
    rows : int
        Data rows read.
    scores : numpy.ndarray of int64
        Every row's score (empty when the file had violations).
    declines : int
        Rows declined at the cut-off.
    written : pathlib.Path or None
        The output file; None when nothing was written.
    """

    report: ValidationReport
    rows: int
    scores: NDArray[np.int64]
    declines: int
    written: Path | None


def output_columns(scorer: Scorer, *, with_id: str | None) -> list[str]:
    """The output CSV's header: ``[id,] probability, score, decision, reason_1..k``."""
    head = [with_id] if with_id else []
    reasons = [f"reason_{k + 1}" for k in range(scorer.top_k)]
    return [*head, "probability", "score", "decision", *reasons]


def count_rows(path: Path) -> int:
    """Lines after the header (a quick count for a progress bar; quoted newlines count)."""
    with path.open("rb") as handle:
        gzipped = handle.read(2) == b"\x1f\x8b"
    with gzip.open(path, "rb") if gzipped else path.open("rb") as handle:
        lines = sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 20), b""))
    return max(0, lines - 1)


def score_csv(
    data: Path,
    out: Path,
    scorer: Scorer,
    *,
    chunk_rows: int = CHUNK_ROWS,
    progress: Callable[[int], None] | None = None,
) -> BatchOutcome:
    """Validate and score ``data`` into ``out`` (module docstring).

    Parameters
    ----------
    data : pathlib.Path
        The applicants' CSV (plain or gzip), the package schema's columns (the
        target is not needed).
    out : pathlib.Path
        The output CSV; its folder must exist. Replaced only on success.
    scorer : Scorer
        The package's scorer (cut-off and top-k chosen).
    chunk_rows : int, default :data:`CHUNK_ROWS`
        Rows per chunk, >= 1.
    progress : callable, optional
        Called with each chunk's row count once it is done.

    Raises
    ------
    SchemaError
        The file cannot be read as CSV at all (as ``participant check``).
    ConfigError
        ``out`` is the data file, or its folder is missing.
    """
    _check_paths(data, out)
    schema = scorer.package.schema
    scores: list[NDArray[np.int64]] = []
    declines = 0
    tally: ApplicantTally | None = None
    with _partial_file(out) as partial:
        for chunk in read_csv_chunks(data, schema, chunk_rows=chunk_rows):
            if tally is None:
                tally = ApplicantTally(schema, source=data, columns=list(chunk.columns))
            typed = tally.add(chunk)
            if tally.ok and len(typed):
                scored = scorer.score(typed)
                _append(partial, typed, scored, scorer, first=not scores)
                scores.append(scored.score)
                declines += int(scored.decline.sum())
            if progress is not None:
                progress(len(chunk))
        if tally is None:  # read_csv_chunks yields at least one chunk
            raise ValueError(f"{data}: no header read")
        report = tally.report()
        written = None
        if report.ok:
            if not scores:  # a header and no rows: the header alone
                _append(partial, chunk.iloc[:0], None, scorer, first=True)
            os.replace(partial, out)
            written = out
    return BatchOutcome(
        report=report,
        rows=tally.rows,
        scores=np.concatenate(scores) if scores and report.ok else np.zeros(0, np.int64),
        declines=declines if report.ok else 0,
        written=written,
    )


def _check_paths(data: Path, out: Path) -> None:
    if out.exists() and data.exists() and out.resolve() == data.resolve():
        raise ConfigError("is the data file; write the scores to another file", source="--out")
    if not out.parent.is_dir():
        raise ConfigError(f"folder {out.parent} does not exist; create it first", source="--out")
    if out.is_dir():
        raise ConfigError("is a folder; name the CSV file to write", source="--out")


@contextlib.contextmanager
def _partial_file(out: Path) -> Iterator[Path]:
    """A temporary file beside ``out``, removed unless it was renamed to ``out``."""
    descriptor, name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent)
    os.close(descriptor)
    partial = Path(name)
    try:
        yield partial
    finally:
        partial.unlink(missing_ok=True)


def _append(
    partial: Path, typed: pd.DataFrame, scored: ScoredRows | None, scorer: Scorer, *, first: bool
) -> None:
    id_column = scorer.package.schema.id_column
    with_id = id_column if id_column and id_column in typed else None
    columns = output_columns(scorer, with_id=with_id)
    if scored is None:
        frame = pd.DataFrame(columns=columns)
    else:
        values: dict[str, object] = {}
        if with_id:
            values[with_id] = typed[with_id].to_numpy()
        values["probability"] = scored.probability
        values["score"] = scored.score
        values["decision"] = np.where(scored.decline, "decline", "approve")
        for k in range(scorer.top_k):
            values[f"reason_{k + 1}"] = spreadsheet_safe(scored.reason_table.text[:, k])
        frame = pd.DataFrame(values, columns=columns)
    frame.to_csv(partial, mode="w" if first else "a", header=first, index=False)


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""First characters with which a spreadsheet reads a cell as a formula."""


def spreadsheet_safe(texts: NDArray[np.object_]) -> NDArray[np.object_]:
    """``texts`` with ``'`` before each that begins like a formula (module docstring)."""
    series = pd.Series(texts, dtype=object)
    risky = series.map(lambda text: isinstance(text, str) and text.startswith(FORMULA_STARTS))
    return np.asarray(series.where(~risky, "'" + series.astype(str)), dtype=object)


def score_quantiles(scores: NDArray[np.int64]) -> dict[str, float]:
    """Min, 5 %, 25 %, median, 75 %, 95 % and max of the scores (empty: no rows)."""
    if not scores.size:
        return {}
    levels = {"min": 0.0, "p5": 0.05, "p25": 0.25, "median": 0.5, "p75": 0.75, "p95": 0.95}
    found = {name: float(np.quantile(scores, level)) for name, level in levels.items()}
    return found | {"max": float(scores.max())}
