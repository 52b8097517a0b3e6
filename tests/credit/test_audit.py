"""Audit logs: every kind of tampering is named at its first bad entry."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from cli.app import app
from credit.audit import (
    GENESIS,
    AuditBroken,
    AuditLog,
    KeyHistory,
    LogHead,
    arrays_sha256,
    canonical_json,
    fingerprint,
    history_path,
    load_or_create_signing_key,
    load_public_key,
    public_key_path,
    verify_audit,
)
from credit.errors import ConfigError

EVENTS = ["run-start", "setup", "round", "round", "round", "run-end"]


@pytest.fixture
def key(tmp_path: Path) -> Ed25519PrivateKey:
    return load_or_create_signing_key(tmp_path / "keys" / "coordinator.key")


@pytest.fixture
def log(tmp_path: Path, key: Ed25519PrivateKey) -> Path:
    """A closed log: log-open, run-start, setup, rounds 1..3, run-end (7 lines)."""
    path = tmp_path / "audit" / "coordinator.jsonl"
    with AuditLog(path, key, "coordinator") as audit:
        server_round = 0
        for event in EVENTS:
            server_round += event == "round"
            audit.append(event, {"server_round": server_round, "epsilon": {"acme": 0.5}})
    return path


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n")[:-1]


def _write(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(line + b"\n" for line in lines))


def _broken(path: Path, **kwargs: object) -> AuditBroken:
    with pytest.raises(AuditBroken) as caught:
        verify_audit(path, **kwargs)  # type: ignore[arg-type]
    return caught.value


# -- an intact log --------------------------------------------------------------------------


def test_an_intact_log_verifies_and_reports_its_head(log: Path, key: Ed25519PrivateKey) -> None:
    report = verify_audit(log, key.public_key())
    assert report.entries == 7 and report.closed
    assert report.writer == "coordinator"
    assert report.fingerprint == fingerprint(key.public_key())
    assert report.first_event == "log-open" and report.last_event == "run-end"
    assert report.events == {"log-open": 1, "run-start": 1, "setup": 1, "round": 3, "run-end": 1}
    assert report.head == hashlib.sha256(_lines(log)[-1]).hexdigest()


def test_entries_chain_and_sign_as_documented(log: Path, key: Ed25519PrivateKey) -> None:
    lines = _lines(log)
    entries = [json.loads(line) for line in lines]
    assert [e["seq"] for e in entries] == list(range(1, 8))
    assert entries[0]["event"] == "log-open" and entries[0]["prev"] == GENESIS
    raw_key = base64.b64decode(entries[0]["data"]["public_key"])
    assert hashlib.sha256(raw_key).hexdigest() == fingerprint(key.public_key())
    for previous, line, entry in zip(lines, lines[1:], entries[1:], strict=False):
        assert entry["prev"] == hashlib.sha256(previous).hexdigest()
        unsigned = {k: v for k, v in entry.items() if k != "sig"}
        key.public_key().verify(base64.b64decode(entry["sig"]), canonical_json(unsigned).encode())
        assert line == canonical_json(entry).encode()


# -- tampering, each named at its first bad entry ------------------------------------------


def test_an_edited_field_is_a_bad_signature(log: Path) -> None:
    lines = _lines(log)
    entry = json.loads(lines[3])
    entry["data"]["epsilon"]["acme"] = 0.1  # understate the privacy spent in round 1
    lines[3] = canonical_json(entry).encode()
    _write(log, lines)
    error = _broken(log)
    assert str(error) == (
        f"{log} line 4 (seq 4, event round): "
        "signature does not verify: the entry was edited after signing"
    )


def test_an_edited_signature_is_named(log: Path) -> None:
    lines = _lines(log)
    entry = json.loads(lines[4])
    entry["sig"] = json.loads(lines[5])["sig"]
    lines[4] = canonical_json(entry).encode()
    _write(log, lines)
    assert str(_broken(log)).startswith(
        f"{log} line 5 (seq 5, event round): signature does not verify"
    )


def test_a_reformatted_line_is_named_even_though_its_signature_holds(log: Path) -> None:
    lines = _lines(log)
    lines[2] = lines[2].replace(b'"event":', b'"event": ')
    _write(log, lines)
    assert str(_broken(log)) == (
        f"{log} line 3 (seq 3, event setup): "
        "the line differs from its signed canonical form: it was edited"
    )


def test_an_unparseable_line_is_named(log: Path) -> None:
    lines = _lines(log)
    lines[5] = lines[5][:40] + b"}garbage"
    _write(log, lines)
    assert "line 6 " in str(_broken(log))
    assert str(_broken(log)).endswith("not a JSON object: the line was edited or corrupted")


def test_a_deleted_middle_line_names_the_entry_after_the_gap(log: Path) -> None:
    lines = _lines(log)
    del lines[3]
    _write(log, lines)
    assert str(_broken(log)) == (
        f"{log} line 4 (seq 5, event round): seq 5 follows seq 3: entry 4 is missing (deleted)"
    )


def test_two_deleted_lines_are_named_as_a_range(log: Path) -> None:
    lines = _lines(log)
    del lines[2:4]
    _write(log, lines)
    assert "line 3 (seq 5, event round): seq 5 follows seq 2: entry 3..4 is missing" in str(
        _broken(log)
    )


def test_a_deleted_first_line_is_named(log: Path) -> None:
    _write(log, _lines(log)[1:])
    assert str(_broken(log)) == (
        f"{log} line 1 (seq 2, event run-start): the log does not start with its "
        "'log-open' entry (seq 1): entries before this one were deleted or the file was replaced"
    )


def test_two_swapped_lines_are_named_as_reordered(log: Path) -> None:
    lines = _lines(log)
    lines[3], lines[4] = lines[4], lines[3]
    _write(log, lines)
    assert str(_broken(log)) == (
        f"{log} line 4 (seq 5, event round): seq 5 comes before seq 4 (line 5): "
        "entries were reordered"
    )


def test_a_duplicated_line_is_named(log: Path) -> None:
    lines = _lines(log)
    lines.insert(4, lines[3])
    _write(log, lines)
    assert "line 5 (seq 4, event round): seq 4 where 5 was expected" in str(_broken(log))


def test_a_line_from_another_chain_breaks_prev(log: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.jsonl"
    with AuditLog(other, load_or_create_signing_key(tmp_path / "other.key"), "coordinator") as o:
        o.append("run-start", {})
    lines = _lines(log)
    lines[1] = _lines(other)[1]
    _write(log, lines)
    assert str(_broken(log)).startswith(
        f"{log} line 2 (seq 2, event run-start): 'prev' does not match the hash of line 1"
    )


def test_a_log_truncated_mid_line_is_named(log: Path) -> None:
    data = log.read_bytes()
    log.write_bytes(data[: len(data) - 60])
    error = str(_broken(log))
    assert error.startswith(f"{log} line 7 (seq 7, event run-end): ")
    assert error.endswith("incomplete last line (no newline): the log was truncated mid-entry")


def test_a_log_without_its_run_end_is_reported_open(log: Path) -> None:
    _write(log, _lines(log)[:-1])
    assert str(_broken(log)).startswith(
        f"{log} line 6 (seq 6, event round): the log ends without a closing entry (run-end)"
    )
    report = verify_audit(log, allow_open=True)
    assert report.entries == 6 and not report.closed


def test_a_wrong_public_key_is_named_at_the_first_line(log: Path, tmp_path: Path) -> None:
    other = load_or_create_signing_key(tmp_path / "other.key")
    error = _broken(log, public_key=other.public_key())
    assert str(error).startswith(
        f"{log} line 1 (seq 1, event log-open): the log was written with key "
    )
    assert fingerprint(other.public_key())[:16] in str(error)


def test_a_log_resigned_with_another_key_is_caught_by_the_published_key(
    log: Path, key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    """Someone with their own key rewrites the whole log: only --public-key shows it."""
    forged = tmp_path / "forged.jsonl"
    with AuditLog(forged, load_or_create_signing_key(tmp_path / "forger.key"), "coordinator") as f:
        for line in _lines(log)[1:]:
            entry = json.loads(line)
            f.append(entry["event"], entry["data"])
    verify_audit(forged)  # self-consistent
    assert "the log was written with key" in str(_broken(forged, public_key=key.public_key()))


def test_an_empty_log_is_broken(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    assert str(_broken(empty)) == f"{empty} line 1 (seq ?, event ?): empty log: no 'log-open' entry"


# -- writing -----------------------------------------------------------------------------


def test_reopening_continues_the_chain(log: Path, key: Ed25519PrivateKey) -> None:
    with AuditLog(log, key, "coordinator") as audit:
        assert audit.seq == 7
        entry = audit.append("run-resume", {"after_round": 3})
        audit.append("run-end", {"status": "completed"})
    assert entry["seq"] == 8 and entry["prev"] == hashlib.sha256(_lines(log)[6]).hexdigest()
    report = verify_audit(log, key.public_key())
    assert report.entries == 9 and report.events["run-end"] == 2


def test_two_writers_of_one_key_interleave_safely(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    """Per-message ClientApp processes share a bank's log: each catches up first."""
    path = tmp_path / "bank.jsonl"
    first, second = AuditLog(path, key, "bank a"), AuditLog(path, key, "bank a")
    with first, second:
        for index in range(3):
            first.append("train", {"i": index})
            second.append("evaluate", {"i": index})
        first.append("run-end", {})
    assert verify_audit(path).entries == 8


def test_appending_to_a_broken_log_is_refused_and_leaves_it_alone(
    log: Path, key: Ed25519PrivateKey
) -> None:
    lines = _lines(log)
    del lines[3]
    _write(log, lines)
    before = log.read_bytes()
    with pytest.raises(ConfigError, match=r"line 4 \(seq 5, event round\).*refusing to append"):
        AuditLog(log, key, "coordinator")
    assert log.read_bytes() == before


def test_appending_with_another_key_is_refused(log: Path, tmp_path: Path) -> None:
    other = load_or_create_signing_key(tmp_path / "other.key")
    before = log.read_bytes()
    with pytest.raises(ConfigError, match=r"line 1: the log was written with key [0-9a-f]{16}, "):
        AuditLog(log, other, "coordinator")
    assert log.read_bytes() == before


def test_a_log_that_grew_a_torn_line_is_refused(log: Path, key: Ed25519PrivateKey) -> None:
    with AuditLog(log, key, "coordinator") as audit:
        with log.open("ab") as handle:
            handle.write(b'{"data":{},"event":"round","seq":8')
        with pytest.raises(ConfigError, match=r"line 8 \(seq 8, event round\): incomplete"):
            audit.append("round", {})


# -- keys ----------------------------------------------------------------------------------


def test_a_new_key_is_private_and_publishes_its_public_half(tmp_path: Path) -> None:
    path = tmp_path / "k" / "bank.key"
    key = load_or_create_signing_key(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert public_key_path(path) == tmp_path / "k" / "bank.pub"
    assert fingerprint(load_public_key(public_key_path(path))) == fingerprint(key.public_key())
    again = load_or_create_signing_key(path)
    assert fingerprint(again.public_key()) == fingerprint(key.public_key())


def test_a_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bank.key"
    load_or_create_signing_key(path)
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match="readable by other users; run: chmod 600"):
        load_or_create_signing_key(path)


def test_a_non_ed25519_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ecdsa.key"
    pem = generate_private_key(SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.write_bytes(pem)
    os.chmod(path, 0o600)
    with pytest.raises(ConfigError, match="must be Ed25519, got"):
        load_or_create_signing_key(path)


def test_an_openssh_public_key_loads(key: Ed25519PrivateKey, tmp_path: Path) -> None:
    path = tmp_path / "k.pub"
    path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
    )
    assert fingerprint(load_public_key(path)) == fingerprint(key.public_key())


def test_arrays_hash_covers_names_shapes_dtypes_and_values() -> None:
    import numpy as np

    weights = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.zeros(1, np.float32)}
    base = arrays_sha256(weights)
    assert base == arrays_sha256({k: v.copy() for k, v in weights.items()})
    assert base != arrays_sha256({"w": weights["w"].reshape(3, 2), "b": weights["b"]})
    assert base != arrays_sha256({"w": weights["w"].astype(np.float64), "b": weights["b"]})
    assert base != arrays_sha256({"v": weights["w"], "b": weights["b"]})
    changed = weights["w"].copy()
    changed[0, 0] = 1e-7
    assert base != arrays_sha256({"w": changed, "b": weights["b"]})


# -- fedcredit audit verify ---------------------------------------------------------------


def _cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["audit", "verify", *args])
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), result.exception
    return result.exit_code, result.stdout, result.stderr


def test_cli_prints_a_summary_of_an_intact_log(log: Path, tmp_path: Path) -> None:
    code, out, err = _cli(str(log), "--public-key", str(tmp_path / "keys" / "coordinator.pub"))
    report = verify_audit(log)
    assert code == 0 and err == ""
    assert f"audit log {log}: intact, 7 entries" in out
    assert report.fingerprint in out and report.head in out
    assert "first entry  log-open" in out and "last entry   run-end" in out


def test_cli_names_the_first_bad_entry_and_exits_1(log: Path) -> None:
    lines = _lines(log)
    entry = json.loads(lines[4])
    entry["data"]["server_round"] = 9
    lines[4] = canonical_json(entry).encode()
    _write(log, lines)
    code, out, err = _cli(str(log))
    assert code == 1 and out == ""
    assert err == (
        f"error: {log} line 5 (seq 5, event round): "
        "signature does not verify: the entry was edited after signing\n"
    )


def test_cli_open_log_fails_unless_allowed(log: Path) -> None:
    _write(log, _lines(log)[:-1])
    code, _, err = _cli(str(log))
    assert code == 1 and "line 6 (seq 6, event round): the log ends without" in err
    code, out, _ = _cli(str(log), "--allow-open")
    assert code == 0 and "open: the run may still be going" in out


def test_cli_wrong_public_key_exits_1(log: Path, tmp_path: Path) -> None:
    load_or_create_signing_key(tmp_path / "other.key")
    code, _, err = _cli(str(log), "--public-key", str(tmp_path / "other.pub"))
    assert code == 1 and "line 1 (seq 1, event log-open): the log was written with key" in err


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("missing.jsonl", "no such audit log (or not a regular file)"),
        (".", "no such audit log (or not a regular file)"),
    ],
)
def test_cli_unreadable_input_exits_2(tmp_path: Path, target: str, message: str) -> None:
    code, _, err = _cli(str(tmp_path / target))
    assert code == 2 and err.count("\n") == 1 and message in err


def test_cli_bad_key_file_exits_2(log: Path, tmp_path: Path) -> None:
    code, _, err = _cli(str(log), "--public-key", str(log))
    assert (
        code == 2
        and err == f"error: {log}: not a PEM or OpenSSH public key; pass the writer's .pub file\n"
    )
    code, _, err = _cli(str(log), "--public-key", str(tmp_path / "nope.pub"))
    assert code == 2 and "cannot read public key (No such file or directory)" in err


# -- a key's record of the logs it wrote: a log cannot be cut and begun anew --------------


def _signed_log(tmp_path: Path, entries: int = 4) -> tuple[Path, Path]:
    """A log of ``entries`` lines written through its key's record; (log, key file)."""
    key_path, path = tmp_path / "keys" / "writer.key", tmp_path / "run" / "audit.jsonl"
    with AuditLog.open(path, key_path, "coordinator") as audit:
        for index in range(entries - 1):
            audit.append("round", {"server_round": index + 1})
    return path, key_path


def _refused(path: Path, key_path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        AuditLog.open(path, key_path, "coordinator")
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_an_emptied_log_is_not_begun_anew_with_the_same_key(tmp_path: Path) -> None:
    """``truncate -s0``: the writer used to start a new, valid log in its place."""
    path, key_path = _signed_log(tmp_path)
    head = hashlib.sha256(_lines(path)[-1]).hexdigest()
    os.truncate(path, 0)
    assert _refused(path, key_path) == (
        f"audit log: {path} is empty, but key {key_path} has signed it up to seq 4 "
        f"(head {head[:16]}): restore the log from a backup, or sign a genuinely new log "
        "with a new key"
    )
    assert path.read_bytes() == b""  # nothing written


def _key(tmp_path: Path) -> Ed25519PrivateKey:
    return load_or_create_signing_key(tmp_path / "keys" / "writer.key")


def test_a_deleted_log_is_not_begun_anew_and_no_file_is_left(tmp_path: Path) -> None:
    path, key_path = _signed_log(tmp_path)
    path.unlink()
    message = _refused(path, key_path)
    assert f"{path} is missing, but key {key_path} has signed it up to seq 4" in message
    assert "restore the log from a backup, or sign a genuinely new log with a new key" in message
    assert not path.exists()


@pytest.mark.parametrize("kept", [1, 2, 3])
def test_a_log_cut_at_a_line_boundary_is_refused(tmp_path: Path, kept: int) -> None:
    """The cut log verifies on its own (as an open log); the key's record is ahead of it."""
    path, key_path = _signed_log(tmp_path)
    _write(path, _lines(path)[:kept])
    assert verify_audit(path, allow_open=True).entries == kept
    message = _refused(path, key_path)
    assert f"{path} ends at seq {kept} (entries were cut off), but key {key_path} has " in message
    assert "signed it up to seq 4" in message


def test_a_log_rolled_back_to_an_earlier_copy_is_refused(tmp_path: Path) -> None:
    path, key_path = _signed_log(tmp_path, entries=2)
    backup = path.read_bytes()
    with AuditLog.open(path, key_path, "coordinator") as audit:
        audit.append("run-end", {})
    path.write_bytes(backup)
    assert "ends at seq 2 (entries were cut off)" in _refused(path, key_path)


def test_another_log_of_the_same_key_put_in_its_place_is_refused(tmp_path: Path) -> None:
    """The coordinator's key signs one log per run: one run's log cannot stand in for another's."""
    path, key_path = _signed_log(tmp_path, entries=2)
    other = tmp_path / "other-run" / "audit.jsonl"
    with AuditLog.open(other, key_path, "coordinator") as audit:
        for index in range(4):
            audit.append("round", {"server_round": index + 1})
    path.write_bytes(other.read_bytes())
    assert "starts with another first entry than the key wrote there" in _refused(path, key_path)


def test_a_log_whose_recorded_entry_was_rewritten_is_refused(tmp_path: Path) -> None:
    path, key_path = _signed_log(tmp_path)
    # A chain rebuilt after line 2 with the same key (only the key's holder can sign
    # it, here without the record): the record still tells it from the log it wrote.
    _write(path, _lines(path)[:2])
    with AuditLog(path, _key(tmp_path), "coordinator") as rebuilt:  # no record: not checked
        rebuilt.append("round", {"server_round": 7})
        rebuilt.append("round", {"server_round": 8})
    assert "holds another entry at seq 4 (it was rewritten)" in _refused(path, key_path)


def test_the_record_follows_every_entry_and_a_crash_before_it_is_caught_up(
    tmp_path: Path,
) -> None:
    path, key_path = _signed_log(tmp_path, entries=2)
    history = KeyHistory(key_path, _key(tmp_path))
    before = history.path.read_bytes()
    with AuditLog.open(path, key_path, "coordinator") as audit:
        audit.append("round", {"server_round": 2})
        assert history.recorded(path) == LogHead(
            seq=3, head=audit.head, genesis=hashlib.sha256(_lines(path)[0]).hexdigest()
        )
    history.path.write_bytes(before)  # the entry reached the disk, its record did not
    with AuditLog.open(path, key_path, "coordinator") as audit:
        assert audit.seq == 3
    recorded = history.recorded(path)
    assert recorded is not None and recorded.seq == 3


def test_a_record_that_was_edited_or_belongs_to_another_key_is_refused(tmp_path: Path) -> None:
    path, key_path = _signed_log(tmp_path)
    record = history_path(key_path)
    document = json.loads(record.read_bytes())
    document["logs"][str(path.resolve())]["seq"] = 2  # to let a cut to 2 lines pass
    record.write_text(canonical_json(document))
    _write(path, _lines(path)[:2])
    message = _refused(path, key_path)
    assert message.startswith(f"audit key history: {record} does not verify against the key")
    assert "restore it from a backup" in message

    other_key = tmp_path / "keys" / "other.key"
    with AuditLog.open(tmp_path / "o.jsonl", other_key, "coordinator"):
        pass
    record.write_bytes(history_path(other_key).read_bytes())
    assert "records the logs of key " in _refused(path, key_path)


def test_the_same_key_begins_new_logs_elsewhere_and_a_new_key_anywhere(tmp_path: Path) -> None:
    path, key_path = _signed_log(tmp_path)
    with AuditLog.open(tmp_path / "next-run" / "audit.jsonl", key_path, "coordinator") as audit:
        assert audit.seq == 1
    path.unlink()
    fresh = tmp_path / "keys" / "new.key"
    with AuditLog.open(path, fresh, "coordinator") as audit:
        assert audit.seq == 1 and audit.fingerprint != fingerprint(_key(tmp_path).public_key())
    assert verify_audit(path, allow_open=True).entries == 1


def test_a_new_key_does_not_inherit_the_record_of_a_key_it_replaces(tmp_path: Path) -> None:
    path, key_path = _signed_log(tmp_path)
    key_path.unlink()
    public_key_path(key_path).unlink()
    path.unlink()
    with AuditLog.open(path, key_path, "coordinator") as audit:  # a new key, a new identity
        assert audit.seq == 1


def test_a_log_from_before_records_were_kept_is_adopted(
    tmp_path: Path, log: Path, key: Ed25519PrivateKey
) -> None:
    key_path = tmp_path / "keys" / "coordinator.key"
    assert not history_path(key_path).exists()
    with AuditLog.open(log, key_path, "coordinator") as audit:
        assert audit.seq == 7
    log.write_bytes(b"")
    assert "is empty, but key" in _refused(log, key_path)


def test_writers_of_two_logs_of_one_key_keep_both_records(tmp_path: Path) -> None:
    key_path = tmp_path / "keys" / "k.key"
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    with AuditLog.open(first, key_path, "w") as a, AuditLog.open(second, key_path, "w") as b:
        for index in range(3):
            a.append("round", {"i": index})
            b.append("round", {"i": index})
            b.append("round", {"i": index})
    history = KeyHistory(key_path, load_or_create_signing_key(key_path))
    assert [history.recorded(first), history.recorded(second)] == [
        LogHead(seq=4, head=verify_audit(first, allow_open=True).head, genesis=_genesis(first)),
        LogHead(seq=7, head=verify_audit(second, allow_open=True).head, genesis=_genesis(second)),
    ]


def _genesis(path: Path) -> str:
    return hashlib.sha256(_lines(path)[0]).hexdigest()


# -- heads recorded elsewhere --------------------------------------------------------------


def test_a_log_matches_the_heads_its_peer_recorded(log: Path) -> None:
    hashes = [hashlib.sha256(line).hexdigest() for line in _lines(log)]
    report = verify_audit(log, heads=[(3, hashes[2]), (7, hashes[6])])
    assert report.entries == 7


def test_a_cut_log_does_not_reach_a_head_its_peer_recorded(log: Path) -> None:
    hashes = [hashlib.sha256(line).hexdigest() for line in _lines(log)]
    cut_after_setup = _lines(log)[:3]
    _write(log, cut_after_setup)
    error = _broken(log, allow_open=True, heads=[(5, hashes[4])])
    assert str(error) == (
        f"{log} line 3 (seq 3, event setup): the log ends here, but its head at seq 5 "
        f"({hashes[4][:16]}) was recorded elsewhere: entries were cut off, or the log was "
        "begun anew"
    )


def test_a_log_begun_anew_does_not_hold_the_head_its_peer_recorded(
    log: Path, tmp_path: Path
) -> None:
    recorded = hashlib.sha256(_lines(log)[1]).hexdigest()
    log.unlink()
    with AuditLog(log, load_or_create_signing_key(tmp_path / "keys" / "coordinator.key"), "c") as a:
        a.append("run-start", {})
    assert "line 2 (seq 2, event run-start): this line hashes to " in str(
        _broken(log, allow_open=True, heads=[(2, recorded)])
    )


def test_a_log_without_fsyncs_holds_and_verifies_the_same_entries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Simulated banks' logs (``durable=False``): no fsync, same signed chain and record."""
    written: dict[bool, Path] = {}
    for durable in (True, False):
        folder = tmp_path / ("durable" if durable else "simulated")
        key_path = folder / "bank.key"
        load_or_create_signing_key(key_path)
        fsyncs: list[int] = []
        monkeypatch.setattr(os, "fsync", fsyncs.append)
        with AuditLog.open(folder / "bank.jsonl", key_path, "bank a", durable=durable) as audit:
            for event in ("train", "evaluate", "run-end"):
                audit.append(event, {"server_round": 1})
        monkeypatch.undo()
        assert (len(fsyncs) > 0) is durable
        written[durable] = folder

    for folder in written.values():
        key = load_or_create_signing_key(folder / "bank.key")
        report = verify_audit(folder / "bank.jsonl", key.public_key())
        assert report.entries == 4 and report.events["run-end"] == 1
        assert (folder / "bank.history").exists()
    with pytest.raises(ConfigError, match="has signed it up to seq 4"):  # the record held
        (written[False] / "bank.jsonl").write_bytes(b"")
        AuditLog.open(written[False] / "bank.jsonl", written[False] / "bank.key", "bank a")
