"""Shared by the benchmarks: run ``fedcredit simulate`` as a subprocess, read its metrics."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from deploy.flower_env import flower_env


def simulate(arguments: list[str], out: Path) -> tuple[dict[str, Any], float]:
    """Run ``fedcredit simulate ARGUMENTS --out OUT``; return metrics.json and wall seconds."""
    command = [str(Path(sys.executable).parent / "fedcredit"), "simulate", *arguments]
    started = time.monotonic()
    subprocess.run(
        [*command, "--out", str(out)],
        check=True,
        capture_output=True,
        env=flower_env(simulation=True),
    )
    seconds = time.monotonic() - started
    return json.loads((out / "metrics.json").read_text()), seconds
