"""How the coordinator reads bank replies: answers, refusals, dropouts, malformed replies,
and the evaluation a train reply carries beside its update or refusal."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MessageType, RecordDict
from flwr.clientapp import ClientApp

from coordinator.app.bank_replies import (
    ReplyBook,
    ledger_summaries,
    sort_replies,
    train_evaluation,
    train_reply,
)
from credit import message_keys as keys
from credit.messages import (
    Dropped,
    LedgerSummary,
    ProtocolStage,
    Refusal,
    TrainMetrics,
    score_summary_to_content,
)
from credit.messages._parts import ConfigPart
from credit.metrics import ScoreSummary
from tests.support.fake_grid import FakeGrid

REFUSAL = Refusal(
    bank="bank-b",
    reason="PrivacyBudgetExceeded",
    spent=0.9,
    requested=1.3,
    maximum=1.0,
    server_round=4,
)
LEDGER = LedgerSummary(
    bank="bank-b", epsilon=0.9, delta=1e-5, max_epsilon=1.0, accountant="rdp", events=()
)


Reply = Callable[[int, RecordDict], Message]


@pytest.fixture
def reply() -> Iterator[Reply]:
    """Build a bank's reply from node ``node`` (Flower's task identity set as in a run)."""
    with FakeGrid(ClientApp(), num_nodes=1, run_config={}) as _:

        def make(node: int, content: RecordDict) -> Message:
            request = Message(RecordDict(), node, MessageType.TRAIN)
            return Message(content, reply_to=request)

        yield make


def _answer() -> RecordDict:
    content = RecordDict({keys.ARRAYS: ArrayRecord({"w": Array(np.ones(3, dtype=np.float32))})})
    TrainMetrics(num_examples=100, train_loss=0.4).put(content)
    return content


def _with(*parts: ConfigPart) -> RecordDict:
    content = RecordDict()
    for part in parts:
        part.put(content)
    return content


def test_replies_are_sorted_by_what_they_mean(reply: Reply) -> None:
    replies = [
        reply(11, _answer()),
        reply(12, _with(REFUSAL, LEDGER)),
        reply(13, _with(Dropped(stage=ProtocolStage.TRAIN))),
        reply(14, RecordDict({keys.METRICS: ConfigRecord({"num-examples": 1})})),
        reply(15, _with(Dropped.model_construct(stage="elsewhere"))),
    ]
    sorted_replies = sort_replies(replies, train_reply)

    assert [answer.node for answer in sorted_replies.answers] == [11]
    assert sorted_replies.answers[0].metrics == TrainMetrics(num_examples=100, train_loss=0.4)
    assert sorted_replies.refused == [REFUSAL]
    assert sorted_replies.dropped == [13]
    assert len(sorted_replies.malformed) == 2
    assert sorted_replies.malformed[0].startswith("node 14 sent a malformed reply (")
    assert "node 15" in sorted_replies.malformed[1] and "'stage'" in sorted_replies.malformed[1]


def test_ledger_summaries_are_collected_and_malformed_ones_skipped(reply: Reply) -> None:
    broken = _with(LEDGER)
    broken[keys.PRIVACY]["epsilon"] = "a lot"
    replies = [reply(11, _with(LEDGER)), reply(12, broken), reply(13, _answer())]
    assert ledger_summaries(replies) == [LEDGER]


def test_a_bank_cannot_report_in_another_banks_name(reply: Reply) -> None:
    events: list[str] = []
    book = ReplyBook(on_event=events.append, on_refusal=lambda refusal: None)
    impostor = _answer()
    LEDGER.model_copy(update={"epsilon": 0.0}).put(impostor)
    replies = [
        reply(11, _with(REFUSAL, LEDGER)),  # node 11 speaks for bank-b from now on
        reply(12, _with(REFUSAL)),  # node 12 refuses in bank-b's name
        reply(13, impostor),  # node 13 writes over bank-b's ledger
    ]
    sorted_replies = book.sort(replies, train_reply, server_round=2)
    assert sorted_replies.refused == [REFUSAL]
    assert book.refusals == [REFUSAL]
    assert book.privacy == {"bank-b": LEDGER}
    assert any("node 12" in line and "another node's bank 'bank-b'" in line for line in events)


def _evaluation(n_rows: float, noise: float = 0.0) -> RecordDict:
    """A train reply's evaluation records (the model it was sent, scored on ``n_rows``).

    ``noise`` moves one bin of each class by that much, as a bank under a budget
    releases noisy (real, possibly negative) counts.
    """
    positives = np.zeros(4)
    positives[1] = n_rows
    positives[2] += noise
    negatives = np.zeros(4)
    negatives[0] -= noise
    summary = ScoreSummary(
        positives=positives, negatives=negatives, brier_sum=0.5, log_loss_sum=1.5
    )
    return score_summary_to_content(
        summary, scores_key=keys.EVALUATION_SCORES, sums_key=keys.EVALUATION
    )


def _beside(evaluation: RecordDict, content: RecordDict) -> RecordDict:
    for key, record in evaluation.items():
        content[key] = record
    return content


def test_an_evaluation_is_read_apart_from_the_update_or_refusal_beside_it(reply: Reply) -> None:
    """A malformed evaluation loses that evaluation only; a malformed update loses the
    update only; a refusal still brings its evaluation; a dropout brings none."""
    broken_evaluation = _evaluation(7)
    broken_evaluation[keys.EVALUATION_SCORES][keys.POSITIVES] = Array(np.full(4, np.nan))
    broken_update = _beside(_evaluation(3), _answer())
    broken_update[keys.METRICS]["num-examples"] = -5
    replies = [
        reply(11, _beside(_evaluation(2), _answer())),
        reply(12, _beside(broken_evaluation, _answer())),
        reply(13, broken_update),
        reply(14, _beside(_evaluation(5), _with(REFUSAL, LEDGER))),
        reply(15, _with(Dropped(stage=ProtocolStage.TRAIN))),
        reply(16, _answer()),  # asked, but no evaluation beside the update
        reply(17, _beside(_evaluation(4, noise=-0.75), _answer())),  # noisy: valid reals
    ]
    events: list[str] = []
    book = ReplyBook(on_event=events.append, on_refusal=lambda refusal: None)

    def evaluation(message: Message) -> ScoreSummary:
        return train_evaluation(message, score_bins=4)

    evaluations = book.evaluations(replies, evaluation, 3)
    updates = book.sort(replies, train_reply, 4)

    assert [summary.n_rows for summary in evaluations] == [2, 3, 5, 4]
    assert evaluations[-1].positives[2] == -0.75 and evaluations[-1].negatives[0] == 0.75
    assert [answer.node for answer in updates.answers] == [11, 12, 16, 17]
    assert updates.refused == [REFUSAL] and updates.dropped == [15]
    malformed = [line for line in events if "malformed" in line]
    assert malformed[0].startswith("round 3: node 12 sent a malformed evaluation (")
    assert malformed[0].endswith("its evaluation is left out")
    assert malformed[1].startswith("round 3: node 16 sent a malformed evaluation (")
    assert malformed[2].startswith("round 4: node 13 sent a malformed reply (")
    assert len(malformed) == 3
