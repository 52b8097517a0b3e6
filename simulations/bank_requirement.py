"""What every simulated bank must hold for a run to use it fully.

Each bank splits its rows into training and held-out rows by its hold-out rule (an HMAC
of each record: :func:`participant.guard.bank.held_out_rows`, which depends on the record
alone, so it is computed once for the whole data set and read per bank). A bank needs

* at least the schema's ``min_rows`` rows (the loader refuses fewer), and
* both classes of the target among its training rows *and* among its held-out rows: a
  bank without defaulters to train on fits nothing about default, and a bank whose
  held-out rows hold one class cannot show how its customers rank.

With a cross-validation, every fold's split must meet the second rule, so that one
partition serves all folds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from simulations.partition_groups import Partition

__all__ = ["BankRequirement"]


@dataclass(frozen=True, eq=False)
class BankRequirement:
    """The rows every bank of a partition must hold.

    Parameters
    ----------
    labels : numpy.ndarray
        The target of every row of the source frame.
    target : str
        The target column's name (for messages).
    min_rows : int
        Rows every bank needs (the schema's ``min_rows``).
    held_out : sequence of numpy.ndarray of bool
        Per row, whether the run holds it out: one mask per split the run makes (one,
        or one per cross-validation fold). Empty: both classes anywhere in the bank.
    """

    labels: NDArray[np.generic]
    target: str
    min_rows: int
    held_out: Sequence[NDArray[np.bool_]] = ()

    def too_small(self, partitions: Sequence[Partition]) -> Partition | None:
        """The first bank with fewer than ``min_rows`` rows, if any."""
        return next((p for p in partitions if p.rows.size < self.min_rows), None)

    def class_problem(self, partitions: Sequence[Partition]) -> str | None:
        """Why a bank lacks a class in its training or held-out rows (None: none does)."""
        classes = np.unique(self.labels)
        for part in partitions:
            for rows, side in self._sides(part.rows):
                present = np.unique(self.labels[rows])
                absent = [value for value in classes if value not in present]
                if absent:
                    return (
                        f"bank '{part.name}' would have no rows with {self.target}="
                        f"{_text(absent[0])} among its {rows.size:,} {side}rows"
                    )
        return None

    def _sides(self, rows: NDArray[np.int64]) -> list[tuple[NDArray[np.int64], str]]:
        if not self.held_out:
            return [(rows, "")]  # "its 300 rows"
        sides = []
        for mask in self.held_out:
            out = mask[rows]
            sides += [(rows[~out], "training "), (rows[out], "held-out ")]
        return sides


def _text(value: object) -> str:
    return str(value.item() if isinstance(value, np.generic) else value)
