"""Shared by the benchmarks: run ``fedcredit simulate`` as a subprocess, read its metrics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

QUIET_ENV = {
    "FLWR_TELEMETRY_ENABLED": "0",
    "FLWR_DISABLE_UPDATE_CHECK": "1",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO": "0",
}


def simulate(arguments: list[str], out: Path) -> tuple[dict[str, Any], float]:
    """Run ``fedcredit simulate ARGUMENTS --out OUT``; return metrics.json and wall seconds."""
    command = [str(Path(sys.executable).parent / "fedcredit"), "simulate", *arguments]
    started = time.monotonic()
    subprocess.run(
        [*command, "--out", str(out)],
        check=True,
        capture_output=True,
        env={**os.environ, **QUIET_ENV},
    )
    seconds = time.monotonic() - started
    return json.loads((out / "metrics.json").read_text()), seconds
