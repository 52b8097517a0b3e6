"""A bank's validation part: fixed by its salt like the hold-out, never trained on.

The validation part is ``validation_fraction`` of the rows the bank does not hold out,
chosen by HMAC of each record under the bank's salt in a domain of its own; the split's
digest (bound in the ledger) commits to it. Evaluations of the validation part are the
run's per-round evaluations (model selection); the governance release stays about the
held-out rows.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from flwr.app import MessageType, RecordDict

from credit.messages import (
    EvaluateRequest,
    EvaluationRows,
    GovernanceRequest,
    RoundInstructions,
    score_summary_from_content,
)
from credit.schema import DatasetSchema
from participant.guard.bank import BankSource, prepare_bank
from participant.guard.bank_guard import BankGuard
from participant.relay.client_app import GuardRefused
from tests.participant.guard.bank_messages import (
    ACME_SALT,
    acme_settings,
    context,
    guarded_app,
    hold_out,
    message,
    round_content,
)

ROWS = 1_000


def _ids(frame: pd.DataFrame, schema: DatasetSchema) -> set[object]:
    return set(frame[schema.id_column].tolist())


def test_the_validation_part_is_a_fixed_share_of_the_rows_not_held_out(
    write_bank_csv: Callable[..., Path], schema: DatasetSchema
) -> None:
    source = BankSource(name="acme", data_path=write_bank_csv(ROWS))
    plain = prepare_bank(source, hold_out())
    bank = prepare_bank(source, hold_out().model_copy(update={"validation_fraction": 0.2}))
    train, validation, test = (_ids(f, schema) for f in (bank.train, bank.validation, bank.test))
    assert not (train & validation or train & test or validation & test)
    assert len(train | validation | test) == ROWS
    assert test == _ids(plain.test, schema)  # the hold-out does not move
    assert train | validation == _ids(plain.train, schema)
    share = len(validation) / len(plain.train)
    assert 0.15 < share < 0.25
    again = prepare_bank(
        BankSource(name="acme", data_path=write_bank_csv(ROWS)),
        hold_out().model_copy(update={"validation_fraction": 0.2}),
    )
    assert _ids(again.validation, schema) == validation  # fixed by the salt


def test_the_split_digest_commits_to_the_validation_part(
    write_bank_csv: Callable[..., Path],
) -> None:
    """No validation part: the digest ledgers are bound to is unchanged; another
    validation fraction or salt gives another digest."""
    source = BankSource(name="acme", data_path=write_bank_csv(600))
    digests = {
        (salt, fraction): prepare_bank(
            source, hold_out(salt).model_copy(update={"validation_fraction": fraction})
        ).split_digest
        for salt in (ACME_SALT, "bd" * 32)
        for fraction in (0.0, 0.1, 0.2)
    }
    assert len(set(digests.values())) == len(digests)
    without = prepare_bank(source, hold_out())
    assert without.split_digest == digests[(ACME_SALT, 0.0)]
    assert without.validation.empty


def _bank(data: Path, fraction: float = 0.2) -> tuple[Callable[..., RecordDict], BankGuard]:
    holdout = hold_out().model_copy(update={"validation_fraction": fraction})
    guard = BankGuard(acme_settings(data, max_epsilon=None, holdout=holdout))
    app, ctx = guarded_app(guard), context()

    def send(kind: str, content: RecordDict) -> RecordDict:
        return app(message(kind, content), ctx).content

    return send, guard


def _content(schema: DatasetSchema, *, fraction: float = 0.2) -> RecordDict:
    content, _ = round_content(schema, 1)
    asked = RoundInstructions.take(content).model_copy(update={"validation_fraction": fraction})
    asked.put(content)
    return content


def test_an_evaluate_message_naming_the_validation_part_scores_those_rows(
    write_bank_csv: Callable[..., Path], schema: DatasetSchema
) -> None:
    send, guard = _bank(write_bank_csv(ROWS))
    on_test = send(MessageType.EVALUATE, _content(schema))
    content = _content(schema)
    EvaluateRequest(server_round=1, rows=EvaluationRows.VALIDATION).put(content)
    on_validation = send(MessageType.EVALUATE, content)
    rows = [
        score_summary_from_content(reply, score_bins=100).n_rows
        for reply in (on_test, on_validation)
    ]
    assert rows == [len(guard.bank.test), len(guard.bank.validation)]
    assert rows[1] > 0


def test_a_run_naming_another_validation_fraction_is_refused(
    write_bank_csv: Callable[..., Path], schema: DatasetSchema
) -> None:
    send, _ = _bank(write_bank_csv(400))
    with pytest.raises(GuardRefused, match=r"keeps 0\.2 of its training rows as its validation"):
        send(MessageType.EVALUATE, _content(schema, fraction=0.1))


def test_the_governance_release_is_refused_with_the_validation_part(
    write_bank_csv: Callable[..., Path], schema: DatasetSchema
) -> None:
    """The governance release is about the held-out rows: a message asking for it with
    the validation part is malformed, and nothing is released."""
    send, _ = _bank(write_bank_csv(400))
    content = _content(schema)
    EvaluateRequest(server_round=1, rows=EvaluationRows.VALIDATION).put(content)
    GovernanceRequest(calibration_bins=10, decision_cutoff=0.5).put(content)
    with pytest.raises(GuardRefused, match="the governance release is about the held-out rows"):
        send(MessageType.EVALUATE, content)
