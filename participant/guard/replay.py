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
resumed run's keys, which is post-processing, but only for the same members: the
store keeps, with the result, the member names of U1 (the banks whose masking keys
the round was masked with). A resumed round with another U1 is refused
(:class:`ReplayRefused`): otherwise a coordinator could rerun round r without one
bank and subtract the two sums.
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

__all__ = ["ReplayRefused", "ReplayStore"]

Arrays = dict[str, NDArray[np.generic]]
_PLAIN = "-"  # the members of a round sent in the clear (no secure aggregation)


class ReplayRefused(ValueError):
    """A repeated round whose secure-aggregation members differ from the kept result's."""

    def __init__(
        self, run: str, server_round: int, kept: frozenset[str] | None, asked: frozenset[str] | None
    ) -> None:
        self.server_round = server_round
        super().__init__(
            f"run '{run}', round {server_round}: the bank already sent this round's result "
            f"masked with members {_describe(kept)}; the repeated round's members are "
            f"{_describe(asked)}: refused, as a sum over other members would expose the "
            "difference"
        )


def _describe(members: frozenset[str] | None) -> str:
    return "none (in the clear)" if members is None else str(sorted(members))


def _encode_members(members: frozenset[str] | None) -> str:
    return _PLAIN if members is None else ",".join(sorted(members))


def _decode_members(text: str) -> frozenset[str] | None:
    return None if text == _PLAIN else frozenset(text.split(",")) - {""}


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

    def load(
        self,
        run: str,
        server_round: int,
        model_sha256: str,
        members: frozenset[str] | None = None,
    ) -> Arrays | None:
        """The kept result for (run, round, global model), or None.

        Parameters
        ----------
        members : frozenset of str, optional
            The member names of the repeated round's U1 (None: in the clear).

        Raises
        ------
        ReplayRefused
            A result is kept for (run, round, model) but was sent with other members.
        """
        try:
            with np.load(self._path(run), allow_pickle=False) as stored:
                if (
                    str(stored["__run__"]) != run
                    or int(stored["__round__"]) != server_round
                    or str(stored["__model__"]) != model_sha256
                ):
                    return None
                kept = _decode_members(str(stored["__members__"]))
                arrays = {
                    name[len("w:") :]: stored[name] for name in stored.files if name[:2] == "w:"
                }
        except (OSError, KeyError, ValueError):
            return None
        if kept != members:
            raise ReplayRefused(run, server_round, kept, members)
        return arrays

    def save(
        self,
        run: str,
        server_round: int,
        model_sha256: str,
        arrays: Arrays,
        members: frozenset[str] | None = None,
    ) -> None:
        """Keep this round's result for ``run`` and the members it was sent to (replacing the
        run's previous round)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        os.chmod(self.folder, 0o700)
        buffer = io.BytesIO()
        entries: dict[str, NDArray[np.generic]] = {
            "__run__": np.array(run),
            "__round__": np.array(server_round),
            "__model__": np.array(model_sha256),
            "__members__": np.array(_encode_members(members)),
            **{f"w:{name}": value for name, value in arrays.items()},
        }
        np.savez(buffer, *(), **entries)  # type: ignore[arg-type]
        write_durably(self._path(run), buffer.getvalue())
