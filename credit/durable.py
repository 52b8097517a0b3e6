"""Files that survive a crash whole: written beside, fsynced, then renamed into place."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["write_durably"]


def write_durably(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a crash leaves the old file or the new one, whole.

    The bytes go to ``<path>.tmp`` first, are flushed and fsynced, and the temporary
    file is then renamed over ``path`` (atomic on POSIX file systems).
    """
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    temporary.replace(path)
