"""A malicious coordinator mounts the evaluation attack against a bank's guard.

The attack (issue 12): pick a hold-out that isolates one customer, or weights and
score bins that single out one customer's score, and read that customer's label and
exact loss off the bank's evaluation reply. Against the bank's guard:

* another hold-out is refused (the bank fixed its split);
* more score bins than the bank's policy releases are refused;
* a bank holding out fewer rows than its policy's minimum releases nothing;
* and where the attacker's model does single out one customer, the noisy release of
  a bank with a privacy budget lets it guess that customer's label no better than the
  bank's epsilon allows: ``(e^eps + delta) / (1 + e^eps)``, 0.731 at epsilon 1. The
  same attack against an exact release (a bank without a budget: the pre-issue-12
  behaviour of every bank) guesses right every time.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from flwr.app import ArrayRecord, MessageType, RecordDict

from credit import message_keys as keys
from credit.encoding import FeatureEncoder, StatsSource, fit_encoder
from credit.messages import EvaluationDeclined, RoundInstructions, score_summary_from_content
from credit.metrics import ScoreSummary
from credit.models import ModelKind, ModelSpec, build_model
from credit.schema import DatasetSchema
from participant.guard.bank_guard import BankGuard
from participant.guard.settings import EvaluationPolicy
from participant.relay.client_app import GuardRefused
from tests.participant.guard.bank_messages import (
    acme_settings,
    context,
    guarded_app,
    message,
    run_instructions,
)

EPSILON = 1.0
TRIALS_PER_LABEL = 40
SHARPNESS = 30.0
"""Logit gap between the target and every other customer in the attacker's model."""


def _target_model(encoder: FeatureEncoder, target: pd.DataFrame) -> ArrayRecord:
    """Logistic weights that score ``target``'s row near 1 and every other row near 0.

    Every encoded row has one active input per column; the target's score has logit
    SHARPNESS / 2, a row that differs from it in any column at most -SHARPNESS / 2.
    """
    encoded = encoder.transform(target)[0].astype(np.float64)
    spec = ModelSpec(kind=ModelKind.LOGREG, n_inputs=encoder.n_inputs)
    model = build_model(spec)
    linear = model[0]
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(SHARPNESS * encoded).float().unsqueeze(0))
        linear.bias.fill_(-SHARPNESS * (encoded.sum() - 0.5))
    return ArrayRecord(model.state_dict())


def _evaluate_content(
    schema: DatasetSchema,
    encoder: FeatureEncoder,
    arrays: ArrayRecord,
    *,
    score_bins: int = 100,
    **run: float,
) -> RecordDict:
    """An evaluate message of round 1 carrying the attacker's model."""
    instructions = RoundInstructions(
        **run_instructions(schema, **run).model_dump(),
        server_round=1,
        learning_rate=0.05,
        score_bins=score_bins,
        encoder=encoder,
        model_spec=ModelSpec(kind=ModelKind.LOGREG, n_inputs=encoder.n_inputs),
    )
    content = RecordDict({keys.ARRAYS: arrays})
    instructions.put(content)
    return content


def _ask(guard: BankGuard, content: RecordDict) -> RecordDict:
    reply = guarded_app(guard)(message(MessageType.EVALUATE, content), context())
    if reply.has_error():
        raise GuardRefused(reply.error.reason)
    return reply.content


def _guess_defaulter(summary: ScoreSummary) -> bool:
    """The attacker's best single guess: the target sits in the top bin."""
    return bool(summary.positives[-1] > summary.negatives[-1])


def test_a_model_that_singles_out_one_customer_reveals_its_label_only_within_epsilon(
    tmp_path: Path, schema: DatasetSchema, attack: tuple[Path, Path, pd.DataFrame, FeatureEncoder]
) -> None:
    original, neighbour, target, encoder = attack
    content = _evaluate_content(schema, encoder, _target_model(encoder, target))
    label = int(target[schema.target].iloc[0])

    # An exact release (a bank without a budget) gives the label away every time.
    exact = score_summary_from_content(
        _ask(BankGuard(acme_settings(original, max_epsilon=None)), content), score_bins=100
    )
    assert _guess_defaulter(exact) == bool(label)
    assert exact.positives[-1] + exact.negatives[-1] == 1

    # A budgeted bank: each trial is a fresh ledger (the budget allows one evaluation).
    right = 0
    for trial in range(TRIALS_PER_LABEL):
        for path, truth in ((original, label), (neighbour, 1 - label)):
            settings = acme_settings(
                path, max_epsilon=EPSILON, ledger_path=tmp_path / f"ledger-{trial}-{truth}.jsonl"
            )
            reply = _ask(BankGuard(settings), content)
            noisy = score_summary_from_content(reply, score_bins=100)
            right += _guess_defaulter(noisy) == bool(truth)
    accuracy = right / (2 * TRIALS_PER_LABEL)
    delta = 1 / (10 * 480)  # the bank's default delta, 1/(10 n_train), at most
    bound = (math.exp(EPSILON) + delta) / (1 + math.exp(EPSILON))
    assert accuracy <= bound, f"the attacker guessed {accuracy:.2f} of labels right"


def test_a_second_evaluation_past_the_banks_plan_is_refused(
    tmp_path: Path, schema: DatasetSchema, attack: tuple[Path, Path, pd.DataFrame, FeatureEncoder]
) -> None:
    original, _, target, encoder = attack
    content = _evaluate_content(schema, encoder, _target_model(encoder, target))
    guard = BankGuard(acme_settings(original, max_epsilon=EPSILON))
    first = _ask(guard, content)
    assert not EvaluationDeclined.present(first)
    again = _ask(guard, content)  # averaging repeated releases would cancel the noise
    assert EvaluationDeclined.present(again)
    assert "evaluation" in EvaluationDeclined.take(again).reason


def test_another_hold_out_is_refused(
    schema: DatasetSchema, attack: tuple[Path, Path, pd.DataFrame, FeatureEncoder]
) -> None:
    original, _, target, encoder = attack
    guard = BankGuard(acme_settings(original, max_epsilon=EPSILON))
    content = _evaluate_content(
        schema, encoder, _target_model(encoder, target), test_fraction=0.002
    )
    with pytest.raises(GuardRefused, match=r"holds out 0\.2 of its rows"):
        _ask(guard, content)


def test_finer_score_bins_than_the_banks_policy_are_refused(
    schema: DatasetSchema, attack: tuple[Path, Path, pd.DataFrame, FeatureEncoder]
) -> None:
    original, _, target, encoder = attack
    guard = BankGuard(acme_settings(original, max_epsilon=None))
    content = _evaluate_content(schema, encoder, _target_model(encoder, target), score_bins=10_000)
    with pytest.raises(GuardRefused, match="at most 100 score bins"):
        _ask(guard, content)


def test_a_bank_holding_out_too_few_rows_releases_nothing(
    schema: DatasetSchema, write_bank_csv: Callable[..., Path]
) -> None:
    small = write_bank_csv(100, name="small")  # about 20 held-out rows
    settings = acme_settings(small, max_epsilon=None).model_copy(
        update={"evaluation": EvaluationPolicy(min_holdout_rows=50)}
    )
    guard = BankGuard(settings)
    encoder = fit_encoder(schema, source=StatsSource.PUBLIC)
    target = guard.bank.test.iloc[[0]]
    reply = _ask(guard, _evaluate_content(schema, encoder, _target_model(encoder, target)))
    assert EvaluationDeclined.present(reply)
    assert keys.SCORES not in reply
