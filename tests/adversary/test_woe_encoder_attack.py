"""A malicious coordinator sends a WoE encoder of its own choosing.

The WoE encoder travels in every round's instructions, and a bank cannot check its
values: they come from the consortium's summed counts, which under secure aggregation
no bank sees. It need not check them. A WoE input is ``woe[bin]``: a linear image of
the bin's one-hot column, so whatever a model on chosen WoE values computes, a binned
model with chosen weights computes too; an attacker gains nothing it lacked. The
attack that matters is the one a binned encoder already allows (issue 12's evaluation
attack, :mod:`tests.adversary.test_evaluation_attack`): values that single out one
held-out customer. Against the bank's guard:

* a bank with a budget releases that customer's label no better than its epsilon
  allows, exactly as with a binned encoder (an exact release gives it away);
* values that are not finite, or large enough to overflow float32 training, are
  refused as a malformed request, before anything is charged or trained.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from flwr.app import ArrayRecord, MessageType

from credit import message_keys as keys
from credit.encoding import MAX_ABS_WOE, EncodingKind, FeatureEncoder
from credit.messages import score_summary_from_content
from credit.models import ModelKind, ModelSpec, build_model
from credit.schema import DatasetSchema
from participant.guard.bank_guard import BankGuard
from participant.relay.client_app import GuardRefused
from tests.adversary.test_evaluation_attack import (
    EPSILON,
    SHARPNESS,
    TRIALS_PER_LABEL,
    _ask,
    _evaluate_content,
    _guess_defaulter,
)
from tests.participant.guard.bank_messages import acme_settings, context, guarded_app, message

Attack = tuple[Path, Path, pd.DataFrame, FeatureEncoder]


def _singling_out(binned: FeatureEncoder, target: pd.DataFrame) -> FeatureEncoder:
    """A WoE encoder on ``binned``'s bins: 1 on each of the target's bins, 0 elsewhere."""
    bins = binned.bin_indices(target)

    def woe(width: int, name: str) -> tuple[float, ...]:
        values = np.zeros(width)
        values[int(bins[name][0])] = 1.0
        return tuple(values.tolist())

    return binned.model_copy(
        update={
            "kind": EncodingKind.WOE,
            "numeric": tuple(
                e.model_copy(update={"woe": woe(e.width, e.name)}) for e in binned.numeric
            ),
            "categorical": tuple(
                e.model_copy(update={"woe": woe(e.width, e.name)}) for e in binned.categorical
            ),
        }
    )


def _model(encoder: FeatureEncoder) -> ArrayRecord:
    """The target scores logit SHARPNESS / 2, any other row at most -SHARPNESS / 2."""
    spec = ModelSpec(kind=ModelKind.LOGREG, n_inputs=encoder.n_inputs)
    model = build_model(spec)
    with torch.no_grad():
        model[0].weight.fill_(SHARPNESS)
        model[0].bias.fill_(-SHARPNESS * (encoder.n_inputs - 0.5))
    return ArrayRecord(model.state_dict())


def test_a_woe_encoder_that_singles_out_one_customer_reveals_its_label_only_within_epsilon(
    tmp_path: Path, schema: DatasetSchema, attack: Attack
) -> None:
    original, neighbour, target, binned = attack
    encoder = FeatureEncoder.model_validate_json(_singling_out(binned, target).model_dump_json())
    content = _evaluate_content(schema, encoder, _model(encoder))
    label = int(target[schema.target].iloc[0])

    exact = score_summary_from_content(
        _ask(BankGuard(acme_settings(original, max_epsilon=None)), content), score_bins=100
    )
    assert _guess_defaulter(exact) == bool(label)
    assert exact.positives[-1] + exact.negatives[-1] == 1  # the target, alone in the top bin

    right = 0
    for trial in range(TRIALS_PER_LABEL):
        for path, truth in ((original, label), (neighbour, 1 - label)):
            settings = acme_settings(
                path, max_epsilon=EPSILON, ledger_path=tmp_path / f"ledger-{trial}-{truth}.jsonl"
            )
            noisy = score_summary_from_content(_ask(BankGuard(settings), content), score_bins=100)
            right += _guess_defaulter(noisy) == bool(truth)
    accuracy = right / (2 * TRIALS_PER_LABEL)
    bound = (math.exp(EPSILON) + 1 / (10 * 480)) / (1 + math.exp(EPSILON))
    assert accuracy <= bound, f"the attacker guessed {accuracy:.2f} of labels right"


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 10 * MAX_ABS_WOE])
def test_a_woe_encoder_with_values_no_counts_give_is_refused_before_any_charge(
    tmp_path: Path, schema: DatasetSchema, attack: Attack, value: float
) -> None:
    original, _, target, binned = attack
    encoder = _singling_out(binned, target)
    content = _evaluate_content(schema, encoder, _model(encoder))
    document = json.loads(str(content[keys.CONFIG]["encoder"]))
    document["numeric"][0]["woe"][0] = value
    content[keys.CONFIG]["encoder"] = json.dumps(document)  # NaN and Infinity as JavaScript
    ledger = tmp_path / "ledger.jsonl"
    guard = BankGuard(acme_settings(original, max_epsilon=EPSILON, ledger_path=ledger))

    with pytest.raises(GuardRefused, match="woe value must be finite and within ±100"):
        guarded_app(guard)(message(MessageType.EVALUATE, content), context())

    assert not ledger.exists() or "evaluation-release" not in ledger.read_text()
