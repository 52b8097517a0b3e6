"""What a researcher may see and a coordinator may not: a run's exact pooled metrics.

A simulation's harness holds every simulated bank's rows, so it can score the final
model on the banks' pooled held-out rows exactly, which no party of a deployed
consortium can. :func:`exact_final_metrics` does that, so that a study can put the
metrics the coordinator computed from the banks' bounded, summed (and, under
budgets, noisy) releases next to the truth: ``OUT/simulation.json`` keeps both.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from credit.metrics import CreditMetrics, credit_metrics, summarize_scores
from participant.guard.settings import GuardSettings

__all__ = ["EXACT_SCORE_BINS", "exact_final_metrics"]

EXACT_SCORE_BINS = 1_000_000
"""Score bins of the exact computation: ties inside a bin of width 1e-6 only."""


def exact_final_metrics(model_dir: Path, banks: Sequence[GuardSettings]) -> CreditMetrics:
    """The final model's metrics on every bank's held-out rows, pooled and exact.

    Parameters
    ----------
    model_dir : pathlib.Path
        The run's ``OUT/model`` folder.
    banks : sequence of GuardSettings
        The simulated banks (their guards' hold-out splits are the ones scored).
    """
    from credit.model_card import load_model
    from participant.guard.in_process import guard_for

    model = load_model(model_dir)
    scores, labels = [], []
    for settings in banks:
        bank = guard_for(settings).bank
        scores.append(model.predict_proba(bank.test))
        labels.append(bank.test[bank.schema.target].to_numpy())
    summary = summarize_scores(np.concatenate(scores), np.concatenate(labels), EXACT_SCORE_BINS)
    return credit_metrics(summary)
