"""The message contract between the coordinator and the banks, as frozen types.

A run's path over Flower's Message API (record keys in :mod:`credit.message_keys`)::

    coordinator                                         bank
    ───────────                                         ────
    query  config=QueryInstructions(task=feature-stats)
           [secagg=KeyRequest]              ─────────▶
                                            ◀─────────  bank=BankIntro, feature-stats arrays,
                                                        [privacy=LedgerSummary], [secagg=Enrollment]
                                                        or refusal=Refusal (+ privacy)
    [query config=QueryInstructions(task=secagg-advertise),
           secagg-advertise=AdvertiseRequest(1)  ───▶
                                            ◀─────────  secagg-advertise=Advertisement]
  round r = 1..R:
    train  config=RoundInstructions, arrays=global weights (round r-1's model)
           [evaluate=EvaluateRequest(r-1)]           (from round 2 on)
           [secagg=TrainInputs]             ─────────▶
                                            ◀─────────  [evaluation=EvaluationSums,
                                                         evaluation-scores arrays]  (when asked)
                                                        arrays=weights or masked update,
                                                        metrics=TrainMetrics,
                                                        [privacy=LedgerSummary]
                                                        or refusal=Refusal (+ privacy)
    [query config=QueryInstructions(task=secagg-consistency),
           secagg=ConsistencyRequest(U2)    ─────────▶
                                            ◀─────────  secagg=SurvivorSignature]
    [query config=QueryInstructions(task=secagg-unmask), secagg=UnmaskRequest,
           [secagg-advertise=AdvertiseRequest(r+1)]  (before the last round)
                                            ─────────▶
                                            ◀─────────  secagg=Reveal,
                                                        [secagg-advertise=Advertisement]]
  after the last round (or a run that ends early before its last model is scored):
    evaluate config=RoundInstructions, arrays=the last model,
             governance=GovernanceRequest  [secagg=TrainInputs]
                                            ─────────▶
                                            ◀─────────  scores arrays, metrics=EvaluationSums,
                                                        [governance-sums arrays]
                                                        (under secure aggregation: arrays=
                                                        the masked evaluation and sums)

Brackets mark what only some runs (secure aggregation, privacy budgets) or rounds
send. A plain round is one exchange and a secure round three (train, consistency,
unmask): round r's train message
also scores round r-1's model, and round r's unmask query also collects the keys of
round r+1 (a bank that is not asked to unmask, having dropped out of round r or
refused it, is sent the advertise query in the same exchange). One evaluate exchange
scores the last model. A simulated bank that drops out answers
``dropped=Dropped(stage)`` instead.
"""

from __future__ import annotations

from credit.messages._parts import MessagePart, content_of
from credit.messages.audit import AuditHead
from credit.messages.replies import (
    BankIntro,
    Dropped,
    EvaluationDeclined,
    EvaluationSums,
    LedgerEvent,
    LedgerSummary,
    ProtocolStage,
    Refusal,
    TrainMetrics,
    feature_stats_from_record,
    feature_stats_to_record,
    governance_sums_from_content,
    governance_sums_to_record,
    score_summary_from_content,
    score_summary_to_content,
)
from credit.messages.requests import (
    EvaluateRequest,
    EvaluationRows,
    GovernanceRequest,
    QueryInstructions,
    RoundInstructions,
    RunInstructions,
    Task,
)

__all__ = [
    "AuditHead",
    "BankIntro",
    "Dropped",
    "EvaluateRequest",
    "EvaluationDeclined",
    "EvaluationRows",
    "EvaluationSums",
    "GovernanceRequest",
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
    "governance_sums_from_content",
    "governance_sums_to_record",
    "score_summary_from_content",
    "score_summary_to_content",
]
