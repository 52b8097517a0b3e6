"""The head of the sender's audit log, carried beside each request and each answered reply.

Both sides keep a signed, hash-chained audit log (:mod:`credit.audit`). A
coordinator that keeps one puts its log's head in every request it sends
(``audit-head=AuditHead``), and a bank's guard puts its own log's head in every
reply it answers. Each side records the head it receives in its own log: the
coordinator in an ``exchange`` entry per exchange, a bank in a ``coordinator-head``
entry per request. Either log then anchors the other one: a head recorded by the
peer at seq N is the SHA-256 of the sender's N-th line, so a log that was emptied,
begun anew or cut before N no longer matches what its peer holds
(:func:`credit.audit.verify_audit` with ``heads=``).

The head is a claim, recorded and never trusted: a receiver reads it with
:meth:`AuditHead.take` like any part, and one that breaks the contract
(:class:`~credit.errors.MalformedMessage`) is recorded as malformed, never fatal to
the run or the request.

Notes
-----
What a malicious sender can do with the field, and why it does not matter: claim a
head its log never had (the receiver's log then proves the sender claimed it, and
nothing else: no decision on either side reads it); send oversized or hostile text
(it must be 64 hex digits to be recorded; otherwise only the first 200 characters
of the problem are, as canonical JSON, which escapes every quote and newline); send
none (nothing is recorded on a bank; the coordinator notes the reply as missing).
"""

from __future__ import annotations

from pydantic import Field

from credit import message_keys
from credit.messages._parts import ConfigPart

__all__ = ["MAX_SEQ", "AuditHead"]

MAX_SEQ = 2**63 - 1
"""The largest sequence number a head may carry (Flower's config integers are 64-bit)."""

_HEX64 = r"^[0-9a-f]{64}$"


class AuditHead(ConfigPart):
    """How far the sender's audit log went when it sent the message.

    Parameters
    ----------
    seq : int
        The sequence number of the log's last entry, 1 to :data:`MAX_SEQ`.
    head : str
        SHA-256 (64 lowercase hex digits) of that entry's line.
    key : str
        Fingerprint of the log's signing key: SHA-256 (64 lowercase hex digits) of
        its raw Ed25519 public key, as in every entry of the log.
    """

    RECORD = message_keys.AUDIT_HEAD

    seq: int = Field(ge=1, le=MAX_SEQ)
    head: str = Field(pattern=_HEX64)
    key: str = Field(pattern=_HEX64)
