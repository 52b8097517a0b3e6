"""The stability query's own records: what the coordinator asks for, what a bank answers.

A stability query (:attr:`~credit.messages.Task.STABILITY`) carries a
:class:`StabilityRequest`: which development model the counts are about and the
digest of the bin layout the coordinator expects. The bank derives the layout from
the development model it holds itself (:class:`~credit.governance.stability_release.
StabilityLayout`) and refuses a request whose model or layout differ. In the clear the
bank answers with its counts under ``stability-counts`` (:func:`stability_counts_to_record`);
under secure aggregation, masked in ``arrays`` as any secure sum's input.
"""

from __future__ import annotations

import numpy as np
from flwr.app import Array, ArrayRecord, RecordDict
from pydantic import Field

from credit import message_keys
from credit.errors import MalformedMessage
from credit.messages._parts import ConfigPart
from credit.metrics import MAX_SCORE_BINS
from credit.records import array_of, record_of

__all__ = ["StabilityRequest", "stability_counts_from_content", "stability_counts_to_record"]

_SHA256 = r"^[0-9a-f]{64}$"


class StabilityRequest(ConfigPart):
    """Asks a bank for its later file's counts on the development model's bins.

    Parameters
    ----------
    model_sha256 : str
        SHA-256 of the development model's weights file (its model card's).
    layout_sha256 : str
        :meth:`~credit.governance.stability_release.StabilityLayout.digest` of the
        layout the coordinator will read the sum with.
    score_bins : int
        The run's score bins (part of the layout; named for a readable refusal).
    """

    RECORD = message_keys.STABILITY

    model_sha256: str = Field(pattern=_SHA256)
    layout_sha256: str = Field(pattern=_SHA256)
    score_bins: int = Field(ge=2, le=MAX_SCORE_BINS)


def stability_counts_to_record(vector: np.ndarray) -> ArrayRecord:
    """A bank's stability vector in the clear (``[counts, 1]``)."""
    return ArrayRecord({message_keys.SUMS: Array(np.asarray(vector, dtype=np.float64))})


def stability_counts_from_content(content: RecordDict, *, length: int) -> np.ndarray:
    """The stability vector a reply carries in the clear.

    Raises
    ------
    MalformedMessage
        No such record, or not ``length`` finite numbers.
    """
    record = record_of(content, message_keys.STABILITY_COUNTS, ArrayRecord)
    vector = array_of(record, message_keys.SUMS, record_key=message_keys.STABILITY_COUNTS)
    numeric = np.issubdtype(vector.dtype, np.number)
    if vector.shape != (length,) or not numeric or not np.all(np.isfinite(vector)):
        raise MalformedMessage(
            f"record '{message_keys.STABILITY_COUNTS}/{message_keys.SUMS}' must hold {length} "
            f"finite numbers; got shape {vector.shape}"
        )
    return vector.astype(np.float64)
