"""Attacks on secure aggregation that go through a bank's guard or the coordinator's app.

* The coordinator drops the secure-aggregation record from a train message to read a
  bank's exact weights: a bank that requires secure aggregation refuses (typed refusal,
  audit entry) and sends no weights.
* The coordinator reruns a round (a "resumed" run) with another survivor set, to
  subtract the two sums: the bank's replayed result is bound to the round's members.
* The coordinator proposes a threshold below the bank's own: refused by the guard
  (typed refusal ``secagg-roster``, audit entry) before any key is generated.
* A bank forges the shares it reveals: the reconstructed seeds are wrong and the sum is
  garbage; the coordinator's weight-sum check (the decoded weight must equal the
  survivors' declared ``n_train``) aborts the round instead of using it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from flwr.app import Context, Message, MessageType, RecordDict
from flwr.clientapp import ClientApp
from flwr.clientapp.typing import ClientAppCallable

from coordinator.app.bank_replies import train_reply
from coordinator.errors import RoundAborted
from credit.messages import QueryInstructions, RoundInstructions, Task, secagg
from credit.schema import DatasetSchema
from participant.guard.bank_guard import BankGuard
from participant.guard.handlers import privacy_guard
from participant.guard.local_update import local_update
from participant.guard.replay import ReplayRefused
from participant.relay.client_app import GuardRefused
from privacy.secagg.shamir import PRIME, Share
from privacy.secagg.signed import RosterEntry, enrollment_statement
from privacy.secagg.wire import decode_keys, encode_keys, encode_roster
from tests.coordinator.app.test_secagg_server import (
    GLOBAL,
    WEIGHTS,
    _bank_app,
    _enrolled,
    _last_round,
    _run,
    _train,
)
from tests.participant.guard.bank_messages import (
    RUN_ID,
    acme_settings,
    context,
    guarded_app,
    join_query,
    joined_bank,
    message,
    round_content,
    run_instructions,
)
from tests.support.fake_grid import FakeGrid
from tests.support.secagg import CONSORTIUM, pin_members


def test_coordinator_omitting_the_secure_aggregation_record_is_refused(
    tmp_path: Path, schema: DatasetSchema, write_bank_csv: Callable[..., Path]
) -> None:
    audit = tmp_path / "audit.jsonl"
    settings = acme_settings(write_bank_csv(300), max_epsilon=None, audit_log=audit)
    guard = BankGuard(settings.model_copy(update={"require_secure_aggregation": True}))
    app, ctx = guarded_app(guard), context()
    app(message(MessageType.QUERY, join_query(schema)), ctx)
    content, _ = round_content(schema, 1)
    assert not secagg.TrainInputs.present(content)  # the record the attacker left out
    replies: list[Message] = []

    with pytest.raises(GuardRefused, match="only through secure aggregation"):
        replies.append(app(message(MessageType.TRAIN, content), ctx))

    assert replies == []  # no reply content at all, so no weights: nothing to read
    last = json.loads(audit.read_text(encoding="utf-8").splitlines()[-1])
    assert last["event"] == "refusal" and last["data"]["kind"] == "plain-update"


def test_replay_with_a_different_survivor_set_is_refused(
    tmp_path: Path, schema: DatasetSchema, write_bank_csv: Callable[..., Path]
) -> None:
    """Round 1 is trained (and paid for) masked with members A; the coordinator "resumes"
    round 1 without one of them. Re-sending the kept result masked for the smaller set
    would let it subtract the two sums: refused, nothing charged, nothing sent."""
    ledger = tmp_path / "acme.ledger.jsonl"
    bank = joined_bank(schema, write_bank_csv(400), max_epsilon=4.0, ledger_path=ledger)
    prepared, settings = bank.guard.bank, bank.guard.settings
    content, arrays = round_content(schema, 1)
    instructions = RoundInstructions.take(content)
    run = instructions.run_key(RUN_ID)
    members = frozenset({"acme", "peer-1", "peer-2", "peer-3"})

    def train(with_members: frozenset[str]) -> bool:
        guard = privacy_guard(prepared, settings)
        update = local_update(
            prepared, instructions, arrays, guard=guard, run=run, members=with_members
        )
        return update.replayed

    assert train(members) is False
    spent = ledger.read_text()
    second_sums: list[bool] = []

    with pytest.raises(ReplayRefused, match=r"run '.*', round 1: .* members .*refused"):
        second_sums.append(train(members - {"peer-2"}))

    assert second_sums == [] and ledger.read_text() == spent
    assert train(members) is True  # the same members: the paid-for result, again


def _forging_shares(banks: tuple[int, ...]) -> ClientApp:
    """The banks' app, except that ``banks`` reveal shares moved by one (valid field
    elements: only the reconstruction can tell)."""

    def mod(message: Message, context: Context, call_next: ClientAppCallable) -> Message:
        reply = call_next(message, context)
        unmasking = message.metadata.message_type == MessageType.QUERY and (
            QueryInstructions.take(message.content).task == Task.SECAGG_UNMASK
        )
        if context.node_config["partition-id"] in banks and unmasking:
            shares = decode_keys(secagg.Reveal.take(reply.content).reveal, "reveal")
            forged = {}
            for owner, data in shares.items():
                share = Share.from_bytes(data)
                forged[owner] = Share(share.x, (share.y + 1) % PRIME).to_bytes()
            secagg.Reveal(reveal=encode_keys(forged)).put(reply.content)
        return reply

    return _bank_app(mods=(mod,))


def test_a_forged_share_is_caught_by_the_weight_sum_check() -> None:
    """Two of four banks forge their shares, so any t = 3 reveals include a forged one:
    the unmasked "sum" is garbage, its weight is not the banks' 2,400 rows, and the
    round aborts with the model unchanged."""
    app = _forging_shares((0, 1))
    with FakeGrid(app, num_nodes=len(WEIGHTS), run_config={}, run_id=7) as grid:
        secure = _enrolled(grid)
        secure.prepare(1, GLOBAL, _run())
        updates = [train_reply(reply) for reply in _train(grid, secure, 1)]
        with pytest.raises(RoundAborted, match=r"unmasked weight sum is \d+, not \d+ \(the "):
            _last_round(secure, updates)


def _peer_enrollment(name: str, key: Ed25519PrivateKey, node: int) -> RosterEntry:
    public = X25519PrivateKey.generate().public_key().public_bytes_raw()
    statement = enrollment_statement(
        consortium=CONSORTIUM, run=RUN_ID, node=node, member=name, encryption_key=public
    )
    return RosterEntry(member=name, encryption_key=public, signature=key.sign(statement))


@pytest.mark.parametrize("threshold", [1, 2])
def test_coordinator_proposing_a_lower_threshold_to_a_guard_is_refused_and_audited(
    tmp_path: Path, schema: DatasetSchema, write_bank_csv: Callable[..., Path], threshold: int
) -> None:
    """The same attack through the bank's guard: a typed refusal and an audit entry; with
    the bank's own threshold (3 of 3) the same roster is answered."""
    audit = tmp_path / "audit.jsonl"
    settings, peers = pin_members(
        acme_settings(write_bank_csv(300), max_epsilon=None, audit_log=audit), tmp_path
    )
    guard = BankGuard(settings)
    app, ctx = guarded_app(guard), context()
    join = RecordDict()
    run_instructions(schema).query(Task.JOIN).put(join)
    secagg.KeyRequest().put(join)
    joined = secagg.Enrollment.take(app(message(MessageType.QUERY, join), ctx).content)
    roster = {
        ctx.node_id: RosterEntry(
            member=joined.member, encryption_key=joined.encryption_key, signature=joined.signature
        ),
        **{
            7 + i: _peer_enrollment(name, key, 7 + i) for i, (name, key) in enumerate(peers.items())
        },
    }

    def advertise(asked: int, degree: int | None = None) -> Message:
        content = RecordDict()
        run_instructions(schema).query(Task.SECAGG_ADVERTISE).put(content)
        secagg.AdvertiseRequest(
            roster=encode_roster(roster), threshold=asked, advertise_round=1, degree=degree
        ).put(content)
        return app(message(MessageType.QUERY, content), ctx)

    with pytest.raises(GuardRefused, match=rf"threshold {threshold} is not the bank's threshold 3"):
        advertise(threshold)
    last = json.loads(audit.read_text(encoding="utf-8").splitlines()[-1])
    assert last["event"] == "refusal" and last["data"]["kind"] == "secagg-roster"
    # A graph the bank does not compute (degree 4 for 3 banks, whose policy gives the
    # complete graph of degree 2) is refused alike, before any key.
    with pytest.raises(GuardRefused, match=r"a graph of degree 4 is not the bank's own"):
        advertise(3, degree=4)

    answered = advertise(3)  # the bank's own threshold: keys for round 1
    assert secagg.Advertisement.present(answered.content)
