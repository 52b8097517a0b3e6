"""What the coordinator reads from banks' privacy replies: refusals and ledger summaries.

Banks with a budget attach their ledger summary (public parameters of every release
and the epsilon they compute from it) to their replies, and answer an over-budget
request with a typed refusal instead of an update. The coordinator only records
both; enforcement is the bank's.
"""

from __future__ import annotations

import json
from typing import Any

from flwr.app import Message

from credit import message_keys as keys
from credit.records import config_record, config_str

__all__ = ["BudgetsExhausted", "ledger_of", "refusal_of", "refusal_text"]


class BudgetsExhausted(Exception):
    """Internal signal: too few banks accepted a round because budgets are spent."""


def refusal_of(reply: Message) -> dict[str, Any] | None:
    """The refusal a reply carries, as a plain dict, or None for an ordinary reply."""
    if reply.has_error() or keys.REFUSAL not in reply.content:
        return None
    record = config_record(reply.content, keys.REFUSAL)
    return {key: record[key] for key in record}


def ledger_of(reply: Message) -> tuple[str, dict[str, Any]] | None:
    """(bank, ledger summary) a bank attached, or None (a bank without a budget)."""
    if reply.has_error() or keys.PRIVACY not in reply.content:
        return None
    record = config_record(reply.content, keys.PRIVACY)
    summary: dict[str, Any] = json.loads(config_str(record, keys.LEDGER))
    return config_str(record, keys.BANK_NAME), summary


def refusal_text(refusal: dict[str, Any]) -> str:
    """One line for the terminal: who refused which round and why."""
    return (
        f"bank '{refusal[keys.BANK_NAME]}' refused round {refusal[keys.SERVER_ROUND]} "
        f"({refusal[keys.REFUSAL_TYPE]}: spent {refusal[keys.REFUSAL_SPENT]:.4f}, "
        f"would reach {refusal[keys.REFUSAL_REQUESTED]:.4f}, "
        f"maximum {refusal[keys.REFUSAL_MAXIMUM]:.4f})"
    )
