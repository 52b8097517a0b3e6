"""FedAvg for credit models: Flower's FedAvg with federated credit-metric evaluation.

Training is Flower's :class:`~flwr.serverapp.strategy.FedAvg` unchanged (weights
averaged by each bank's number of training rows). Evaluation replies carry score
histograms instead of scalar metrics, so :meth:`CreditFedAvg.aggregate_evaluate`
sums them and computes the pooled credit metrics exactly.
"""

from __future__ import annotations

from collections.abc import Iterable

from flwr.app import Message, MetricRecord
from flwr.serverapp.strategy import FedAvg

from credit import message_keys as keys
from credit.metrics import ScoreSummary, credit_metrics
from credit.records import array_record, metric_record, score_summary_from_records

__all__ = ["CreditFedAvg"]


class CreditFedAvg(FedAvg):
    """FedAvg over all available banks, with histogram-based credit metrics.

    Parameters
    ----------
    min_banks : int
        Fewest banks to sample and to wait for (Flower's ``min_*_nodes``).
    """

    def __init__(self, *, min_banks: int) -> None:
        if min_banks < 1:
            raise ValueError(f"min_banks must be >= 1; got {min_banks}")
        super().__init__(
            fraction_train=1.0,
            fraction_evaluate=1.0,
            min_train_nodes=min_banks,
            min_evaluate_nodes=min_banks,
            min_available_nodes=min_banks,
            weighted_by_key=keys.NUM_EXAMPLES,
            arrayrecord_key=keys.ARRAYS,
            configrecord_key=keys.CONFIG,
        )

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[Message]
    ) -> MetricRecord | None:
        """Sum the banks' score summaries and compute pooled credit metrics."""
        valid = [reply for reply in replies if not reply.has_error()]
        if not valid:
            return None
        summary = ScoreSummary.combine(
            [
                score_summary_from_records(
                    array_record(r.content, keys.SCORES), metric_record(r.content, keys.METRICS)
                )
                for r in valid
            ]
        )
        return MetricRecord(dict(credit_metrics(summary).as_dict()))
