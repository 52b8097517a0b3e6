"""Was this model package's model one the bank itself received? Its own audit log says.

A signed package proves who signed it (the coordinator's audit key), not that its
weights are the model the consortium trained: an operator could sign any model. The
bank's guard records, in the bank's own signed audit log, the SHA-256 of every global
model the coordinator sent it (``train`` events: the model it trained from) and
scored (``evaluate`` events: every round's model and the kept model's final
evaluation), hashed as the arrays travelled on the wire
(:func:`credit.audit.arrays_sha256`). :func:`check_received` hashes the package's
weights the same way and finds them in that log, verified with the bank's own
published audit key first: a model the bank never saw is refused.

Nothing here trusts the coordinator: the log is the bank's, written by the guard the
bank runs, and its chain and signatures are checked before any entry is read.

A boosted-trees package is refused (fail closed): a boosting run's entries in the
bank's log (its join, the coordinator's log heads, refusals) name no model. Its
level requests carry split orders, not a model, and the guard records no
``train`` or ``evaluate`` entry with a model hash for the finished ensemble it scores
(``gbdt-evaluate``), so nothing in the log can vouch for the package's trees.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from credit.audit import arrays_sha256, load_public_key, verify_audit
from credit.errors import ConfigError, PackageRefused
from credit.gbdt import BoostedModel
from credit.package import ModelPackage

__all__ = [
    "MODEL_EVENTS",
    "Receipt",
    "check_received",
    "package_model_sha256",
    "read_receipts",
]

MODEL_EVENTS = ("evaluate", "train")
"""The bank's audit events that name a global model it received (``model_sha256``)."""


@dataclass(frozen=True)
class Receipt:
    """Where the bank's audit log names a model.

    Attributes
    ----------
    run : str
        The run (its name, or Flower's run id).
    server_round : int
        The round whose global model it is.
    event : str
        ``evaluate`` (the bank scored it) or ``train`` (it trained from it).
    seq : int
        The log entry's sequence number.
    time : str
        When the entry was written.
    """

    run: str
    server_round: int
    event: str
    seq: int
    time: str


def package_model_sha256(package: ModelPackage) -> str:
    """SHA-256 of the package's weights as the arrays travel on the wire (and audit logs record).

    Raises
    ------
    PackageRefused
        A boosted-trees package: no bank log records its model (module docstring).
    """
    if isinstance(package.model, BoostedModel):
        raise PackageRefused(
            "a boosted-trees package's provenance cannot be checked: the bank's audit log "
            "of a boosting run names no model it received (no model hash is logged)",
            file=package.root,
            hint="verify it without --home, pinning the consortium's key with --signer",
        )
    state = package.model.module.state_dict()
    return arrays_sha256({name: tensor.detach().numpy() for name, tensor in state.items()})


def check_received(package: ModelPackage, audit_log: Path, public_key: Path) -> tuple[Receipt, ...]:
    """The entries of the bank's audit log that name the package's model; refuse when none does.

    Parameters
    ----------
    package : ModelPackage
        A verified package (:func:`credit.package.load_package`).
    audit_log : pathlib.Path
        The bank's audit log.
    public_key : pathlib.Path
        The bank's published audit key (``audit.pub``): the log is verified with it.

    Returns
    -------
    tuple of Receipt
        Every ``evaluate`` and ``train`` entry with the package's model, in log order
        (never empty).

    Raises
    ------
    ConfigError
        The log or key cannot be read.
    credit.audit.AuditBroken
        The log fails verification (the first bad entry named).
    PackageRefused
        No entry of the log names the package's model; a boosted-trees package.
    """
    model = package_model_sha256(package)
    receipts = read_receipts(audit_log, public_key)
    found = receipts.get(model)
    if not found:
        runs = sorted({receipt.run for entries in receipts.values() for receipt in entries})
        raise PackageRefused(
            f"its model (weights {model[:12]}…) is not one this bank received: its audit "
            f"log names {len(receipts)} models of runs {', '.join(runs) or 'none'}",
            file=package.root,
            hint="do not score with it; ask the operator which run it comes from",
        )
    return tuple(found)


def read_receipts(audit_log: Path, public_key: Path) -> dict[str, list[Receipt]]:
    """Every model the log names, verified first: model SHA-256 to its entries."""
    key = load_public_key(public_key)
    report = verify_audit(audit_log, key, allow_open=True)
    raw = audit_log.read_bytes()
    lines = raw.splitlines()[: report.entries]
    if not lines or hashlib.sha256(lines[-1]).hexdigest() != report.head:
        raise ConfigError(
            "the audit log changed while it was read; run the check again", source=str(audit_log)
        )
    receipts: dict[str, list[Receipt]] = {}
    for line in lines:
        entry = json.loads(line)
        data = entry.get("data", {})
        if entry.get("event") not in MODEL_EVENTS or "model_sha256" not in data:
            continue
        receipts.setdefault(str(data["model_sha256"]), []).append(
            Receipt(
                run=str(data.get("run")),
                server_round=int(data.get("server_round", 0)),
                event=str(entry["event"]),
                seq=int(entry["seq"]),
                time=str(entry["time"]),
            )
        )
    return receipts
