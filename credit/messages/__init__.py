"""The message contract between the coordinator and the banks, as frozen types.

One round's path over Flower's Message API (record keys in :mod:`credit.message_keys`)::

    coordinator                                         bank
    ───────────                                         ────
    query  config=QueryInstructions(task=feature-stats)
           [secagg=KeyRequest]              ─────────▶
                                            ◀─────────  bank=BankIntro, feature-stats arrays,
                                                        [privacy=LedgerSummary], [secagg=Enrollment]
                                                        or refusal=Refusal (+ privacy)
    train  config=RoundInstructions, arrays=global weights
           [secagg=TrainInputs]             ─────────▶
                                            ◀─────────  arrays=weights or masked update,
                                                        metrics=TrainMetrics,
                                                        [privacy=LedgerSummary]
                                                        or refusal=Refusal (+ privacy)
    query  config=QueryInstructions(task=secagg-unmask), secagg=UnmaskRequest
                                            ─────────▶
                                            ◀─────────  secagg=Reveal
    evaluate config=RoundInstructions, arrays=new weights
           [secagg=AdvertiseRequest]        ─────────▶
                                            ◀─────────  scores arrays, metrics=EvaluationSums,
                                                        [secagg=Advertisement]

A simulated bank that drops out answers ``dropped=Dropped(stage)`` instead.
"""

from __future__ import annotations

from credit.messages._parts import MessagePart, content_of
from credit.messages.replies import (
    BankIntro,
    Dropped,
    EvaluationSums,
    LedgerEvent,
    LedgerSummary,
    ProtocolStage,
    Refusal,
    TrainMetrics,
    feature_stats_from_record,
    feature_stats_to_record,
    score_summary_from_content,
    score_summary_to_content,
)
from credit.messages.requests import QueryInstructions, RoundInstructions, RunInstructions, Task

__all__ = [
    "BankIntro",
    "Dropped",
    "EvaluationSums",
    "LedgerEvent",
    "LedgerSummary",
    "MessagePart",
    "ProtocolStage",
    "QueryInstructions",
    "Refusal",
    "RoundInstructions",
    "RunInstructions",
    "Task",
    "TrainMetrics",
    "content_of",
    "feature_stats_from_record",
    "feature_stats_to_record",
    "score_summary_from_content",
    "score_summary_to_content",
]
