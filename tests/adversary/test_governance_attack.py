"""A malicious coordinator goes after the governance release (calibration and fairness sums).

The bank releases, with its evaluation of a run's last model, its calibration sums and
the fairness sums of its schema's protected columns (:mod:`credit.governance.release`).
What a coordinator controls in that request is the number of calibration bins, the
decision cut-off and how often it asks; the groups, bands and score bins come from the
bank's own schema and policy. Against the bank's guard:

* asking for the governance release in every evaluation gets it once per run (a
  bank with a budget: its ledger), and the evaluations beside it go on;
* a cut-off between two score-bin edges (which could split the customers of one bin
  and isolate one of them) is refused;
* more calibration bins than the bank's policy releases are refused;
* groups or bands of the coordinator's choosing cannot even be asked for: the request
  has no such entries, a request carrying them is malformed, and the released vector
  is laid out by the bank's schema;
* a train message cannot ask for it;
* and where the attacker's model singles out one held-out customer, the noisy
  governance sums let it guess that customer's label no better than epsilon allows.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from flwr.app import ConfigRecord, MessageType, RecordDict

from credit import message_keys as keys
from credit.encoding import FeatureEncoder
from credit.governance.release import GovernanceLayout, GovernanceSums, governance_sensitivity
from credit.messages import (
    EvaluateRequest,
    EvaluationDeclined,
    GovernanceRequest,
    governance_sums_from_content,
    score_summary_from_content,
)
from credit.schema import DatasetSchema
from participant.guard.bank_guard import BankGuard
from participant.relay.client_app import GuardRefused
from privacy.ledger import read_ledger
from tests.adversary.test_evaluation_attack import (
    EPSILON,
    TRIALS_PER_LABEL,
    _ask,
    _evaluate_content,
    _target_model,
)
from tests.participant.guard.bank_messages import acme_settings, context, guarded_app, message

Attack = tuple[Path, Path, pd.DataFrame, FeatureEncoder]
SCORE_BINS = 100


def _asking(content: RecordDict, *, calibration_bins: int = 10, cutoff: float = 0.5) -> RecordDict:
    """``content`` with a governance request added."""
    GovernanceRequest(calibration_bins=calibration_bins, decision_cutoff=cutoff).put(content)
    return content


def _layout(schema: DatasetSchema) -> GovernanceLayout:
    return GovernanceLayout.of(schema, calibration_bins=10, score_bins=SCORE_BINS, cutoff=0.5)


def _governance_events(ledger: Path) -> list[float]:
    """The sensitivities of the ledger's governance releases."""
    return [
        event.max_grad_norm
        for event in read_ledger(ledger).events
        if event.kind == "evaluation-release" and event.max_grad_norm > 2.0
    ]


def test_asking_for_the_governance_release_in_every_evaluation_gets_it_once(
    schema: DatasetSchema, attack: Attack
) -> None:
    original, _, target, encoder = attack
    log = original.parent / "audit.jsonl"
    settings = acme_settings(original, max_epsilon=EPSILON, audit_log=log)
    guard = BankGuard(settings)
    arrays = _target_model(encoder, target)
    layout = _layout(schema)

    def evaluate() -> RecordDict:  # the run announced three evaluations
        content = _evaluate_content(schema, encoder, arrays, planned_evaluations=3)
        return _ask(guard, _asking(content))

    first, second, third = evaluate(), evaluate(), evaluate()

    assert governance_sums_from_content(first, length=layout.length) is not None
    for later in (second, third):  # the evaluations go on, the governance sums do not
        assert not EvaluationDeclined.present(later)
        score_summary_from_content(later, score_bins=SCORE_BINS)
        assert governance_sums_from_content(later, length=layout.length) is None
    assert settings.ledger_path is not None
    assert _governance_events(settings.ledger_path) == [governance_sensitivity(4)]
    guard.close()
    refusals = [entry for entry in _entries(log) if entry["event"] == "refusal"]
    assert [r["data"]["kind"] for r in refusals] == ["privacy-budget"] * 2
    assert all(r["data"]["reason"].startswith("governance: ") for r in refusals)


def _entries(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


@pytest.mark.parametrize("cutoff", [0.333, 0.505, 1e-9])
def test_a_cutoff_between_score_bin_edges_is_refused(
    schema: DatasetSchema, attack: Attack, cutoff: float
) -> None:
    original, _, target, encoder = attack
    guard = BankGuard(acme_settings(original, max_epsilon=None))
    content = _asking(
        _evaluate_content(schema, encoder, _target_model(encoder, target)), cutoff=cutoff
    )
    with pytest.raises(GuardRefused, match=r"cut-off on the run's score-bin grid only"):
        _ask(guard, content)


def test_more_calibration_bins_than_the_banks_policy_are_refused(
    schema: DatasetSchema, attack: Attack
) -> None:
    original, _, target, encoder = attack
    guard = BankGuard(acme_settings(original, max_epsilon=None))
    content = _asking(
        _evaluate_content(schema, encoder, _target_model(encoder, target)), calibration_bins=11
    )
    with pytest.raises(GuardRefused, match="at most 10 calibration bins; the run asks for 11"):
        _ask(guard, content)


@pytest.mark.parametrize(
    "entry", [{"protected": "ID"}, {"bands": "18,18.5,19"}, {"groups": "1"}, {"score-bins": 10_000}]
)
def test_groups_or_bands_of_the_coordinators_choosing_are_refused(
    schema: DatasetSchema, attack: Attack, entry: dict[str, str | int]
) -> None:
    original, _, target, encoder = attack
    guard = BankGuard(acme_settings(original, max_epsilon=None))
    content = _evaluate_content(schema, encoder, _target_model(encoder, target))
    content[keys.GOVERNANCE] = ConfigRecord(
        {"calibration-bins": 10, "decision-cutoff": 0.5, **entry}
    )
    with pytest.raises(GuardRefused, match="record 'governance'"):
        _ask(guard, content)


def test_the_release_is_laid_out_by_the_banks_schema(schema: DatasetSchema, attack: Attack) -> None:
    original, _, target, encoder = attack
    guard = BankGuard(acme_settings(original, max_epsilon=None))
    reply = _ask(guard, _asking(_evaluate_content(schema, encoder, _target_model(encoder, target))))

    layout = _layout(schema)
    vector = governance_sums_from_content(reply, length=layout.length)
    assert vector is not None
    sums = GovernanceSums.from_vector(vector, layout)
    held_out = len(guard.bank.test)
    assert sums.calibration.count.sum() == held_out
    # Every protected column of the schema, each group of its levels or bands, every row once.
    assert [part.n_groups for part in sums.fairness] == [g.n_groups for g in layout.groupings]
    for part in sums.fairness:
        counts = part.true_positives + part.false_positives + part.true_negatives
        assert (counts + part.false_negatives).sum() == held_out


def test_a_train_message_cannot_ask_for_the_governance_release(
    schema: DatasetSchema, attack: Attack
) -> None:
    original, _, target, encoder = attack
    settings = acme_settings(original, max_epsilon=EPSILON)
    guard = BankGuard(settings)
    content = _evaluate_content(schema, encoder, _target_model(encoder, target))
    EvaluateRequest(server_round=1).put(content)  # the train message of round 2
    instructions = content[keys.CONFIG]
    assert isinstance(instructions, ConfigRecord)
    instructions["server-round"] = 2
    reply = guarded_app(guard)(message(MessageType.TRAIN, _asking(content)), context())

    assert not reply.has_error()
    assert keys.GOVERNANCE_SUMS not in reply.content
    assert settings.ledger_path is not None
    assert _governance_events(settings.ledger_path) == []


def test_a_model_that_singles_out_one_customer_reveals_its_label_only_within_epsilon(
    tmp_path: Path, schema: DatasetSchema, attack: Attack
) -> None:
    """The target alone scores in the top calibration bin: its observed sum is the label."""
    original, neighbour, target, encoder = attack
    content = _asking(_evaluate_content(schema, encoder, _target_model(encoder, target)))
    label = int(target[schema.target].iloc[0])
    layout = _layout(schema)

    def guess(reply: RecordDict) -> bool:
        vector = governance_sums_from_content(reply, length=layout.length)
        assert vector is not None
        return bool(GovernanceSums.from_vector(vector, layout).calibration.observed[-1] > 0.5)

    # An exact release (a bank without a budget) gives the label away every time.
    assert guess(_ask(BankGuard(acme_settings(original, max_epsilon=None)), content)) == bool(label)

    right = 0
    for trial in range(TRIALS_PER_LABEL):
        for path, truth in ((original, label), (neighbour, 1 - label)):
            settings = acme_settings(
                path, max_epsilon=EPSILON, ledger_path=tmp_path / f"ledger-{trial}-{truth}.jsonl"
            )
            right += guess(_ask(BankGuard(settings), content)) == bool(truth)
    accuracy = right / (2 * TRIALS_PER_LABEL)
    delta = 1 / (10 * 480)  # the bank's default delta, 1/(10 n_train), at most
    bound = (math.exp(EPSILON) + delta) / (1 + math.exp(EPSILON))
    assert accuracy <= bound, f"the attacker guessed {accuracy:.2f} of labels right"
