"""Answer a repeated training round with the result already paid for.

When the coordinator dies after it sent round r but before it checkpointed the
round, the bank has trained round r and charged it to its privacy ledger, and the
resumed run asks for round r again from the same global model. Training again would
release a second, differently noised result: a second charge, which a tight budget
refuses. Instead the bank keeps the (already noised) result of its latest round of
each run and, asked for the same run, round and global model again, sends that same
result: releasing an output twice reveals nothing more than releasing it once, so
nothing is charged. A request for the same round from a different model is charged
and trained as usual.

The kept result is the bank's DP-SGD output (model weights after local training),
stored beside its ledger (``<ledger>.replay/``) and never anything derived from
rows without noise. With secure aggregation the result is masked afresh with the
resumed run's keys, which is post-processing.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from credit.durable import write_durably

__all__ = ["ReplayStore"]

Arrays = dict[str, NDArray[np.generic]]


@dataclass(frozen=True)
class ReplayStore:
    """The latest trained result of each run, kept next to the bank's ledger."""

    folder: Path

    @classmethod
    def beside(cls, ledger_path: Path) -> ReplayStore:
        """The store that belongs to the ledger at ``ledger_path``."""
        return cls(ledger_path.with_name(ledger_path.name + ".replay"))

    def _path(self, run: str) -> Path:
        return self.folder / f"{hashlib.sha256(run.encode()).hexdigest()[:32]}.npz"

    def load(self, run: str, server_round: int, model_sha256: str) -> Arrays | None:
        """The kept result for (run, round, global model), or None."""
        try:
            with np.load(self._path(run), allow_pickle=False) as stored:
                if (
                    str(stored["__run__"]) != run
                    or int(stored["__round__"]) != server_round
                    or str(stored["__model__"]) != model_sha256
                ):
                    return None
                return {
                    name[len("w:") :]: stored[name] for name in stored.files if name[:2] == "w:"
                }
        except (OSError, KeyError, ValueError):
            return None

    def save(self, run: str, server_round: int, model_sha256: str, arrays: Arrays) -> None:
        """Keep this round's result for ``run`` (replacing the run's previous round)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        os.chmod(self.folder, 0o700)
        buffer = io.BytesIO()
        entries: dict[str, NDArray[np.generic]] = {
            "__run__": np.array(run),
            "__round__": np.array(server_round),
            "__model__": np.array(model_sha256),
            **{f"w:{name}": value for name, value in arrays.items()},
        }
        np.savez(buffer, *(), **entries)  # type: ignore[arg-type]
        write_durably(self._path(run), buffer.getvalue())
