"""The coordinator's side of secure aggregation, driven directly against real bank code.

Round r's unmask exchange also collects round r+1's keys (tested below, with the
cases that leave a bank out of the next round or leave the next round to ask).
A bank asked to score the model its train message carries masks its evaluation with
its update, and the last model is scored in a secure round of its own: either way
the coordinator decodes the plain sum of the banks' evaluations, and nothing else.

Each bank here is a small ClientApp around the bank's real secure-aggregation code
(:mod:`participant.guard.secagg_client`) with an update the test chooses, reached
through the in-process grid; the coordinator side is :class:`SecureAggregation` as
the run driver uses it, so the unmasked sum can be compared with the plain one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, Context, Message, MessageType, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.clientapp.typing import ClientAppCallable, Mod

from coordinator.app.aggregation import AggregatedUpdate
from coordinator.app.bank_replies import TrainReply, train_reply
from coordinator.app.exchange import BankExchange, Stage
from coordinator.app.secagg_server import SecureAggregation
from coordinator.errors import RoundAborted, RoundFailed
from credit import message_keys as keys
from credit.encoding import StatsSource, fit_encoder
from credit.errors import MalformedMessage
from credit.governance.release import GovernanceLayout
from credit.messages import (
    EvaluateRequest,
    GovernanceRequest,
    QueryInstructions,
    RoundInstructions,
    RunInstructions,
    Task,
    secagg,
)
from credit.metrics import ScoreSummary, evaluation_vector
from credit.model_spec import ModelKind, ModelSpec
from credit.records import flatten
from credit.schema import load_schema
from participant.guard.secagg_client import (
    SecAggSession,
    advertise,
    enrollment,
    mask_update,
    receive_keys,
    reveal,
    sign_survivors,
)
from participant.guard.settings import SecAggPolicy
from privacy.secagg.fixed_point import FixedPoint
from privacy.secagg.wire import decode_fixed_point, decode_keys, encode_keys
from tests.support.fake_grid import FakeGrid
from tests.support.secagg import consortium

N_PARAMS = 12
WEIGHTS = (300, 500, 700, 900)
LOSSES = (0.41, 0.52, 0.33, 0.47)
SCORE_BINS = 4
EVALUATION = 2 * SCORE_BINS + 3
"""Entries of a bank's masked evaluation: histograms, Brier and log-loss sums, a 1."""
RELEASES = (True, True, True, False)
"""Which banks release an evaluation (bank 3 declines: it masks zeros)."""
MEMBERS = consortium(len(WEIGHTS))
"""The banks' signing keys and the member list each of them pinned."""


def _session(context: Context, run: int) -> SecAggSession:
    """Bank ``partition-id``'s session, signing as ``bank-<partition-id + 1>``."""
    bank = int(context.node_config["partition-id"])
    return SecAggSession.in_context(context, run, MEMBERS.identity(f"bank-{bank + 1}"))


def _update(partition_id: int) -> np.ndarray:
    """Bank ``partition_id``'s update (its difference from the global model)."""
    return np.linspace(-1.0, 1.0, N_PARAMS) * (partition_id + 1) / 4


def _evaluation(partition_id: int) -> ScoreSummary | None:
    """Bank ``partition_id``'s evaluation, noisy (reals, some below zero), or None."""
    if not RELEASES[partition_id]:
        return None
    rng = np.random.default_rng(partition_id)
    return ScoreSummary(
        positives=rng.integers(0, 40, SCORE_BINS) + rng.normal(0.0, 2.0, SCORE_BINS),
        negatives=rng.integers(0, 90, SCORE_BINS) + rng.normal(0.0, 2.0, SCORE_BINS) - 3.0,
        brier_sum=17.3 + partition_id,
        log_loss_sum=55.1 + 7 * partition_id,
    )


def _evaluation_vector(bank: int) -> np.ndarray:
    return evaluation_vector(_evaluation(bank), SCORE_BINS)


def _bank_app(mods: tuple[Mod, ...] = ()) -> ClientApp:
    """A bank that answers secure aggregation with the real code and a chosen update."""
    app = ClientApp(mods=list(mods))

    @app.query()
    def query(message: Message, context: Context) -> Message:
        task = QueryInstructions.take(message.content).task
        run, content = message.metadata.run_id, RecordDict()
        session = _session(context, run)
        if task == Task.ENROLL:
            enrollment(session).put(content)
        elif task == Task.SECAGG_ADVERTISE:
            answer = advertise(
                session,
                secagg.AdvertiseRequest.take(message.content),
            )
            if answer is None:
                raise ValueError("not in the roster")
            answer.put(content)
        elif task == Task.SECAGG_CONSISTENCY:
            sign_survivors(session, secagg.ConsistencyRequest.take(message.content)).put(content)
        else:
            reveal(session, secagg.UnmaskRequest.take(message.content)).put(content)
            asked = secagg.AdvertiseRequest.take_optional(message.content)
            answer = None if asked is None else advertise(session, asked)
            if answer is not None:
                answer.put(content)
        return Message(content, reply_to=message)

    @app.train()
    def train(message: Message, context: Context) -> Message:
        bank = int(context.node_config["partition-id"])
        inputs = secagg.TrainInputs.take(message.content)
        values = np.append(_update(bank), [LOSSES[bank], 1.0])
        run = message.metadata.run_id
        session = _session(context, run)
        code = receive_keys(session, inputs)
        asked = EvaluateRequest.present(message.content)
        masked = mask_update(
            session,
            server_round=inputs.server_round,
            values=values,
            weight=WEIGHTS[bank],
            code=code,
            totals=_evaluation_vector(bank) if asked else evaluation_vector(None, SCORE_BINS),
        )
        content = RecordDict({keys.ARRAYS: masked, keys.METRICS: MetricRecord()})
        return Message(content, reply_to=message)

    @app.evaluate()
    def evaluate(message: Message, context: Context) -> Message:
        bank = int(context.node_config["partition-id"])
        inputs = secagg.TrainInputs.take(message.content)
        session = _session(context, message.metadata.run_id)
        code = receive_keys(session, inputs)
        masked = mask_update(
            session,
            server_round=inputs.server_round,
            values=np.zeros(0),
            weight=0.0,
            code=code,
            totals=_evaluation_vector(bank),
        )
        return Message(RecordDict({keys.ARRAYS: masked}), reply_to=message)

    return app


def _run() -> RunInstructions:
    return RunInstructions(
        run_name="secagg-test",
        schema_hash="ab" * 32,
        test_fraction=0.2,
        seed=0,
        planned_rounds=3,
        planned_evaluations=3,
        local_epochs=1,
        batch_size=64,
        max_grad_norm=1.0,
    )


def _round(server_round: int) -> RoundInstructions:
    encoder = fit_encoder(load_schema(), source=StatsSource.PUBLIC)
    return RoundInstructions(
        **_run().model_dump(),
        server_round=server_round,
        learning_rate=0.01,
        score_bins=SCORE_BINS,
        encoder=encoder,
        model_spec=ModelSpec(kind=ModelKind.LOGREG, n_inputs=N_PARAMS),
    )


GLOBAL = ArrayRecord({"w": Array(np.full(N_PARAMS, 0.5, dtype=np.float32))})


@pytest.fixture
def grid() -> Iterator[FakeGrid]:
    with FakeGrid(_bank_app(), num_nodes=len(WEIGHTS), run_config={}, run_id=7) as fake:
        yield fake


def _enrolled(
    grid: FakeGrid,
    *,
    min_banks: int = 2,
    exchange: BankExchange | None = None,
    events: list[str] | None = None,
) -> SecureAggregation:
    """The banks of ``grid`` enrolled; ``exchange`` (if given) times every exchange;
    ``events`` (if given) receives the run's event lines."""
    exchange = exchange or BankExchange(grid, min_banks=min_banks, timeout=0.5)
    messages = []
    for node in exchange.nodes():
        content = RecordDict()
        _run().query(Task.ENROLL).put(content)
        secagg.KeyRequest().put(content)
        messages.append(Message(content, node, MessageType.QUERY))
    replies = exchange(messages, Stage.ENROLL, 0)
    return SecureAggregation.enroll(
        run=grid.run.run_id,
        clip=16.0,
        enrollments={r.metadata.src_node_id: secagg.Enrollment.take(r.content) for r in replies},
        weights={grid.node_id(i): weight for i, weight in enumerate(WEIGHTS)},
        score_bins=SCORE_BINS,
        exchange=exchange,
        on_drop=None if events is None else (lambda dropped: events.append(dropped.text())),
    )


def _train(
    grid: FakeGrid, secure: SecureAggregation, server_round: int, *, evaluate: bool = False
) -> list[Message]:
    """Round ``server_round``'s train exchange (asking for round - 1's evaluation if told)."""
    messages = secure.train_messages(GLOBAL, _round(server_round), sorted(grid.get_node_ids()))
    if evaluate:
        for message in messages:
            EvaluateRequest(server_round=server_round - 1).put(message.content)
    return BankExchange(grid, min_banks=1, timeout=0.5)(messages, Stage.TRAIN, server_round)


def _last_round(secure: SecureAggregation, updates: list[TrainReply]) -> AggregatedUpdate:
    """Aggregate ``updates`` as round 1 of a one-round run (no keys asked for a next round)."""
    return secure.aggregate(updates, GLOBAL, _round(1), next_round=0, members=())


def _assert_sum_of_evaluations(summary: ScoreSummary | None, banks: list[int]) -> None:
    """``summary`` is the plain sum of the evaluations ``banks`` release, up to quantization.

    Each bank's entries are encoded with ``FixedPoint.for_totals`` (4 fraction bits):
    each term moves by at most half a unit.
    """
    released = [e for e in (_evaluation(b) for b in banks) if e is not None]
    assert summary is not None and released
    expected = ScoreSummary.combine(released)
    unit = 1.0 / FixedPoint.for_totals(participants=len(WEIGHTS)).scale
    tolerance = len(released) * unit / 2
    np.testing.assert_allclose(summary.to_vector(), expected.to_vector(), rtol=0, atol=tolerance)
    assert summary.to_vector() != pytest.approx(expected.to_vector(), abs=1e-12)  # fixed point


def _expected(banks: list[int]) -> tuple[np.ndarray, float]:
    """The plain weighted mean update and loss of ``banks`` (partition ids)."""
    weights = np.array([WEIGHTS[b] for b in banks], dtype=np.float64)
    update = sum(weights[i] * _update(b) for i, b in enumerate(banks)) / weights.sum()
    loss = sum(weights[i] * LOSSES[b] for i, b in enumerate(banks)) / weights.sum()
    return flatten(GLOBAL) + update, loss


def test_the_unmasked_sum_is_the_plain_weighted_mean(grid: FakeGrid) -> None:
    secure = _enrolled(grid)
    assert secure.threshold == 3 and len(secure.roster) == 4
    secure.prepare(1, GLOBAL, _run())
    updates = [train_reply(reply) for reply in _train(grid, secure, 1)]
    masked = updates[0].arrays[keys.SECAGG_MASKED].numpy()
    # update, loss, flag, weight, then the evaluation segment (zeros: none was asked)
    assert masked.dtype == np.uint32 and masked.shape == (N_PARAMS + 3 + EVALUATION,)

    result = _last_round(secure, updates)

    expected, loss = _expected([0, 1, 2, 3])
    np.testing.assert_allclose(flatten(result.arrays), expected, atol=1e-3)
    assert result.train_loss == pytest.approx(loss, abs=1e-3)
    assert result.banks == tuple(sorted(grid.get_node_ids()))
    assert result.evaluation is None  # no bank was asked to score the model


def test_evaluations_summed_with_the_updates_are_the_plain_sum_of_the_banks(
    grid: FakeGrid,
) -> None:
    """Round 2's train message asks for round 1's evaluation: each bank masks it with its
    update (unweighted); the unmasked sum is the banks' evaluations summed in the clear
    (bank 3 releases none: it masks zeros), and the update is as without evaluations."""
    secure = _enrolled(grid)
    everyone = sorted(grid.get_node_ids())
    secure.prepare(1, GLOBAL, _run())
    first = [train_reply(reply) for reply in _train(grid, secure, 1)]
    secure.aggregate(first, GLOBAL, _round(1), next_round=2, members=everyone)
    replies = _train(grid, secure, 2, evaluate=True)
    updates = [secure.check(train_reply(reply), GLOBAL) for reply in replies]
    assert all(set(reply.content) == {keys.ARRAYS, keys.METRICS} for reply in replies)

    result = secure.aggregate(updates, GLOBAL, _round(2), next_round=3, members=everyone)

    _assert_sum_of_evaluations(result.evaluation, [0, 1, 2, 3])
    expected, loss = _expected([0, 1, 2, 3])
    np.testing.assert_allclose(flatten(result.arrays), expected, atol=1e-3)
    assert result.train_loss == pytest.approx(loss, abs=1e-3)


def _scored_last(
    grid: FakeGrid, secure: SecureAggregation, exchange: BankExchange
) -> ScoreSummary | None:
    """Score round 1's model in its own secure round, as the run driver does."""
    messages = secure.evaluation_messages(GLOBAL, _round(1), sorted(grid.get_node_ids()))
    replies = exchange(messages, Stage.EVALUATE, 1)
    checked = [secure.check_evaluation(reply, _round(1)) for reply in replies]
    return secure.sum_evaluations(checked, _round(1)).summary


def test_the_last_models_evaluation_is_a_secure_round_of_its_own(grid: FakeGrid) -> None:
    """Round 1's unmask exchange collects round 2's keys; the evaluate messages use them
    (no advertise exchange), each bank masks weight 0 and its evaluation, and one unmask
    exchange (of round 2) decodes their plain sum."""
    exchanges = BankExchange(grid, min_banks=2, timeout=0.5)
    secure = _enrolled(grid, exchange=exchanges)
    everyone = sorted(grid.get_node_ids())
    secure.prepare(1, GLOBAL, _run())
    updates = [train_reply(r) for r in _train(grid, secure, 1)]
    secure.aggregate(updates, GLOBAL, _round(1), next_round=2, members=everyone)
    before = len(exchanges.timings)

    messages = secure.evaluation_messages(GLOBAL, _round(1), everyone)
    assert len(exchanges.timings) == before  # the keys were in already
    assert {m.metadata.message_type for m in messages} == {MessageType.EVALUATE}
    assert {secagg.TrainInputs.take(m.content).server_round for m in messages} == {2}
    replies = exchanges(messages, Stage.EVALUATE, 1)
    for reply in replies:
        assert set(reply.content) == {keys.ARRAYS}  # nothing in the clear
        masked = reply.content[keys.ARRAYS][keys.SECAGG_MASKED].numpy()
        assert masked.dtype == np.uint32 and masked.shape == (1 + EVALUATION,)
    summary = secure.sum_evaluations(
        [secure.check_evaluation(r, _round(1)) for r in replies], _round(1)
    ).summary

    _assert_sum_of_evaluations(summary, [0, 1, 2, 3])
    assert [(t.server_round, t.stage) for t in exchanges.timings[before:]] == [
        (1, "evaluate"),
        (2, "consistency"),
        (2, "unmask"),
    ]


def test_the_last_evaluation_asking_for_governance_sums_is_masked_in_the_64_bit_ring(
    grid: FakeGrid,
) -> None:
    """Round 2's keys were collected for the run's 32-bit code; the evaluate messages that
    ask for the governance release switch that round to the 64-bit ring (the banks' sums
    of probabilities need 32 fraction bits) and expect the longer vector."""
    exchanges = BankExchange(grid, min_banks=2, timeout=0.5)
    secure = _enrolled(grid, exchange=exchanges)
    everyone = sorted(grid.get_node_ids())
    secure.prepare(1, GLOBAL, _run())
    updates = [train_reply(r) for r in _train(grid, secure, 1)]
    secure.aggregate(updates, GLOBAL, _round(1), next_round=2, members=everyone)
    layout = GovernanceLayout(calibration_bins=3, score_bins=SCORE_BINS, cutoff=0.5, groupings=())
    assert secure.code.ring_bits == 32

    messages = secure.evaluation_messages(GLOBAL, _round(1), everyone, layout)

    for message in messages:
        asked = GovernanceRequest.take(message.content)
        assert (asked.calibration_bins, asked.decision_cutoff) == (3, 0.5)
        code = decode_fixed_point(secagg.TrainInputs.take(message.content).fixed_point)
        assert code.ring_bits == 64
    short = Message(
        RecordDict(
            {
                keys.ARRAYS: ArrayRecord(
                    {keys.SECAGG_MASKED: Array(np.zeros(1 + EVALUATION, dtype=np.uint64))}
                )
            }
        ),
        dst_node_id=everyone[0],
        message_type=MessageType.EVALUATE,
    )
    with pytest.raises(MalformedMessage, match=rf"expected uint64\({1 + EVALUATION + 16},\)"):
        secure.check_evaluation(short, _round(1), layout)  # 3 bins: 15 sums and a count


def test_a_bank_lost_before_the_last_evaluation_is_unmasked_out_of_its_sum(
    grid: FakeGrid,
) -> None:
    exchanges = BankExchange(grid, min_banks=2, timeout=0.5)
    secure = _enrolled(grid, exchange=exchanges)
    secure.prepare(1, GLOBAL, _run())
    updates = [train_reply(r) for r in _train(grid, secure, 1)]
    everyone = sorted(grid.get_node_ids())
    secure.aggregate(updates, GLOBAL, _round(1), next_round=2, members=everyone)
    grid.lose(1, lambda message: message.metadata.message_type == MessageType.EVALUATE)

    summary = _scored_last(grid, secure, exchanges)

    _assert_sum_of_evaluations(summary, [0, 2, 3])


def test_a_malformed_masked_evaluation_is_refused_and_left_out_of_the_sum(
    grid: FakeGrid,
) -> None:
    """A vector of the right length in another dtype is not cast into the ring."""
    exchanges = BankExchange(grid, min_banks=2, timeout=0.5)
    secure = _enrolled(grid, exchange=exchanges)
    secure.prepare(1, GLOBAL, _run())
    updates = [train_reply(r) for r in _train(grid, secure, 1)]
    everyone = sorted(grid.get_node_ids())
    secure.aggregate(updates, GLOBAL, _round(1), next_round=2, members=everyone)
    replies = exchanges(secure.evaluation_messages(GLOBAL, _round(1), everyone), "evaluate", 1)
    broken = next(r for r in replies if r.metadata.src_node_id == grid.node_id(0))
    broken.content[keys.ARRAYS] = ArrayRecord(
        {keys.SECAGG_MASKED: Array(np.zeros(1 + EVALUATION, dtype=np.float64))}
    )
    with pytest.raises(MalformedMessage, match=r"masked evaluation is float64\(12,\), expected"):
        secure.check_evaluation(broken, _round(1))

    summary = secure.sum_evaluations(replies, _round(1)).summary  # given it anyway: left out

    _assert_sum_of_evaluations(summary, [1, 2, 3])


def test_a_sum_of_banks_that_all_decline_holds_no_evaluation() -> None:
    every_bank_declines = (False,) * len(WEIGHTS)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(f"{__name__}.RELEASES", every_bank_declines)
        with FakeGrid(_bank_app(), num_nodes=len(WEIGHTS), run_config={}, run_id=7) as grid:
            exchanges = BankExchange(grid, min_banks=2, timeout=0.5)
            secure = _enrolled(grid, exchange=exchanges)
            secure.prepare(1, GLOBAL, _run())
            updates = [train_reply(r) for r in _train(grid, secure, 1)]
            everyone = sorted(grid.get_node_ids())
            secure.aggregate(updates, GLOBAL, _round(1), next_round=2, members=everyone)
            assert _scored_last(grid, secure, exchanges) is None


def test_a_bank_lost_after_the_keys_is_unmasked_out_of_the_sum(grid: FakeGrid) -> None:
    secure = _enrolled(grid)
    secure.prepare(1, GLOBAL, _run())
    grid.lose(2, lambda message: message.metadata.message_type == MessageType.TRAIN)
    updates = [train_reply(reply) for reply in _train(grid, secure, 1)]
    assert len(updates) == 3

    result = _last_round(secure, updates)

    expected, loss = _expected([0, 1, 3])
    np.testing.assert_allclose(flatten(result.arrays), expected, atol=1e-3)
    assert result.train_loss == pytest.approx(loss, abs=1e-3)
    assert grid.node_id(2) not in result.banks


def test_the_coordinators_unmask_work_per_secure_round_is_in_the_summary(grid: FakeGrid) -> None:
    """metrics.json's ``secure_aggregation.costs``: one secret reconstructed per member
    of U1 (3 self-mask seeds, 1 dropout's masking key), one mask expansion per survivor
    and one key agreement and expansion per survivor neighbour of the dropout."""
    secure = _enrolled(grid)
    assert secure.summary()["costs"] == {"coordinator": []}  # nothing unmasked yet
    secure.prepare(1, GLOBAL, _run())
    grid.lose(2, lambda message: message.metadata.message_type == MessageType.TRAIN)
    _last_round(secure, [train_reply(reply) for reply in _train(grid, secure, 1)])

    costs = json.loads(json.dumps(secure.summary()))["costs"]
    assert costs == {
        "coordinator": [
            {
                "secure_round": 1,
                "key_agreements": 3,
                "shares": 0,
                "mask_expansions": 3 + 3,
                "signature_verifications": 0,
                "reconstructions": 4,
            }
        ]
    }


def test_a_bank_lost_after_the_keys_takes_its_evaluation_out_of_the_sum(grid: FakeGrid) -> None:
    secure = _enrolled(grid)
    everyone = sorted(grid.get_node_ids())
    secure.prepare(1, GLOBAL, _run())
    first = [train_reply(reply) for reply in _train(grid, secure, 1)]
    secure.aggregate(first, GLOBAL, _round(1), next_round=2, members=everyone)
    grid.lose(0, lambda message: message.metadata.message_type == MessageType.TRAIN)
    updates = [train_reply(reply) for reply in _train(grid, secure, 2, evaluate=True)]
    assert len(updates) == 3

    result = secure.aggregate(updates, GLOBAL, _round(2), next_round=3, members=everyone)

    _assert_sum_of_evaluations(result.evaluation, [1, 2, 3])
    np.testing.assert_allclose(flatten(result.arrays), _expected([1, 2, 3])[0], atol=1e-3)


def test_a_malformed_masked_update_leaves_that_bank_out(grid: FakeGrid) -> None:
    secure = _enrolled(grid)
    secure.prepare(1, GLOBAL, _run())
    replies = _train(grid, secure, 1)
    broken = replies[0]
    broken.content[keys.ARRAYS] = ArrayRecord(
        {keys.SECAGG_MASKED: Array(np.zeros(N_PARAMS + 3 + EVALUATION, dtype=np.float64))}
    )
    survivors = {r.metadata.src_node_id for r in replies[1:]}
    with pytest.raises(MalformedMessage, match=r"masked update is float64\(26,\), expected uint32"):
        secure.check(train_reply(broken), GLOBAL)
    checked = [secure.check(train_reply(r), GLOBAL) for r in replies[1:]]

    result = _last_round(secure, checked)

    banks = [i for i in range(len(WEIGHTS)) if grid.node_id(i) in survivors]
    np.testing.assert_allclose(flatten(result.arrays), _expected(banks)[0], atol=1e-3)
    assert set(result.banks) == survivors


def test_too_few_banks_with_keys_abort_the_round_before_training(grid: FakeGrid) -> None:
    secure = _enrolled(grid)
    for lost in (0, 1):
        grid.lose(lost)
    secure.prepare(1, GLOBAL, _run())  # only two banks advertise: below the threshold 3
    with pytest.raises(RoundAborted, match=r"round 1: aborted at 'advertise': 2 bank\(s\) left"):
        secure.train_messages(GLOBAL, _round(1), sorted(grid.get_node_ids()))


def _is_task(task: Task) -> Callable[[Message], bool]:
    def matches(message: Message) -> bool:
        return (
            message.metadata.message_type == MessageType.QUERY
            and QueryInstructions.take(message.content).task == task
        )

    return matches


def test_too_few_banks_at_unmasking_abort_the_round(grid: FakeGrid) -> None:
    secure = _enrolled(grid)
    secure.prepare(1, GLOBAL, _run())
    updates = [train_reply(reply) for reply in _train(grid, secure, 1)]
    for lost in (0, 1):
        grid.lose(lost, _is_task(Task.SECAGG_UNMASK))
    with pytest.raises(RoundAborted, match="aborted at 'unmask'"):
        _last_round(secure, updates)
    # metrics.json still lists the round: no secret was reconstructed, no mask removed
    unmask_work = secure.summary()["costs"]["coordinator"]
    assert [cost["secure_round"] for cost in unmask_work] == [1]
    assert unmask_work[0]["reconstructions"] == unmask_work[0]["mask_expansions"] == 0


def test_too_few_survivor_signatures_abort_the_round_before_any_share_is_asked(
    grid: FakeGrid,
) -> None:
    exchanges = BankExchange(grid, min_banks=2, timeout=0.5)
    secure = _enrolled(grid, exchange=exchanges)
    secure.prepare(1, GLOBAL, _run())
    updates = [train_reply(reply) for reply in _train(grid, secure, 1)]
    for lost in (0, 1):
        grid.lose(lost, _is_task(Task.SECAGG_CONSISTENCY))
    before = len(exchanges.timings)
    with pytest.raises(RoundAborted, match="aborted at 'consistency check': 2 bank"):
        _last_round(secure, updates)
    assert [t.stage for t in exchanges.timings[before:]] == ["consistency"]  # no unmask


def _is_train(message: Message) -> bool:
    return message.metadata.message_type == MessageType.TRAIN


def test_keys_for_the_next_round_ride_on_the_unmask_exchange(grid: FakeGrid) -> None:
    """The survivors advertise beside their reveal; bank 2, lost for training, is asked apart."""
    exchanges = BankExchange(grid, min_banks=2, timeout=0.5)
    secure = _enrolled(grid, exchange=exchanges)
    secure.prepare(1, GLOBAL, _run())
    grid.lose(2, _is_train)
    updates = [train_reply(r) for r in _train(grid, secure, 1)]
    everyone = sorted(grid.get_node_ids())
    before = len(exchanges.timings)

    result = secure.aggregate(updates, GLOBAL, _round(1), next_round=2, members=everyone)

    assert grid.node_id(2) not in result.banks
    assert [(t.server_round, t.stage) for t in exchanges.timings[before:]] == [
        (1, "consistency"),
        (1, "unmask"),
    ]
    secure.prepare(2, GLOBAL, _run())  # the keys are in already: no exchange
    assert len(exchanges.timings) == before + 2
    assert len(secure.train_messages(GLOBAL, _round(2), everyone)) == len(WEIGHTS)


def _breaking_the_advertisement_of(bank: int) -> ClientApp:
    """The banks' app, except that bank ``bank`` advertises junk beside its reveal."""

    def mod(message: Message, context: Context, call_next: ClientAppCallable) -> Message:
        reply = call_next(message, context)
        if context.node_config["partition-id"] == bank and secagg.Advertisement.present(
            reply.content
        ):
            secagg.Advertisement(advertisement=b"{not json").put(reply.content)
        return reply

    return _bank_app(mods=(mod,))


def test_a_malformed_advertisement_leaves_that_bank_out_of_the_next_round() -> None:
    app = _breaking_the_advertisement_of(0)
    with FakeGrid(app, num_nodes=len(WEIGHTS), run_config={}, run_id=7) as grid:
        secure = _enrolled(grid)
        secure.prepare(1, GLOBAL, _run())  # bank 0's junk keys: it is not in round 1
        updates = [train_reply(r) for r in _train(grid, secure, 1)]
        assert len(updates) == len(WEIGHTS) - 1
        everyone = sorted(grid.get_node_ids())
        secure.aggregate(updates, GLOBAL, _round(1), next_round=2, members=everyone)
        messages = secure.train_messages(GLOBAL, _round(2), everyone)
    assert sorted(m.metadata.dst_node_id for m in messages) == sorted(
        grid.node_id(i) for i in (1, 2, 3)
    )


def test_a_round_that_ends_before_unmasking_leaves_the_next_round_to_ask_for_its_keys(
    grid: FakeGrid,
) -> None:
    exchanges = BankExchange(grid, min_banks=2, timeout=0.5)
    secure = _enrolled(grid, exchange=exchanges)
    secure.prepare(1, GLOBAL, _run())
    for lost in (0, 1):
        grid.lose(lost, _is_train)
    updates = [train_reply(r) for r in _train(grid, secure, 1)]
    everyone = sorted(grid.get_node_ids())
    with pytest.raises(RoundAborted, match="aborted at 'masked"):
        secure.aggregate(updates, GLOBAL, _round(1), next_round=2, members=everyone)
    before = len(exchanges.timings)

    secure.prepare(2, GLOBAL, _run())

    assert [(t.server_round, t.stage) for t in exchanges.timings[before:]] == [(2, "advertise")]
    assert len(secure.train_messages(GLOBAL, _round(2), everyone)) == len(WEIGHTS)


def _enrollment(name: str) -> secagg.Enrollment:
    return secagg.Enrollment(member=name, encryption_key=bytes(32), signature=bytes(64))


@pytest.mark.parametrize("banks", [1, 2])
def test_fewer_than_three_banks_cannot_be_summed_securely(grid: FakeGrid, banks: int) -> None:
    exchange = BankExchange(grid, min_banks=1, timeout=0.5)
    with pytest.raises(RoundFailed, match="secure aggregation needs at least 3 banks"):
        SecureAggregation.enroll(
            run=7,
            clip=16.0,
            enrollments={n: _enrollment(f"bank-{n}") for n in range(banks)},
            weights=dict.fromkeys(range(banks), 100),
            score_bins=SCORE_BINS,
            exchange=exchange,
        )


@pytest.mark.parametrize(("banks", "threshold"), [(3, 3), (4, 3), (5, 4), (6, 5), (9, 7)])
def test_the_threshold_is_above_two_thirds_of_the_roster(
    grid: FakeGrid, banks: int, threshold: int
) -> None:
    secure = SecureAggregation.enroll(
        run=7,
        clip=16.0,
        enrollments={n: _enrollment(f"bank-{n}") for n in range(banks)},
        weights=dict.fromkeys(range(banks), 100),
        score_bins=SCORE_BINS,
        exchange=BankExchange(grid, min_banks=1, timeout=0.5),
    )
    assert secure.threshold == threshold and 3 * threshold > 2 * banks
    assert secure.summary() == {
        "protocol": (
            "SecAgg, malicious-secure (Bonawitz et al. 2017, section 6): signed keys "
            "against the banks' pinned member list, consistency check; complete graph, "
            "keys advertised one round ahead"
        ),
        "graph": "complete",
        "degree": banks - 1,
        "min_survivors": threshold,
        "threshold_policy": "t = floor(0.6667·N) + 1 (t > 0.6667·N), set by each bank",
        "banks": banks,
        "threshold": threshold,
        "ring_bits": 32,
        "fraction_bits": secure.code.fraction_bits,
        "clip": 16.0,
        "costs": {"coordinator": []},  # no round unmasked yet
    }


@pytest.mark.parametrize(("banks", "threshold"), [(3, 3), (4, 4), (8, 7), (12, 10)])
def test_the_consortium_sets_another_threshold_policy(
    grid: FakeGrid, banks: int, threshold: int
) -> None:
    secure = SecureAggregation.enroll(
        run=7,
        clip=16.0,
        enrollments={n: _enrollment(f"bank-{n}") for n in range(banks)},
        weights=dict.fromkeys(range(banks), 100),
        score_bins=SCORE_BINS,
        exchange=BankExchange(grid, min_banks=1, timeout=0.5),
        threshold_fraction=0.75,
    )
    assert secure.threshold == threshold
    assert threshold == SecAggPolicy(threshold_fraction=0.75).threshold(banks)
    summary = secure.summary()
    assert summary is not None and summary["threshold_policy"].startswith("t = floor(0.75·N) + 1")


def _revealing_junk(bank: int) -> ClientApp:
    """The banks' app, except that bank ``bank`` reveals shares that are not shares."""

    def mod(message: Message, context: Context, call_next: ClientAppCallable) -> Message:
        reply = call_next(message, context)
        unmasking = message.metadata.message_type == MessageType.QUERY and (
            QueryInstructions.take(message.content).task == Task.SECAGG_UNMASK
        )
        if context.node_config["partition-id"] == bank and unmasking:
            shares = decode_keys(secagg.Reveal.take(reply.content).reveal, "reveal")
            secagg.Reveal(reveal=encode_keys(dict.fromkeys(shares, b"x"))).put(reply.content)
        return reply

    return _bank_app(mods=(mod,))


def test_a_bank_revealing_junk_is_ignored_and_the_sum_is_still_right() -> None:
    """The junk reveal drops that bank from the unmask, named in the run's events."""
    events: list[str] = []
    with FakeGrid(_revealing_junk(1), num_nodes=len(WEIGHTS), run_config={}, run_id=7) as grid:
        secure = _enrolled(grid, events=events)
        secure.prepare(1, GLOBAL, _run())
        updates = [train_reply(reply) for reply in _train(grid, secure, 1)]
        result = _last_round(secure, updates)
        junk = grid.node_id(1)
    np.testing.assert_allclose(flatten(result.arrays), _expected([0, 1, 2, 3])[0], atol=1e-3)
    assert events == [
        f"round 1: node {junk} dropped from secure aggregation: reveal refused "
        "(a share is 70 bytes; got 1)"
    ]


@pytest.mark.parametrize("ring_bits", [32, 64])
@pytest.mark.parametrize("participants", [1, 2, 3, 4, 7, 100])
def test_the_totals_code_sums_every_bank_at_its_clip_without_wrapping(
    ring_bits: int, participants: int
) -> None:
    """``FixedPoint.for_totals``, which encodes the evaluations: headroom for N banks.

    Every bank at +clip (and every bank at -clip) still decodes to N x clip, up to half
    a unit per bank; values past the clip are clipped, not wrapped.
    """
    code = FixedPoint.for_totals(participants=participants, ring_bits=ring_bits)
    assert code.ring_bits == ring_bits and code.fraction_bits == 4
    assert code.clip > 2.0 ** (ring_bits - 1) / participants / code.scale * 0.99  # not wasted
    values = np.array([code.clip, -code.clip, 1e30, -1e30, 0.0, 12.5])
    encoded = [code.encode(values, 1.0) for _ in range(participants)]
    total = np.sum(encoded, axis=0, dtype=code.dtype)  # the ring's sum (wraps mod 2^k)

    decoded = code.decode_total(total)

    expected = participants * np.clip(values, -code.clip, code.clip)
    np.testing.assert_allclose(decoded, expected, rtol=1e-12, atol=participants / (2 * code.scale))
    assert decoded[0] > 0 > decoded[1]  # the sign survives: no wrap
