"""The run state's records: the final score histograms kept for the model report."""

from __future__ import annotations

import json

import numpy as np

from coordinator.app.run_state import ScoreHistograms
from credit.metrics import ScoreSummary, credit_metrics


def test_final_score_histograms_are_settled_as_the_metrics_are() -> None:
    """A noisy sum's negative counts are clipped at zero, as credit_metrics clips them."""
    summary = ScoreSummary(
        positives=np.array([-0.75, 2.5, 9.0, 4.0]),
        negatives=np.array([11.0, 6.25, -1.5, 0.5]),
        brier_sum=3.0,
        log_loss_sum=9.0,
    )
    histograms = ScoreHistograms.settled(7, summary)
    assert histograms.defaulters == (0.0, 2.5, 9.0, 4.0)
    assert histograms.non_defaulters == (11.0, 6.25, 0.0, 0.5)
    settled = ScoreSummary(
        positives=np.array(histograms.defaulters),
        negatives=np.array(histograms.non_defaulters),
        brier_sum=3.0,
        log_loss_sum=9.0,
    )
    assert credit_metrics(settled) == credit_metrics(summary)


def test_final_score_histograms_round_trip_through_their_json_document() -> None:
    histograms = ScoreHistograms(server_round=3, defaulters=(1.0, 0.0), non_defaulters=(2.0, 5.5))
    document = json.loads(json.dumps(histograms.document()))
    assert document == {
        "round": 3,
        "bins": 2,
        "defaulters": [1.0, 0.0],
        "non_defaulters": [2.0, 5.5],
    }
    assert ScoreHistograms.from_document(document) == histograms
