"""A process remembers rosters whose enrollments it checked, and only exact ones.

Many simulated banks share a worker process and one roster; each checks the roster's
N enrollment signatures before it generates a key. The check's answer is a function
of the pinned member list, the run and the exact entries, so the process remembers
it (:func:`privacy.secagg.signed.enrollments_problem`). These tests show the memory
is used, and that a roster differing in one signature, one key, or in the run it is
for, is checked afresh and refused.
"""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from types import MappingProxyType

import pytest

from credit.errors import MalformedMessage
from privacy.secagg.protocol import Participant, ParticipantStage, default_threshold
from privacy.secagg.signed import RosterEntry, RosterRefused, enrollments_problem
from privacy.secagg.wire import decode_roster, encode_roster
from tests.support.secagg import consortium

ROUND = 1
BANKS = 4
THRESHOLD = default_threshold(BANKS)


def _flipped(data: bytes) -> bytes:
    return bytes([data[0] ^ 1]) + data[1:]


def test_the_second_bank_of_a_process_is_answered_from_memory() -> None:
    members = consortium(BANKS)
    roster = members.roster()
    first, second = list(members.participants.values())[:2]
    enrollments_problem.cache_clear()

    first.advertise(ROUND, roster, THRESHOLD)
    second.advertise(ROUND, roster, THRESHOLD)

    info = enrollments_problem.cache_info()
    assert (info.misses, info.hits) == (1, 1)
    assert second.stage(ROUND) is ParticipantStage.ADVERTISED


@pytest.mark.parametrize("field", ["signature", "encryption_key"])
def test_a_roster_changed_in_one_byte_is_checked_afresh_and_refused(field: str) -> None:
    members = consortium(BANKS)
    roster = members.roster()
    first, second = list(members.participants.values())[:2]
    first.advertise(ROUND, roster, THRESHOLD)  # the genuine roster, remembered
    victim = next(node for node in roster if node != second.me)
    entry = roster[victim]
    changed: RosterEntry = (
        replace(entry, signature=_flipped(entry.signature))
        if field == "signature"
        else replace(entry, encryption_key=_flipped(entry.encryption_key))
    )
    misses = enrollments_problem.cache_info().misses

    with pytest.raises(RosterRefused, match=f"enrollment of node {victim} .* is not signed"):
        second.advertise(ROUND, {**roster, victim: changed}, THRESHOLD)

    assert enrollments_problem.cache_info().misses == misses + 1
    assert second.stage(ROUND) is ParticipantStage.NONE


def test_a_roster_remembered_for_one_run_is_refused_in_another() -> None:
    members = consortium(BANKS, run=7)
    roster = members.roster()
    first = next(iter(members.participants.values()))
    first.advertise(ROUND, roster, THRESHOLD)
    node, name = first.me, first.identity.member
    same_bank_next_run = Participant(node, 8, members.identity(name))

    with pytest.raises(RosterRefused, match="is not signed by that member"):
        same_bank_next_run.advertise(ROUND, roster, THRESHOLD)


def test_banks_of_a_process_share_one_decoded_roster_and_a_changed_byte_is_its_own() -> None:
    """A participant's saved state holds its round's roster; a process decodes one
    roster once for all its banks (read-only), and a state whose roster differs in one
    byte decodes to that roster, not the remembered one."""
    members = consortium(BANKS)
    roster = members.roster()
    first, second = list(members.participants.values())[:2]
    for bank in (first, second):
        bank.advertise(ROUND, roster, THRESHOLD)
    loaded = [
        Participant.from_bytes(bank.to_bytes(), bank.identity).roster(ROUND)
        for bank in (first, second)
    ]
    assert loaded[0] is loaded[1] and dict(loaded[0]) == roster
    assert isinstance(loaded[0], MappingProxyType)  # no bank can change the shared one

    state = json.loads(second.to_bytes())
    victim = str(next(node for node in roster if node != second.me))
    signature = base64.b64decode(state["rounds"][str(ROUND)]["roster"][victim][2])
    state["rounds"][str(ROUND)]["roster"][victim][2] = base64.b64encode(
        _flipped(signature)
    ).decode()
    changed = Participant.from_bytes(json.dumps(state).encode(), second.identity)
    assert changed.roster(ROUND)[int(victim)].signature == _flipped(signature)
    assert Participant.from_bytes(second.to_bytes(), second.identity).roster(ROUND) is loaded[1]


def test_a_relayed_roster_is_decoded_once_per_process_into_each_callers_own_dict() -> None:
    roster = consortium(BANKS).roster()
    data = encode_roster(roster)
    first, second = decode_roster(data), decode_roster(bytes(data))
    assert first == second == roster and first is not second
    first.clear()  # a caller's dict is its own
    assert decode_roster(data) == roster
    with pytest.raises(MalformedMessage, match="roster"):
        decode_roster(data[:-2])
