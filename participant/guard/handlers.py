"""What a bank does for each kind of request: one handler per task, one reply each.

Each handler takes the typed :class:`BankRequest` (the relayed request and its
content, the bank's rows as the guard loaded them, its settings and its
secure-aggregation sessions) and returns the reply's content. A request the
bank's privacy budget does not allow is answered with a typed refusal
(:func:`refusal_reply`); anything else that goes wrong raises, the guard refuses the
request (:mod:`participant.guard.bank_guard`), and the relay turns the refusal into
Flower's error reply, which the coordinator counts as this bank's failure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from flwr.app import ArrayRecord, RecordDict

from credit import message_keys
from credit.audit import AuditLog
from credit.errors import MalformedMessage
from credit.feature_stats import FeatureStats, compute_feature_stats
from credit.governance.release import GovernanceLayout, governance_vector
from credit.messages import (
    BankIntro,
    EvaluateRequest,
    EvaluationDeclined,
    EvaluationRows,
    GovernanceRequest,
    QueryInstructions,
    Refusal,
    RoundInstructions,
    RunInstructions,
    TrainMetrics,
    feature_stats_to_record,
    governance_sums_to_record,
    score_summary_to_content,
    secagg,
)
from credit.messages.replies import MAX_REFUSAL_DETAIL
from credit.metrics import evaluation_vector
from credit.records import flatten, record_of
from participant.contract import GuardRequest
from participant.guard.audit_trail import (
    record_evaluate,
    record_join,
    record_refusal,
    record_run_end,
    record_train,
)
from participant.guard.bank import PreparedBank
from participant.guard.evaluation import (
    Evaluation,
    evaluate_holdout,
    governance_layout,
    governance_problem,
    policy_problem,
)
from participant.guard.local_update import LocalUpdate, local_update, model_sha256
from participant.guard.secagg_client import (
    SecAggSession,
    UnpinnedMembers,
    advertise,
    enrollment,
    identity_of,
    mask_totals,
    mask_update,
    receive_keys,
    reveal,
    round_members,
    sign_survivors,
)
from participant.guard.sessions import RunEnd, SessionStore
from participant.guard.settings import GuardSettings
from privacy.errors import PrivacyBudgetExceeded
from privacy.noise_keys import FreshNoiseKeys, NoiseKeys
from privacy.secagg.fixed_point import FixedPoint

if TYPE_CHECKING:
    from participant.guard.privacy_guard import PrivacyGuard

__all__ = [
    "BankRequest",
    "GuardRefusal",
    "advertise_keys",
    "consistency",
    "enroll",
    "evaluate",
    "feature_stats",
    "refusal_reply",
    "train",
    "unmask",
]


class GuardRefusal(ValueError):
    """A request the bank refuses before touching its rows; ``kind`` names the rule.

    The guard records it in the bank's audit log and answers the relay with the reason.
    """

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind


@dataclass(frozen=True)
class BankRequest:
    """One relayed message as the bank's handlers see it.

    Attributes
    ----------
    relayed : GuardRequest
        The message's kind, run and node, as the relay handed them (untrusted).
    content : RecordDict
        The coordinator's message content (untrusted input).
    bank : PreparedBank
        The bank's validated rows and its fixed hold-out split.
    settings : GuardSettings
        The bank's own configuration.
    sessions : SessionStore
        Where the bank keeps its secure-aggregation state.
    audit : AuditLog or None
        The bank's open audit log (None: it keeps none).
    noise_keys : NoiseKeys
        Keys of the bank's DP noise streams (the guard's: fresh from ``os.urandom``
        unless a simulation built it with reproducible noise).
    """

    relayed: GuardRequest
    content: RecordDict
    bank: PreparedBank
    settings: GuardSettings
    sessions: SessionStore
    audit: AuditLog | None
    noise_keys: NoiseKeys = field(default_factory=FreshNoiseKeys)

    @property
    def flower_run_id(self) -> int:
        """Flower's id of the run the message belongs to."""
        return self.relayed.flower_run_id

    @property
    def secagg(self) -> SecAggSession:
        """This node's secure-aggregation session for the message's run.

        Raises
        ------
        GuardRefusal
            The bank pinned no member list (or its list changed, or does not name
            it with its audit key): secure aggregation fails closed.
        """
        from credit.errors import ConfigError

        try:
            identity = identity_of(self.settings)
        except (UnpinnedMembers, ConfigError) as exc:
            raise GuardRefusal("secagg-members", str(exc)) from exc
        return SecAggSession(
            self.sessions, self.relayed.node_id, self.relayed.flower_run_id, identity
        )


def checked_bank(request: BankRequest, instructions: RunInstructions) -> PreparedBank:
    """The bank's rows, for a run of the bank's schema and hold-out split only.

    Raises
    ------
    GuardRefusal
        The run uses another schema, or asks for another hold-out split than the
        one the bank fixed.
    """
    bank, holdout = request.bank, request.settings.holdout
    if bank.schema.schema_hash() != instructions.schema_hash:
        raise GuardRefusal(
            "schema",
            f"bank '{bank.name}' uses a different dataset schema "
            f"({bank.schema.schema_hash()[:12]}) from the run's ({instructions.schema_hash[:12]}); "
            "install the consortium's schema",
        )
    if instructions.test_fraction != holdout.fraction:
        raise GuardRefusal(
            "holdout-split",
            f"bank '{bank.name}' holds out {holdout.fraction:g} of its rows; the run asks for "
            f"test-fraction {instructions.test_fraction:g}: the bank's split is fixed, ask the "
            "operator to run with the banks' test fraction",
        )
    if instructions.validation_fraction != holdout.validation_fraction:
        raise GuardRefusal(
            "holdout-split",
            f"bank '{bank.name}' keeps {holdout.validation_fraction:g} of its training rows "
            f"as its validation part; the run asks for validation-fraction "
            f"{instructions.validation_fraction:g}: the bank's split is fixed, ask the "
            "operator to run with the banks' validation fraction",
        )
    return bank


def privacy_guard(
    bank: PreparedBank, settings: GuardSettings, *, noise_keys: NoiseKeys | None = None
) -> PrivacyGuard | None:
    """A guard over the bank's ledger file, re-read for every request.

    Its ledger summaries are signed with the bank's audit key (the one its audit log
    is signed with); a bank that keeps no audit log sends them unsigned. Its noise
    streams are keyed by ``noise_keys`` (default: fresh from ``os.urandom``).
    """
    budget, ledger = settings.budget, settings.ledger_path
    if budget is None or ledger is None:  # GuardSettings refuses a budget without a ledger
        return None
    from credit.audit import load_or_create_signing_key
    from participant.guard.privacy_guard import PrivacyGuard

    audit = settings.audit_settings()
    return PrivacyGuard(
        bank=bank.name,
        budget=budget,
        ledger_path=ledger,
        n_train=len(bank.train),
        signing_key=None if audit is None else load_or_create_signing_key(audit.key_path),
        setup=settings.setup,
        noise_keys=noise_keys,
    )


def refusal_reply(
    request: BankRequest, refusal: PrivacyBudgetExceeded, guard: PrivacyGuard, run: str
) -> RecordDict:
    """A typed refusal: the coordinator learns who refused and why, nothing else."""
    record_refusal(
        request.audit,
        run=run,
        server_round=refusal.server_round,
        kind="privacy-budget",
        reason=str(refusal),
    )
    content = RecordDict()
    Refusal(
        bank=refusal.bank,
        reason=type(refusal).__name__,
        spent=refusal.spent,
        requested=refusal.requested,
        maximum=refusal.maximum,
        server_round=refusal.server_round,
        detail=_one_line(refusal.detail),
    ).put(content)
    guard.summary().put(content)
    return content


def _one_line(detail: str | None) -> str | None:
    """A refusal's detail as a :class:`Refusal` carries it: one printable line, bounded."""
    if not detail:
        return None
    printable = "".join(char if char.isprintable() else " " for char in detail)
    return printable[:MAX_REFUSAL_DETAIL]


def _introduction(bank: PreparedBank) -> RecordDict:
    """The bank's name and row counts (public: see the privacy model)."""
    content = RecordDict()
    BankIntro(name=bank.name, n_train=len(bank.train)).put(content)
    return content


def _join(request: BankRequest, query: QueryInstructions) -> PreparedBank:
    """The bank's rows for a run it joins; the join is recorded in its audit log."""
    from credit.errors import ConfigError
    from credit.run_config import RunConfig

    bank = checked_bank(request, query)
    try:
        digest: str | None = RunConfig.from_flower(request.relayed.run_config).digest()
    except ConfigError:
        digest = None
    record_join(request.audit, query, flower_run_id=request.flower_run_id, config_sha256=digest)
    return bank


def feature_stats(request: BankRequest, query: QueryInstructions) -> RecordDict:
    """Aggregates of the training rows (noisy under a privacy budget), never rows.

    In the clear with the bank's introduction, or, when the query carries secure
    aggregation's inputs (round 0), masked: the coordinator decodes only the sum. A
    bank that requires secure aggregation refuses to release them in the clear.
    """
    inputs = secagg.TrainInputs.take_optional(request.content)
    if inputs is not None:
        return _masked_feature_stats(request, query, inputs)
    if request.settings.require_secure_aggregation:
        raise GuardRefusal(
            "plain-update",
            f"bank '{request.bank.name}' releases its set-up aggregates only through secure "
            "aggregation; the run asks for them in the clear: run with secure aggregation on",
        )
    bank = _join(request, query)
    content = _introduction(bank)
    released = _released_stats(request, bank, query, content)
    if isinstance(released, RecordDict):
        return released  # refused
    content[message_keys.FEATURE_STATS] = feature_stats_to_record(released)
    if secagg.KeyRequest.present(request.content):
        enrollment(request.secagg).put(content)
    return content


def _masked_feature_stats(
    request: BankRequest, query: QueryInstructions, inputs: secagg.TrainInputs
) -> RecordDict:
    """The aggregates as this bank's input of secure round 0 (the bank joined already)."""
    bank = checked_bank(request, query)
    code = receive_keys(request.secagg, inputs)
    content = RecordDict()
    released = _released_stats(request, bank, query, content)
    if isinstance(released, RecordDict):
        return released  # refused
    masked = mask_totals(
        request.secagg, server_round=inputs.server_round, code=code, totals=released.to_vector()
    )
    content[message_keys.ARRAYS] = masked
    return content


def _released_stats(
    request: BankRequest, bank: PreparedBank, query: QueryInstructions, content: RecordDict
) -> FeatureStats | RecordDict:
    """The aggregates the bank releases (noisy and charged under a budget; its ledger
    summary put in ``content``), or its refusal reply."""
    from participant.guard.privacy_guard import training_request

    stats = compute_feature_stats(bank.train, bank.schema, query.grid_bins)
    guard = privacy_guard(bank, request.settings, noise_keys=request.noise_keys)
    if guard is None:
        return stats
    run = query.run_key(request.flower_run_id)
    try:
        asked = training_request(query, run=run, server_round=0)
        stats = guard.release_feature_stats(stats, bank.schema, asked)
    except PrivacyBudgetExceeded as refusal:
        return refusal_reply(request, refusal, guard, run)
    guard.summary().put(content)
    return stats


def enroll(request: BankRequest, query: QueryInstructions) -> RecordDict:
    """Join a run without a data release: name and training rows, a new encryption key.

    A new run whose encoder comes from public bounds or whose aggregates follow in
    secure round 0 (``join``), or a resumed run (``enroll``). A bank with a budget
    also reports its ledger summary.
    """
    bank = _join(request, query)
    content = _introduction(bank)
    guard = privacy_guard(bank, request.settings, noise_keys=request.noise_keys)
    if guard is not None:
        guard.summary().put(content)
    if secagg.KeyRequest.present(request.content):
        enrollment(request.secagg).put(content)
    return content


def advertise_keys(request: BankRequest, query: QueryInstructions) -> RecordDict:
    """Keys and sealed shares for the requested round.

    Asked at set-up (or resume) for the first round, and of a bank that is not asked to
    unmask a round (it did not send a masked update) for the next one.
    """
    asked = secagg.AdvertiseRequest.take(request.content)
    advertisement = advertise(request.secagg, asked)
    if advertisement is None:
        raise ValueError("this bank is not in the run's secure-aggregation roster")
    content = RecordDict()
    advertisement.put(content)
    return content


def consistency(request: BankRequest, query: QueryInstructions) -> RecordDict:
    """The bank's signature of the round's survivor set (the consistency check).

    Signed only if the set is a subset of the keys the bank masked with, holds the
    bank and reaches the threshold; a second, different set is refused.
    """
    asked = secagg.ConsistencyRequest.take(request.content)
    content = RecordDict()
    sign_survivors(request.secagg, asked).put(content)
    return content


def unmask(request: BankRequest, query: QueryInstructions) -> RecordDict:
    """The shares the coordinator needs to unmask the round's sum, and no others.

    The query may also ask for the next round's keys (an advertise request beside the
    unmask request): the reply then carries them beside the shares.
    """
    asked = secagg.UnmaskRequest.take(request.content)
    content = RecordDict()
    reveal(request.secagg, asked).put(content)
    _advertise_if_asked(request, content)
    ends = request.secagg.sessions.run_end(request.secagg.node_id, request.secagg.run)
    if ends is not None and ends.secure_round == asked.server_round:
        record_run_end(
            request.audit,
            query,
            server_round=ends.scored_round,
            flower_run_id=request.flower_run_id,
        )
    return content


def _final_evaluation(instructions: RoundInstructions, asked: EvaluateRequest) -> bool:
    """Whether the evaluation asked is the run's last: of the held-out rows in a run with
    validation parts (the kept model's), of the last planned round's model without."""
    if instructions.validation_fraction > 0:
        return asked.rows == EvaluationRows.TEST
    return asked.server_round >= instructions.planned_rounds


def _advertise_if_asked(request: BankRequest, content: RecordDict) -> None:
    """Put the keys of the round ``request`` asks for into ``content`` (if it asks)."""
    asked = secagg.AdvertiseRequest.take_optional(request.content)
    if asked is None:
        return
    advertisement = advertise(request.secagg, asked)
    if advertisement is not None:
        advertisement.put(content)


def train(request: BankRequest) -> RecordDict:
    """One round of local training; the update in the clear or masked.

    When the message asks (:class:`~credit.messages.EvaluateRequest`), the bank first
    scores the global model it received, the previous round's, on the rows the request
    names (its validation part, or its held-out rows)
    (:mod:`participant.guard.evaluation`: bounded, noisy under a budget). Under secure
    aggregation that evaluation is masked together with the update; in the clear it
    travels beside the update, or beside a refusal.
    """
    content_in = request.content
    instructions = RoundInstructions.take(content_in)
    global_arrays = record_of(content_in, message_keys.ARRAYS, ArrayRecord)
    inputs = secagg.TrainInputs.take_optional(content_in)
    asked = _evaluate_request(content_in, instructions)
    bank = checked_bank(request, instructions)
    if asked is not None:
        _check_evaluation_policy(request, instructions)
    if inputs is None and request.settings.require_secure_aggregation:
        raise GuardRefusal(
            "plain-update",
            f"bank '{bank.name}' sends its model update only through secure aggregation; "
            "the round asks for it in the clear: run with secure aggregation on",
        )
    # Secure aggregation's inputs are opened before anything is charged or trained.
    code = None if inputs is None else receive_keys(request.secagg, inputs)
    members = None if inputs is None else round_members(request.secagg, inputs.server_round)
    guard = privacy_guard(bank, request.settings, noise_keys=request.noise_keys)
    run = instructions.run_key(request.flower_run_id)
    evaluation = None
    if asked is not None:
        closes = _final_evaluation(instructions, asked)  # a model past the plan's last
        evaluation = _evaluation(
            request, bank, instructions, global_arrays, asked, guard, closes=closes
        )
    try:
        update = local_update(
            bank, instructions, global_arrays, guard=guard, run=run, members=members
        )
    except PrivacyBudgetExceeded as refusal:
        if guard is None:
            raise
        refused = refusal_reply(request, refusal, guard, run)
        return refused if inputs is not None else _beside(_plain_evaluation(evaluation), refused)
    if inputs is None or code is None:
        content = _beside(_plain_evaluation(evaluation), _plain_reply(update))
    else:
        content = _masked_reply(request, update, global_arrays, inputs, code, evaluation)
    if guard is not None:
        guard.summary().put(content)
    record_train(
        request.audit,
        instructions,
        flower_run_id=request.flower_run_id,
        model_sha256=model_sha256(global_arrays),
        epsilon=update.epsilon,
        num_examples=update.num_examples,
        secure=inputs is not None,
        replayed=update.replayed,
    )
    return content


def _evaluate_request(
    content: RecordDict, instructions: RoundInstructions
) -> EvaluateRequest | None:
    """A train message's request to score its model, which must be the previous round's.

    Raises
    ------
    MalformedMessage
        The request is malformed, or names another round than the one before.
    """
    asked = EvaluateRequest.take_optional(content)
    if asked is not None and asked.server_round != instructions.server_round - 1:
        raise MalformedMessage(
            f"record '{message_keys.EVALUATE}': a train message of round "
            f"{instructions.server_round} carries round {instructions.server_round - 1}'s "
            f"model, not round {asked.server_round}'s"
        )
    return asked


def _check_evaluation_policy(request: BankRequest, instructions: RoundInstructions) -> None:
    """Refuse a request for more score bins than the bank's policy releases."""
    problem = policy_problem(
        request.settings.evaluation, instructions.score_bins, request.bank.name
    )
    if problem is not None:
        raise GuardRefusal("evaluation-policy", problem)


def _evaluation(
    request: BankRequest,
    bank: PreparedBank,
    instructions: RoundInstructions,
    global_arrays: ArrayRecord,
    asked: EvaluateRequest,
    guard: PrivacyGuard | None,
    *,
    closes: bool,
    governance: GovernanceLayout | None = None,
) -> Evaluation:
    """The received model (of round ``asked.server_round``) scored on the rows asked for.

    A release the held-out rows' budget does not allow is declined (and recorded as a
    refusal in the bank's audit log); training is judged on its own. ``closes``: the
    run's last evaluation, released in the clear: the audit log's run-end follows it
    (under secure aggregation the run ends at the unmask instead: :func:`unmask`).
    ``governance``: the governance release asked with it (checked already).
    """
    run = instructions.run_key(request.flower_run_id)
    try:
        evaluation = evaluate_holdout(
            bank,
            instructions,
            global_arrays,
            policy=request.settings.evaluation,
            guard=guard,
            run=run,
            server_round=asked.server_round,
            governance=governance,
            rows=asked.rows,
        )
    except PrivacyBudgetExceeded as refusal:
        record_refusal(
            request.audit,
            run=run,
            server_round=asked.server_round,
            kind="privacy-budget",
            reason=f"evaluation: {refusal}",
        )
        return Evaluation(summary=None, declined=f"evaluation: {refusal}")
    if evaluation.governance_declined is not None:
        record_refusal(
            request.audit,
            run=run,
            server_round=asked.server_round,
            kind="privacy-budget",
            reason=evaluation.governance_declined,
        )
    if evaluation.summary is not None:
        record_evaluate(
            request.audit,
            instructions,
            server_round=asked.server_round,
            flower_run_id=request.flower_run_id,
            model_sha256=model_sha256(global_arrays),
            closes=closes,
        )
    return evaluation


def _plain_evaluation(
    evaluation: Evaluation | None,
    *,
    scores_key: str = message_keys.EVALUATION_SCORES,
    sums_key: str = message_keys.EVALUATION,
) -> RecordDict:
    """An evaluation's records in the clear (none if not asked; a decline if declined)."""
    if evaluation is None:
        return RecordDict()
    if evaluation.summary is None:
        content = RecordDict()
        EvaluationDeclined(reason=evaluation.declined or "declined").put(content)
        return content
    return score_summary_to_content(evaluation.summary, scores_key=scores_key, sums_key=sums_key)


def _beside(evaluation: RecordDict, content: RecordDict) -> RecordDict:
    """``content`` with the records of ``evaluation`` added (keys never overlap)."""
    for key, record in evaluation.items():
        content[key] = record
    return content


def _plain_reply(update: LocalUpdate) -> RecordDict:
    """The bank's weights, row count and (without DP) training loss, in the clear."""
    content = RecordDict({message_keys.ARRAYS: update.arrays})
    metrics = TrainMetrics(
        num_examples=update.num_examples, train_loss=update.train_loss, epsilon=update.epsilon
    )
    metrics.put(content)
    return content


def _masked_reply(
    request: BankRequest,
    update: LocalUpdate,
    global_arrays: ArrayRecord,
    inputs: secagg.TrainInputs,
    code: FixedPoint,
    evaluation: Evaluation | None,
) -> RecordDict:
    """The update and the evaluation masked for secure aggregation; nothing else per bank.

    The bank masks ``n_train * [update - global, loss, reported]``, its weight, and
    its evaluation (:func:`~credit.metrics.evaluation_vector`: zeros if none), so the
    coordinator decodes only the weighted mean update, the mean loss of the banks that
    report one (banks under DP report none) and the consortium's evaluation.
    """
    instructions = RoundInstructions.take(request.content)
    delta = flatten(update.arrays) - flatten(global_arrays)
    reported = 0.0 if update.train_loss is None else 1.0
    values = np.append(delta, [(update.train_loss or 0.0) * reported, reported])
    summary = evaluation.summary if evaluation is not None else None
    masked = mask_update(
        request.secagg,
        server_round=inputs.server_round,
        values=values,
        weight=float(update.num_examples),
        code=code,
        totals=evaluation_vector(summary, instructions.score_bins),
    )
    content = RecordDict({message_keys.ARRAYS: masked})
    TrainMetrics(epsilon=update.epsilon).put(content)
    return content


def evaluate(request: BankRequest) -> RecordDict:
    """Score the global model on the bank's held-out rows: histograms and sums, never scores.

    With secure aggregation's inputs in the message, the evaluation is masked (an
    input of its own secure sum); otherwise it travels in the clear. A
    :class:`~credit.messages.GovernanceRequest` in the message (the run's last model)
    adds the governance release: in the clear beside the evaluation, or masked after
    it in the same vector (:func:`~credit.governance.release.governance_vector`:
    zeros when it is not released).
    """
    content_in = request.content
    instructions = RoundInstructions.take(content_in)
    global_arrays = record_of(content_in, message_keys.ARRAYS, ArrayRecord)
    inputs = secagg.TrainInputs.take_optional(content_in)
    bank = checked_bank(request, instructions)
    _check_evaluation_policy(request, instructions)
    layout = _governance_asked(request, bank, instructions)
    code = None if inputs is None else receive_keys(request.secagg, inputs)
    if layout is not None and code is not None and code.ring_bits < 64:
        raise MalformedMessage(
            f"the governance release is masked in the 64-bit ring; the round's code is "
            f"{code.ring_bits}-bit"
        )
    guard = privacy_guard(bank, request.settings, noise_keys=request.noise_keys)
    asked = _rows_asked(request.content, instructions, layout)
    evaluation = _evaluation(
        request,
        bank,
        instructions,
        global_arrays,
        asked,
        guard,
        closes=inputs is None and _final_evaluation(instructions, asked),
        governance=layout,
    )
    if inputs is not None and _final_evaluation(instructions, asked):
        request.secagg.sessions.end_run_at(
            request.secagg.node_id,
            request.secagg.run,
            RunEnd(secure_round=inputs.server_round, scored_round=asked.server_round),
        )
    if inputs is None or code is None:
        content = _plain_evaluation(
            evaluation, scores_key=message_keys.SCORES, sums_key=message_keys.METRICS
        )
        if evaluation.governance is not None:
            vector = evaluation.governance.to_vector()
            content[message_keys.GOVERNANCE_SUMS] = governance_sums_to_record(vector)
    else:
        sums = None if layout is None else governance_vector(evaluation.governance, layout)
        masked = mask_totals(
            request.secagg,
            server_round=inputs.server_round,
            code=code,
            totals=evaluation_vector(evaluation.summary, instructions.score_bins),
            fine_totals=sums,
        )
        content = RecordDict({message_keys.ARRAYS: masked})
    if guard is not None:
        guard.summary().put(content)
    return content


def _rows_asked(
    content: RecordDict, instructions: RoundInstructions, layout: GovernanceLayout | None
) -> EvaluateRequest:
    """What an evaluate message asks to score: its own round's model, on the rows it names.

    Without an :class:`~credit.messages.EvaluateRequest` the held-out rows.

    Raises
    ------
    MalformedMessage
        The request names another round than the message's, or asks for the
        governance release with the validation part (it is about the held-out rows).
    """
    asked = EvaluateRequest.take_optional(content)
    if asked is None:
        return EvaluateRequest(server_round=instructions.server_round)
    if asked.server_round != instructions.server_round:
        raise MalformedMessage(
            f"record '{message_keys.EVALUATE}': an evaluate message of round "
            f"{instructions.server_round} names round {asked.server_round}"
        )
    if layout is not None and asked.rows != EvaluationRows.TEST:
        raise MalformedMessage(
            f"record '{message_keys.EVALUATE}': the governance release is about the "
            f"held-out rows; the message asks for the {asked.rows} rows"
        )
    return asked


def _governance_asked(
    request: BankRequest, bank: PreparedBank, instructions: RoundInstructions
) -> GovernanceLayout | None:
    """The governance release an evaluate message asks for (None: none), by the bank's rules.

    Raises
    ------
    GuardRefusal
        More calibration bins than the bank's policy releases, or a cut-off off the
        run's score-bin grid (:func:`~participant.guard.evaluation.governance_problem`).
    """
    asked = GovernanceRequest.take_optional(request.content)
    if asked is None:
        return None
    problem = governance_problem(
        request.settings.evaluation, asked, instructions.score_bins, bank.name
    )
    if problem is not None:
        raise GuardRefusal("evaluation-policy", problem)
    return governance_layout(bank, asked, instructions.score_bins)
