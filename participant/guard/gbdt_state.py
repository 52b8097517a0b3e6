"""What a bank keeps between the levels of a boosting run, and its bytes.

A bank's boosting state (:class:`BankState`: the announced ensemble, its rows' nodes,
margins and sample in the tree being grown, the tree's quantised gradients) never
leaves the bank. A guard that serves each message in a fresh process keeps it as
bytes between messages (:func:`state_to_bytes`, :func:`state_from_bytes`: NumPy's
``.npz`` format, read without pickle), bound to the bank's rows by their digest
(:func:`rows_digest`): state of other rows is refused.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

__all__ = ["BankState", "TreeState", "rows_digest", "state_from_bytes", "state_to_bytes"]

_FORMAT = 1


@dataclass
class TreeState:
    """A bank's rows in the tree being grown (committed only once a level is answered)."""

    tree: int
    depth: int
    nodes: NDArray[np.int64]  # each row's node
    open_nodes: tuple[int, ...]
    leaves: frozenset[int] = frozenset()
    margins: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    sampled: NDArray[np.bool_] | None = None  # the tree's rows (None: every row)


@dataclass(frozen=True)
class BankState:
    """Everything a bank keeps between two levels of a run."""

    ensemble: tuple[int, int]  # announced (n_trees, max_depth)
    tree: TreeState
    gradients: NDArray[np.int64]
    hessians: NDArray[np.int64]
    rows: str  # rows_digest of the bank's codes and labels


def rows_digest(codes: NDArray[np.uint8], labels: NDArray[np.int64]) -> str:
    """SHA-256 of the bank's codes and labels (their shapes, dtypes and bytes)."""
    digest = hashlib.sha256()
    for array in (np.ascontiguousarray(codes), np.ascontiguousarray(labels)):
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def state_to_bytes(state: BankState) -> bytes:
    """``state`` as ``.npz`` bytes (a JSON header and the arrays)."""
    tree = state.tree
    header = {
        "format": _FORMAT,
        "ensemble": list(state.ensemble),
        "tree": tree.tree,
        "depth": tree.depth,
        "open_nodes": list(tree.open_nodes),
        "leaves": sorted(tree.leaves),
        "sampled": tree.sampled is not None,
        "rows": state.rows,
    }
    arrays = {
        "header": np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8),
        "nodes": tree.nodes,
        "margins": tree.margins,
        "sample": tree.sampled if tree.sampled is not None else np.zeros(0, dtype=np.bool_),
        "gradients": state.gradients,
        "hessians": state.hessians,
    }
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


def state_from_bytes(data: bytes) -> BankState:
    """The state :func:`state_to_bytes` wrote.

    Raises
    ------
    ValueError
        Not such bytes (the problem named).
    """
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as stored:
            header = json.loads(bytes(stored["header"]).decode("utf-8"))
            if header.get("format") != _FORMAT:
                raise ValueError(f"format {header.get('format')!r}, expected {_FORMAT}")
            tree = TreeState(
                tree=int(header["tree"]),
                depth=int(header["depth"]),
                nodes=stored["nodes"].astype(np.int64),
                open_nodes=tuple(int(node) for node in header["open_nodes"]),
                leaves=frozenset(int(node) for node in header["leaves"]),
                margins=stored["margins"].astype(np.float64),
                sampled=stored["sample"].astype(np.bool_) if header["sampled"] else None,
            )
            n_trees, max_depth = (int(value) for value in header["ensemble"])
            return BankState(
                ensemble=(n_trees, max_depth),
                tree=tree,
                gradients=stored["gradients"].astype(np.int64),
                hessians=stored["hessians"].astype(np.int64),
                rows=str(header["rows"]),
            )
    except (OSError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not a bank's boosting state ({exc})") from exc
