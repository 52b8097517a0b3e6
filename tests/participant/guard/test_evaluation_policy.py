"""A bank's evaluation policy: bounded score histograms, nothing from a small hold-out.

A bank releases at most ``max_score_bins`` bins per class (a request for more is
refused before any row is scored, and the refusal is in its audit log) and no
evaluation at all while it holds out fewer than ``min_holdout_rows`` rows (the reply
says so with an ``EvaluationDeclined`` record instead). Its introduction carries its
training-row count only: held-out counts are not public. These banks have no privacy
budget, so nothing here is charged.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flwr.app import ArrayRecord, MessageType, RecordDict

from credit import message_keys as keys
from credit.messages import (
    BankIntro,
    EvaluateRequest,
    EvaluationDeclined,
    RoundInstructions,
    TrainMetrics,
    score_summary_from_content,
)
from credit.schema import DatasetSchema
from participant.guard.bank_guard import BankGuard
from participant.guard.settings import EvaluationPolicy
from participant.relay.client_app import GuardRefused
from tests.participant.guard.bank_messages import (
    JoinedBank,
    acme_settings,
    context,
    feature_stats_query,
    guarded_app,
    round_content,
)

ROWS = 400
"""The bank's rows: it holds out about a fifth (80 rows at this seed's split)."""


def _bank(
    data_path: Path, *, audit_log: Path | None = None, **policy: Any
) -> tuple[JoinedBank, RecordDict]:
    """A bank without a budget and with ``policy`` that joined a run, and its set-up reply."""
    settings = acme_settings(data_path, max_epsilon=None, audit_log=audit_log)
    guard = BankGuard(settings.model_copy(update={"evaluation": EvaluationPolicy(**policy)}))
    bank = JoinedBank(app=guarded_app(guard), context=context(), guard=guard)
    joined = bank.send(MessageType.QUERY, feature_stats_query(schema=_schema(bank)))
    return bank, joined.content


def _schema(bank: JoinedBank) -> DatasetSchema:
    return bank.guard.bank.schema


def _held_out(bank: JoinedBank) -> int:
    return len(bank.guard.bank.test)


def _with_bins(content: RecordDict, score_bins: int) -> RecordDict:
    """``content`` whose round instructions ask for ``score_bins`` bins per class."""
    instructions = RoundInstructions.take(content)
    instructions.model_copy(update={"score_bins": score_bins}).put(content)
    return content


def _asking_to_score(schema: DatasetSchema, model: ArrayRecord, score_bins: int) -> RecordDict:
    """Round 2's train message carrying ``model`` (round 1's) and asking it be scored."""
    content, _ = round_content(schema, 2)
    content[keys.ARRAYS] = model
    EvaluateRequest(server_round=1).put(content)
    return _with_bins(content, score_bins)


def _events(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_a_bank_introduces_itself_without_its_held_out_rows(
    write_bank_csv: Callable[..., Path],
) -> None:
    bank, joined = _bank(write_bank_csv(ROWS))

    intro = BankIntro.take(joined)

    assert intro.n_train == ROWS - _held_out(bank)
    assert set(joined[keys.BANK]) == {"name", "n-train"}


@pytest.mark.parametrize(("cap", "asked"), [(100, 102), (100, 10_000), (20, 100)])
def test_an_evaluation_with_more_bins_than_the_banks_cap_is_refused_and_logged(
    tmp_path: Path, write_bank_csv: Callable[..., Path], cap: int, asked: int
) -> None:
    log = tmp_path / "acme.audit.jsonl"
    bank, _ = _bank(write_bank_csv(ROWS), audit_log=log, max_score_bins=cap)
    content, model = round_content(_schema(bank), 1)

    with pytest.raises(GuardRefused, match=f"releases at most {cap} score bins per class"):
        bank.send(MessageType.EVALUATE, _with_bins(content, asked))
    with pytest.raises(GuardRefused, match=f"run with score-bins <= {cap}"):
        bank.send(MessageType.TRAIN, _asking_to_score(_schema(bank), model, asked))

    refusals = [e["data"] for e in _events(log) if e["event"] == "refusal"]
    assert [r["kind"] for r in refusals] == ["evaluation-policy"] * 2
    assert not any(e["event"] in {"evaluate", "train"} for e in _events(log))  # nothing scored


def test_bins_up_to_the_cap_are_released_and_a_train_message_not_asking_is_not_judged(
    write_bank_csv: Callable[..., Path],
) -> None:
    bank, _ = _bank(write_bank_csv(ROWS), max_score_bins=20)
    content, _ = round_content(_schema(bank), 1)

    reply = bank.send(MessageType.EVALUATE, _with_bins(content, 20)).content
    summary = score_summary_from_content(reply, score_bins=20)
    trained = bank.send(MessageType.TRAIN, _with_bins(round_content(_schema(bank), 1)[0], 200))

    assert summary.n_rows == _held_out(bank)
    assert TrainMetrics.take(trained.content).num_examples == ROWS - _held_out(bank)
    assert keys.EVALUATION not in trained.content  # not asked: the bins are not released


def test_a_bank_holding_out_too_few_rows_declines_to_evaluate(
    tmp_path: Path, write_bank_csv: Callable[..., Path]
) -> None:
    """An evaluate message gets a decline and no scores; a train message asking for an
    evaluation gets the update with the decline beside it. Nothing is scored or logged
    as an evaluation."""
    log = tmp_path / "acme.audit.jsonl"
    bank, _ = _bank(write_bank_csv(ROWS), audit_log=log, min_holdout_rows=ROWS)
    held_out = _held_out(bank)
    assert 0 < held_out < ROWS
    content, model = round_content(_schema(bank), 1)

    evaluated = bank.send(MessageType.EVALUATE, content).content
    trained = bank.send(MessageType.TRAIN, _asking_to_score(_schema(bank), model, 100)).content

    for reply in (evaluated, trained):
        declined = EvaluationDeclined.take(reply)
        assert f"holds out fewer than {ROWS} rows" in declined.reason
        assert str(held_out) not in declined.reason  # not even the count is released
        assert not {keys.SCORES, keys.EVALUATION_SCORES, keys.EVALUATION} & set(reply)
    assert keys.METRICS not in evaluated
    assert TrainMetrics.take(trained).num_examples == ROWS - held_out  # trained all the same
    assert [e["event"] for e in _events(log) if e["event"] in {"evaluate", "train"}] == ["train"]


def test_the_default_policy_releases_from_fifty_held_out_rows(
    write_bank_csv: Callable[..., Path],
) -> None:
    assert EvaluationPolicy() == EvaluationPolicy(max_score_bins=100, min_holdout_rows=50)
    small, _ = _bank(write_bank_csv(200, name="small"))  # about 40 held out
    large, _ = _bank(write_bank_csv(ROWS, name="large"))  # about 80 held out
    assert _held_out(small) < 50 <= _held_out(large)

    small_reply = small.send(MessageType.EVALUATE, round_content(_schema(small), 1)[0])
    large_reply = large.send(MessageType.EVALUATE, round_content(_schema(large), 1)[0])

    assert EvaluationDeclined.present(small_reply.content)
    assert not EvaluationDeclined.present(large_reply.content)
    summary = score_summary_from_content(large_reply.content, score_bins=100)
    assert summary.n_rows == _held_out(large)
