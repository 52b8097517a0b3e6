"""Flower records, read safely: one typed accessor, and model weights as one vector.

Everything a message carries arrives from the network. :func:`record_of` is the one
way fedcredit reads a record out of a message: it checks that the record is there
and of the expected kind and raises :class:`~credit.errors.MalformedMessage` naming
the record otherwise (never an ``assert``, which ``python -O`` removes).
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, MetricRecord, RecordDict
from numpy.typing import NDArray

from credit.errors import MalformedMessage

__all__ = ["array_of", "flatten", "record_of", "unflatten"]

R = TypeVar("R", ArrayRecord, ConfigRecord, MetricRecord)


def record_of(content: RecordDict, key: str, kind: type[R]) -> R:
    """The record under ``key``, checked to be a ``kind``.

    Raises
    ------
    MalformedMessage
        The message has no record ``key``, or it is of another kind.
    """
    if key not in content:
        raise MalformedMessage(f"the message has no '{key}' record")
    record = content[key]
    if not isinstance(record, kind):
        raise MalformedMessage(
            f"record '{key}' is a {type(record).__name__}, expected a {kind.__name__}"
        )
    return record


def array_of(record: ArrayRecord, name: str, *, record_key: str) -> NDArray[np.generic]:
    """The array ``name`` of an ArrayRecord as numpy; MalformedMessage if it is missing."""
    if name not in record:
        raise MalformedMessage(f"record '{record_key}' has no array '{name}'")
    try:
        return record[name].numpy()
    except (TypeError, ValueError) as exc:
        raise MalformedMessage(f"record '{record_key}', array '{name}': {exc}") from None


def flatten(arrays: ArrayRecord) -> NDArray[np.float64]:
    """All parameters as one float64 vector, in the record's key order."""
    return np.concatenate([arrays[name].numpy().ravel() for name in arrays]).astype(np.float64)


def unflatten(vector: NDArray[np.float64], like: ArrayRecord) -> ArrayRecord:
    """Split ``vector`` back into ``like``'s arrays, with their shapes and dtypes."""
    out, start = {}, 0
    for name in like:
        template = like[name].numpy()
        stop = start + template.size
        out[name] = Array(vector[start:stop].reshape(template.shape).astype(template.dtype))
        start = stop
    if start != vector.size:
        raise ValueError(f"vector has {vector.size} values; the model has {start}")
    return ArrayRecord(out)
