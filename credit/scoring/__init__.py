"""Scoring applicants with a signed model package: validation, scores, decisions, reasons.

The package's door. :mod:`credit.scoring.applicants` checks applicant rows against
the package's schema (every violation, no target needed), :mod:`credit.scoring.scorer`
scores them (probability, score, decision, top-k reason codes, bins for drift),
:mod:`credit.scoring.binning` bins the rows (a frame, or one array per column),
:mod:`credit.scoring.network` evaluates the model row by row,
:mod:`credit.scoring.reasons` computes the reason codes and :mod:`credit.scoring.batch`
scores a CSV file into a CSV file, all or nothing.
"""

from __future__ import annotations

from credit.scoring.applicants import ApplicantTally, check_applicants
from credit.scoring.batch import BatchOutcome, score_csv, score_quantiles
from credit.scoring.reasons import ReasonTable
from credit.scoring.scorer import Reason, ScoredRows, Scorer

__all__ = [
    "ApplicantTally",
    "BatchOutcome",
    "Reason",
    "ReasonTable",
    "ScoredRows",
    "Scorer",
    "check_applicants",
    "score_csv",
    "score_quantiles",
]
