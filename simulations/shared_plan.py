"""The simulated banks' settings in one file every worker reads once.

Flower's Ray backend sends the ClientApp with every message it hands a worker (Ray
pickles a task's arguments at each call). A ClientApp that carried the settings of
every bank would cost O(N) bytes to pickle and unpickle per message, O(N²) per round:
at 1,000 banks a few hundred kilobytes per message. The ClientApp carries a
:class:`SharedPartitionPlan` instead: the path and SHA-256 digest of a file written
once by the driver, which each worker process reads (and checks against the digest)
at its first message and keeps.

Notes
-----
The file is a pickle of the banks' :class:`~participant.guard.settings.GuardSettings`
(their hold-out salts do not survive JSON, which masks them). It is read only when its
SHA-256 digest equals the one the driver computed when writing it, so a file swapped
in the output folder during the run is refused, never unpickled.
"""

from __future__ import annotations

import functools
import hashlib
import pickle
from dataclasses import dataclass
from pathlib import Path

from flwr.app import Context

from credit.errors import ConfigError
from participant.guard.settings import GuardSettings

__all__ = ["SHARED_PLAN_FILE", "SharedPartitionPlan"]

SHARED_PLAN_FILE = "simulation-banks.pickle"
"""Where a simulation keeps its banks' settings for the workers (in its output folder)."""


@dataclass(frozen=True)
class SharedPartitionPlan:
    """The banks of a simulation, read from one file, indexed by Flower's ``partition-id``.

    Attributes
    ----------
    path : pathlib.Path
        The file :meth:`write` wrote.
    sha256 : str
        Its SHA-256 digest, hex: a file with another digest is refused.
    count : int
        The number of banks in it.
    """

    path: Path
    sha256: str
    count: int

    @classmethod
    def write(cls, banks: tuple[GuardSettings, ...], out_dir: Path) -> SharedPartitionPlan:
        """Write ``banks`` to ``OUT/simulation-banks.pickle``; the plan that reads them."""
        payload = pickle.dumps(banks, protocol=pickle.HIGHEST_PROTOCOL)
        path = (out_dir / SHARED_PLAN_FILE).absolute()
        path.write_bytes(payload)
        return cls(path=path, sha256=hashlib.sha256(payload).hexdigest(), count=len(banks))

    def __call__(self, context: Context) -> GuardSettings:
        partition_id = context.node_config.get("partition-id")
        if not isinstance(partition_id, int) or not 0 <= partition_id < self.count:
            raise ConfigError(
                f"partition-id {partition_id!r} outside the plan's {self.count} banks",
                source="node config",
            )
        return _banks(self.path, self.sha256)[partition_id]


@functools.lru_cache(maxsize=4)
def _banks(path: Path, sha256: str) -> tuple[GuardSettings, ...]:
    """The banks in ``path`` (read once per process), refused unless its digest is ``sha256``."""
    payload = path.read_bytes()
    found = hashlib.sha256(payload).hexdigest()
    if found != sha256:
        raise ConfigError(
            f"the simulation's bank settings changed during the run (SHA-256 {found}, "
            f"written as {sha256}): run the simulation again",
            source=str(path),
        )
    banks: tuple[GuardSettings, ...] = pickle.loads(payload)  # digest checked above
    return banks
