"""A process remembers rosters whose enrollments it checked, and only exact ones.

Many simulated banks share a worker process and one roster; each checks the roster's
N enrollment signatures before it generates a key. The check's answer is a function
of the pinned member list, the run and the exact entries, so the process remembers
it (:func:`privacy.secagg.signed.enrollments_problem`). These tests show the memory
is used, and that a roster differing in one signature, one key, or in the run it is
for, is checked afresh and refused.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from privacy.secagg.protocol import Participant, ParticipantStage, default_threshold
from privacy.secagg.signed import RosterEntry, RosterRefused, enrollments_problem
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
