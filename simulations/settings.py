"""How a simulation splits its data set into banks, or takes them from files.

Light (no pandas), for the CLI. These are the research harness's own settings. They
are not part of the coordinator's run configuration: a bank never sees them, and the
simulation hands each simulated bank its own file through its ClientApp wiring
(:class:`simulations.engine.PartitionPlan`).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["SIMULATION_FILE", "BankFiles", "PartitionScheme", "PartitionSettings"]

SIMULATION_FILE = "simulation.json"
"""Where a simulation records how it was set up (in its output folder)."""


class PartitionScheme(StrEnum):
    """How a simulation splits one data set into banks (see ``simulations.partition``)."""

    IID = "iid"
    DIRICHLET = "dirichlet"
    COLUMN = "column"
    NATURAL_ID = "natural-id"
    PATHOLOGICAL = "pathological"
    SIZE = "size"


class PartitionSettings(BaseModel):
    """The data set of a simulation and how it is split.

    Parameters
    ----------
    data : str, default ''
        The CSV file (plain or gzip) to split; '' = the embedded UCI data set.
    partition : PartitionScheme, default ``iid``
        ``iid``, ``dirichlet`` (label skew), ``column`` (one bank per value, rare values
        merged), ``natural-id`` (one bank per value), ``pathological`` (each bank holds
        ``classes_per_bank`` values of ``partition_column``) or ``size`` (bank sizes
        skewed by ``size_skew``).
    alpha : float, default 0.5
        Dirichlet concentration, > 0 (smaller = more skewed).
    partition_column : str, default ``EDUCATION``
        The column of ``column``, ``natural-id`` and ``pathological``.
    classes_per_bank : int, default 2
        ``pathological``: how many values of ``partition_column`` (rare ones merged as
        in ``column``) each bank holds, >= 1.
    size_skew : float, default 1.0
        ``size``: bank i of N holds rows in proportion to i ** size_skew, in [0, 10] (0: equal
        sizes, 1: linear, 2: square).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    data: str = ""
    partition: PartitionScheme = PartitionScheme.IID
    alpha: float = Field(default=0.5, gt=0)
    partition_column: str = Field(default="EDUCATION", min_length=1)
    classes_per_bank: int = Field(default=2, ge=1)
    size_skew: float = Field(default=1.0, ge=0, le=10, allow_inf_nan=False)


class BankFiles(BaseModel):
    """The banks of a simulation given as files: one bank per file, nothing split.

    ``fedcredit simulate --bank-data FILE`` (repeated): each file is one bank, named
    after the file without its suffixes (``bank-a.csv.gz`` is ``bank-a``) and read in
    place; the i-th file is partition id i.

    Parameters
    ----------
    partition : 'files'
        Says in ``simulation.json`` that the banks came from files.
    files : tuple of str
        The banks' files as given, in partition-id order (at least one).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    partition: Literal["files"] = "files"
    files: tuple[str, ...] = Field(min_length=1)
