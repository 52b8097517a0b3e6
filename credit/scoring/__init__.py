"""Scoring applicants with a signed model package: validation, scores, decisions, reasons.

The package's door. :mod:`credit.scoring.applicants` checks applicant rows against
the package's schema (every violation, no target needed), :mod:`credit.scoring.scorer`
scores them (probability, score, decision, top-k reason codes, bins for drift) and
:mod:`credit.scoring.reasons` computes the reason codes.
"""

from __future__ import annotations

from credit.scoring.applicants import ApplicantTally, check_applicants
from credit.scoring.reasons import ReasonTable
from credit.scoring.scorer import Reason, ScoredRows, Scorer

__all__ = ["ApplicantTally", "Reason", "ReasonTable", "ScoredRows", "Scorer", "check_applicants"]
