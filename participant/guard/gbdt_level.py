"""The bank's answer to a ``gbdt-level`` query: one tree level's histograms, or a refusal.

The query carries the level's orders (:class:`~credit.messages.gbdt.GbdtLevelRequest`)
and the run's binned encoder (:class:`~credit.messages.gbdt.GbdtEncoding`): the bank
codes its own training rows on the encoder's edges, takes up its boosting state kept
between levels (:meth:`SessionStore.boosting_state
<participant.guard.sessions.SessionStore.boosting_state>`, bound to those codes and
labels), and answers with :class:`~participant.guard.gbdt_bank.GbdtBank`, which applies
the bank's own :class:`~participant.guard.gbdt_bank.GbdtPolicy` (settings ``gbdt``) and
charges its ledger. The histograms travel in the clear, or, when the query carries
secure aggregation's inputs, masked as the bank's input of that level's secure sum
(int64 words of the 64-bit ring, weight 0): the coordinator decodes only the sum.

What the edges can and cannot do. The coordinator chooses the edges (from the
consortium's statistics, but a malicious coordinator may send others), and a level
releases sums per bin: edges that put one customer alone in a bin make that bin's
gradient sum that customer's ``p - y``, hence their label, at the root. The bank checks
that the encoder is a binned one of its own schema's features with at most the
policy's bins (``max_bins`` of :class:`~credit.gbdt.BoostingParams`: 255), not where the
edges lie. ``min_node_rows`` protects small *nodes* (and their siblings), not small
bins. What protects one customer whatever the edges is differential privacy: with a
budget every level is noised for the sensitivity of one record (it adds one bounded
``(g, h, 1)`` to one bin per feature, wherever the bins are), so the edges change
nothing in the guarantee. Under secure aggregation the coordinator sees only the
consortium's sum per bin: a bin holding one customer of the whole consortium is still
exposed without DP. A bank that cares runs with a budget.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from flwr.app import Array, ArrayRecord, RecordDict

from credit import message_keys
from credit.encoding import FeatureEncoder
from credit.errors import MalformedMessage
from credit.gbdt import FeatureBins, bins_from_encoder, raw_matrix
from credit.messages import QueryInstructions, secagg
from credit.messages.gbdt import GbdtEncoding, GbdtLevelRequest, histograms_to_record
from participant.guard.bank import PreparedBank
from participant.guard.gbdt_bank import GbdtBank, LevelRefused, LevelRelease
from participant.guard.handlers import (
    BankRequest,
    GuardRefusal,
    checked_bank,
    privacy_guard,
    refusal_reply,
)
from participant.guard.secagg_client import SecAggSession, receive_keys
from privacy.errors import PrivacyBudgetExceeded
from privacy.gbdt_histogram import HISTOGRAM_CODE
from privacy.noise_keys import NoisePurpose

if TYPE_CHECKING:
    from participant.guard.privacy_guard import PrivacyGuard
    from privacy.accounting import DpEvent
    from privacy.noise import SecureGaussian

__all__ = ["bank_bins", "gbdt_level"]


def bank_bins(bank: PreparedBank, encoder: FeatureEncoder) -> FeatureBins:
    """The bins of ``encoder``, if it encodes the bank's schema's features.

    Raises
    ------
    GuardRefusal
        The encoder's features are not the schema's input features (by name), or its
        edges do not make bins.
    """
    schema_features = set(bank.schema.input_features)
    if set(encoder.features) != schema_features or len(encoder.features) != len(schema_features):
        raise GuardRefusal(
            "gbdt-encoder",
            f"bank '{bank.name}': the boosting encoder's features {list(encoder.features)} are "
            f"not the schema's {sorted(schema_features)}",
        )
    try:
        return bins_from_encoder(encoder)
    except ValueError as exc:
        raise GuardRefusal("gbdt-encoder", f"bank '{bank.name}': {exc}") from exc


def _boosting(
    request: BankRequest,
    bank: PreparedBank,
    encoder: FeatureEncoder,
    guard: PrivacyGuard | None,
) -> GbdtBank:
    """The bank's boosting state for the run, taken up from its last level (if any)."""
    bins = bank_bins(bank, encoder)
    codes = bins.codes(raw_matrix(bank.train, encoder))
    labels = bank.train[bank.schema.target].to_numpy(dtype=np.int64)
    query = QueryInstructions.take(request.content)
    boosting = GbdtBank(
        codes=codes,
        labels=labels,
        n_bins=bins.n_bins,
        run=query.run_key(request.flower_run_id),
        policy=request.settings.gbdt,
        ledger=None if guard is None else guard.ledger,
        noise_for=None if guard is None else _level_noise(guard),
    )
    stored = request.sessions.boosting_state(request.relayed.node_id, request.flower_run_id)
    if stored is not None:
        try:
            boosting.restore(stored)
        except ValueError as exc:  # the state of other codes: other edges than the run's
            raise GuardRefusal(
                "gbdt-level",
                f"bank '{bank.name}': {exc} (the level's edges are not the run's)",
            ) from exc
    return boosting


def _level_noise(guard: PrivacyGuard) -> Callable[[DpEvent], SecureGaussian]:
    """The guard's noise stream of a level's charged event (reproducible in a simulation
    with ``--reproducible-noise``; fresh OS-keyed otherwise)."""

    def noise(event: DpEvent) -> SecureGaussian:
        return guard.noise(event, NoisePurpose.GBDT_HISTOGRAM)

    return noise


def gbdt_level(request: BankRequest, query: QueryInstructions) -> RecordDict:
    """One level's histograms of the bank's training rows (module docstring).

    Secure aggregation's inputs are opened before anything is charged or computed.

    Raises
    ------
    GuardRefusal
        A run of another schema or split, a plain release from a bank that requires
        secure aggregation, an encoder not of the bank's schema, or a level the bank's
        rules refuse (out of order, beyond its policy, forged splits).
    MalformedMessage
        The level's secure sum is not in the histograms' 64-bit integer code.
    """
    orders = GbdtLevelRequest.take(request.content).orders
    encoder = GbdtEncoding.take(request.content).encoder
    inputs = secagg.TrainInputs.take_optional(request.content)
    bank = checked_bank(request, query)
    if inputs is None and request.settings.require_secure_aggregation:
        raise GuardRefusal(
            "plain-update",
            f"bank '{bank.name}' releases its boosting histograms only through secure "
            "aggregation; the level asks for them in the clear: run with secure aggregation on",
        )
    where = None if inputs is None else request.secagg
    if where is not None and inputs is not None:
        code = receive_keys(where, inputs)
        if code != HISTOGRAM_CODE:
            raise MalformedMessage(
                f"a boosting level is summed in {HISTOGRAM_CODE}; the level's code is {code}"
            )
    # Its ledger is charged and summarised; its noise streams are the guard's.
    guard = privacy_guard(bank, request.settings, noise_keys=request.noise_keys)
    boosting = _boosting(request, bank, encoder, guard)
    try:
        release = boosting.level(orders)
    except PrivacyBudgetExceeded as refusal:
        if guard is None:
            raise
        return refusal_reply(request, refusal, guard, query.run_key(request.flower_run_id))
    except LevelRefused as refused:
        raise GuardRefusal("gbdt-level", f"bank '{bank.name}': {refused}") from refused
    state = boosting.state_bytes()
    if state is not None:
        request.sessions.save_boosting_state(request.relayed.node_id, request.flower_run_id, state)
    content = _release_content(release, where, inputs)
    if guard is not None:
        guard.summary().put(content)
    return content


def _release_content(
    release: LevelRelease, where: SecAggSession | None, inputs: secagg.TrainInputs | None
) -> RecordDict:
    """The level's histograms in the clear, or masked for its secure sum."""
    if where is None or inputs is None:
        return RecordDict({message_keys.GBDT_HISTOGRAMS: histograms_to_record(release.histograms)})
    words = np.ascontiguousarray(release.histograms, dtype=np.int64).ravel().view(np.uint64)
    participant = where.participant()
    masked = participant.mask(
        inputs.server_round, np.zeros(0), 0.0, HISTOGRAM_CODE, extra=words, whole_roster=True
    )
    where.sessions.save(participant)
    return RecordDict(
        {message_keys.ARRAYS: ArrayRecord({message_keys.SECAGG_MASKED: Array(masked)})}
    )
