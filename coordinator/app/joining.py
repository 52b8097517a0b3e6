"""How banks join a run: set-up replies read, the encoder fitted, the aggregation built.

A new run asks every connected bank for aggregates of its training rows
(``feature-stats``); a resumed run asks the run's banks only to introduce themselves
again (``enroll``: no data release). Either way each bank that takes part sends its
name and row counts and, with secure aggregation, a fresh per-run encryption key.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from flwr.app import ArrayRecord, Message

from coordinator.app.aggregation import Aggregation, Exchange, PlainAggregation
from coordinator.app.run_state import BankInfo
from coordinator.app.secagg_server import BankDropped, SecureAggregation
from credit import message_keys
from credit.encoding import FeatureEncoder, fit_encoder
from credit.feature_stats import FeatureStats, numeric_inputs
from credit.messages import BankIntro, feature_stats_from_record, secagg
from credit.records import record_of
from credit.run_config import RunConfig
from credit.schema import DatasetSchema

__all__ = ["SetupReply", "aggregation_for", "fit_run_encoder", "setup_reply_parser"]


@dataclass(frozen=True)
class SetupReply:
    """A bank's answer to a feature-stats or enroll query."""

    bank: BankInfo
    stats: FeatureStats | None
    enrollment: secagg.Enrollment | None


def setup_reply_parser(
    schema: DatasetSchema, *, grid_bins: int | None
) -> Callable[[Message], SetupReply]:
    """A parser of set-up replies; ``grid_bins=None`` for enroll replies (no statistics)."""
    features = numeric_inputs(schema)

    def parse(reply: Message) -> SetupReply:
        intro = BankIntro.take(reply.content)
        stats = None
        if grid_bins is not None:
            record = record_of(reply.content, message_keys.FEATURE_STATS, ArrayRecord)
            stats = feature_stats_from_record(record, features=features, grid_bins=grid_bins)
        return SetupReply(
            bank=BankInfo(
                name=intro.name,
                node_id=reply.metadata.src_node_id,
                n_train=intro.n_train,
            ),
            stats=stats,
            enrollment=secagg.Enrollment.take_optional(reply.content),
        )

    return parse


def fit_run_encoder(
    config: RunConfig, schema: DatasetSchema, stats: FeatureStats | None
) -> FeatureEncoder:
    """The run's encoder from the sum of the banks' (possibly noisy) statistics.

    ``stats`` is None when the encoder comes from the schema's public bounds only.
    """
    return fit_encoder(
        schema,
        kind=config.encoding,
        source=config.feature_stats,
        stats=stats,
        quantile_bins=config.quantile_bins,
    )


def aggregation_for(
    config: RunConfig,
    replies: Sequence[SetupReply],
    *,
    run: int,
    exchange: Exchange,
    on_drop: Callable[[BankDropped], None] | None = None,
) -> Aggregation:
    """Plain FedAvg, or secure aggregation over the banks that sent an encryption key."""
    if not config.secure_aggregation:
        return PlainAggregation()
    enrollments = {
        reply.bank.node_id: reply.enrollment for reply in replies if reply.enrollment is not None
    }
    return SecureAggregation.enroll(
        run=run,
        clip=config.secagg_clip,
        threshold_fraction=config.secagg_threshold_fraction,
        enrollments=enrollments,
        weights={reply.bank.node_id: reply.bank.n_train for reply in replies},
        score_bins=config.score_bins,
        exchange=exchange,
        on_drop=on_drop,
    )
