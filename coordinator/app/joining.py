"""How banks join a run: set-up replies read, the encoder fitted, the aggregation built.

A new run asks every connected bank for aggregates of its training rows
(``feature-stats``); a resumed run asks the run's banks only to introduce themselves
again (``enroll``: no data release). Either way each bank that takes part sends its
name and row counts and, with secure aggregation, a fresh per-run encryption key.

From the summed aggregates (federated feature statistics) the coordinator fits the
run's encoder and the WoE/IV table of every model input on the binned layout (the
merged one for ``--encoding woe``), with no exchange beyond the set-up release
(:mod:`credit.woe_binning`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from flwr.app import ArrayRecord, Message

from coordinator.app.aggregation import Aggregation, Exchange, PlainAggregation
from coordinator.app.run_state import BankInfo
from coordinator.app.secagg_server import BankDropped, SecureAggregation
from credit import message_keys
from credit.encoding import EncodingKind, FeatureEncoder, StatsSource, fit_encoder
from credit.feature_stats import FeatureStats, settle_noisy
from credit.governance.woe import WoeTable
from credit.messages import BankIntro, feature_stats_from_record, secagg
from credit.records import record_of
from credit.run_config import RunConfig
from credit.schema import DatasetSchema
from credit.woe_binning import bin_counts, fit_woe_encoder, reported_woe_tables, woe_tables
from privacy.secagg.graph import GraphChoice

__all__ = ["RunEncoding", "SetupReply", "aggregation_for", "fit_run_encoding", "setup_reply_parser"]


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

    def parse(reply: Message) -> SetupReply:
        intro = BankIntro.take(reply.content)
        stats = None
        if grid_bins is not None:
            record = record_of(reply.content, message_keys.FEATURE_STATS, ArrayRecord)
            stats = feature_stats_from_record(record, schema=schema, grid_bins=grid_bins)
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


@dataclass(frozen=True, eq=False)  # holds tables: compared by identity
class RunEncoding:
    """The run's encoder and the WoE/IV tables of its model inputs.

    Attributes
    ----------
    encoder : FeatureEncoder
        What the banks encode their rows with.
    woe : dict of str to WoeTable
        Each model input's table on the binned layout (the encoder's merged bins for
        ``--encoding woe``); empty without federated feature statistics.
    """

    encoder: FeatureEncoder
    woe: dict[str, WoeTable]


def fit_run_encoding(
    config: RunConfig, schema: DatasetSchema, summed: FeatureStats | None, *, noisy: bool
) -> RunEncoding:
    """The run's encoder and WoE/IV tables from the sum of the banks' statistics.

    Parameters
    ----------
    config : RunConfig
        The run's encoding, feature-statistics source and quantile bins.
    schema : DatasetSchema
        The run's schema.
    summed : FeatureStats or None
        The banks' summed statistics; None when the encoder comes from the schema's
        public bounds only (then there are no tables).
    noisy : bool
        Whether the sum holds the banks' DP noise: the encoder is then fitted from it
        settled (:func:`~credit.feature_stats.settle_noisy`), and each table's counts
        are settled per bin.
    """
    if summed is None:
        encoder = fit_encoder(
            schema,
            kind=config.encoding,
            source=StatsSource.PUBLIC,
            stats=None,
            quantile_bins=config.quantile_bins,
        )
        return RunEncoding(encoder=encoder, woe={})
    settled = settle_noisy(summed, schema) if noisy else summed
    binned = fit_encoder(
        schema, kind=EncodingKind.BINNED, source=config.feature_stats, stats=settled,
        quantile_bins=config.quantile_bins,
    )  # fmt: skip
    counts = bin_counts(summed, binned, schema)
    if config.encoding is EncodingKind.WOE:
        fitted = fit_woe_encoder(binned, woe_tables(counts))
        return RunEncoding(encoder=fitted.encoder, woe=fitted.tables)
    tables = reported_woe_tables(counts)
    if config.encoding is EncodingKind.BINNED:
        return RunEncoding(encoder=binned, woe=tables)
    encoder = fit_encoder(
        schema, kind=config.encoding, source=config.feature_stats, stats=settled,
        quantile_bins=config.quantile_bins,
    )  # fmt: skip
    return RunEncoding(encoder=encoder, woe=tables)


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
        graph=GraphChoice(config.secagg_graph),
        dropout_rate=config.secagg_dropout_rate,
        corruption_rate=config.secagg_corruption_rate,
        enrollments=enrollments,
        weights={reply.bank.node_id: reply.bank.n_train for reply in replies},
        score_bins=config.score_bins,
        exchange=exchange,
        on_drop=on_drop,
    )
