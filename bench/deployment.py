"""Seconds per round on Flower's Deployment Engine, plain and with secure aggregation.

A benchmark, not a test. It builds a real consortium on loopback with the
operator's and banks' own commands (``coordinator init/start/add-participant``,
``participant keygen/start``: SuperLink with TLS and node authentication, the nginx
edge, one SuperNode per bank), then launches runs with ``coordinator launch``,
alternating ``--no-secure-aggregation`` and ``--secure-aggregation`` so that both
modes see the same machine load. Each run trains the credit model on the banks'
files (2,500 rows each from the embedded data, differential privacy off unless
``--epsilon``). Seconds per round are read from the run's ``metrics.json`` (the
coordinator's wall time per round: train, unmask when secure, evaluate); a run's
figure is the median of its rounds 2..R (round 1 includes the first ClientApp
starts). The ratio is secure over plain within each repeat, median over repeats.

Writes ``bench/results/deployment.json`` and ``bench/results/deployment.md``.

Usage::

    .venv/bin/python -m bench.deployment                 # 3 banks, 5 rounds, 2 repeats
    .venv/bin/python -m bench.deployment --rounds 3 --repeats 1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pandas as pd

from deploy.flower_env import flower_env

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
FEDCREDIT = Path(sys.executable).with_name("fedcredit")
ROWS_PER_BANK = 2_500
TARGET = 1.5


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _env() -> dict[str, str]:
    return {**flower_env(), "COLUMNS": "200"}


def fedcredit(*args: str) -> str:
    """Run a fedcredit command; raise with its output if it fails."""
    result = subprocess.run(
        [str(FEDCREDIT), *args], capture_output=True, text=True, env=_env(), check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"fedcredit {' '.join(args)}:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def build_consortium(work: Path, banks: int, epsilon: float | None) -> Path:
    """Init and start a consortium, onboard ``banks`` banks and start their SuperNodes."""
    root = work / "consortium"
    fedcredit(
        "coordinator", "init", str(root), "--name", "bench", "--host", "127.0.0.1",
        "--edge-host", "127.0.0.1", "--superlink-port", str(_free_port()),
        "--edge-port", str(_free_port()), "--min-banks", str(banks),
    )  # fmt: skip
    fedcredit("coordinator", "start", str(root))
    frame = pd.read_csv(ROOT / "credit" / "data" / "uci_default_credit_card.csv.gz")
    for index in range(banks):
        bank = f"bank-{index + 1}"
        data = work / f"{bank}.csv"
        frame.iloc[index * ROWS_PER_BANK : (index + 1) * ROWS_PER_BANK].to_csv(data, index=False)
        keys = work / bank / "keys"
        fedcredit("participant", "keygen", str(keys))
        fedcredit(
            "coordinator", "add-participant", str(root), bank,
            "--public-key", str(keys / "node.pub"),
        )  # fmt: skip
        budget = ["--max-epsilon", str(epsilon)] if epsilon else ["--no-dp"]
        fedcredit(
            "participant", "start", "--bundle", str(root / "participants" / bank / "bundle"),
            "--key", str(keys / "node.key"), "--data", str(data),
            "--home", str(work / bank / "node"), "--runtime-port", str(_free_port()), *budget,
        )  # fmt: skip
    return root


def teardown(work: Path, root: Path, banks: int) -> None:
    for index in range(banks):
        subprocess.run(
            [str(FEDCREDIT), "participant", "stop", "--home", str(work / f"bank-{index + 1}/node")],
            capture_output=True,
            env=_env(),
            check=False,
        )
    subprocess.run(
        [str(FEDCREDIT), "coordinator", "shutdown", str(root)],
        capture_output=True,
        env=_env(),
        check=False,
    )


def measure(root: Path, work: Path, mode: str, rounds: int, repeat: int) -> dict[str, Any]:
    """One launch; seconds per round from its metrics.json."""
    name = f"{mode}-{repeat}"
    out = work / "results" / name
    flag = "--secure-aggregation" if mode == "secure" else "--no-secure-aggregation"
    started = time.monotonic()
    fedcredit(
        "coordinator", "launch", str(root), "--rounds", str(rounds), "--run-name", name,
        "--out", str(out), flag,
    )  # fmt: skip
    wall = time.monotonic() - started
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    seconds = [float(r["seconds"]) for r in metrics["rounds"]]
    return {
        "mode": mode,
        "repeat": repeat,
        "round_seconds": [round(s, 2) for s in seconds],
        "seconds_per_round": round(statistics.median(seconds[1:] or seconds), 2),
        "launch_wall_seconds": round(wall, 1),
        "final_auc": metrics["final"]["auc"],
        "load_average_after": round(os.getloadavg()[0], 2),  # 1-min mean: load during the run
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--banks", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--epsilon", type=float, default=None)
    args = parser.parse_args(argv)
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="fedcredit-bench-") as folder:
        work = Path(folder)
        print(f"building a {args.banks}-bank consortium in {work} ...", flush=True)
        root = build_consortium(work, args.banks, args.epsilon)
        try:
            for repeat in range(1, args.repeats + 1):
                for mode in ("plain", "secure") if repeat % 2 else ("secure", "plain"):
                    run = measure(root, work, mode, args.rounds, repeat)
                    runs.append(run)
                    print(json.dumps(run), flush=True)
        finally:
            teardown(work, root, args.banks)
    ratios = []
    for repeat in range(1, args.repeats + 1):
        by_mode = {r["mode"]: r for r in runs if r["repeat"] == repeat}
        ratios.append(
            by_mode["secure"]["seconds_per_round"] / by_mode["plain"]["seconds_per_round"]
        )
    plain = statistics.median(r["seconds_per_round"] for r in runs if r["mode"] == "plain")
    secure = statistics.median(r["seconds_per_round"] for r in runs if r["mode"] == "secure")
    document = {
        "benchmark": "deployment",
        "description": (
            "Seconds per round (median of rounds 2..R) of `fedcredit coordinator launch` on a "
            "real consortium on loopback: SuperLink with TLS and node authentication behind "
            "the nginx edge, one SuperNode per bank started by `participant start`; plain "
            "FedAvg and secure aggregation interleaved. Ratio = secure / plain per repeat, "
            "median over repeats."
        ),
        "target": f"secure <= {TARGET}x plain per round",
        "banks": args.banks,
        "rounds": args.rounds,
        "repeats": args.repeats,
        "rows_per_bank": ROWS_PER_BANK,
        "epsilon": args.epsilon,
        "plain_seconds_per_round": plain,
        "secure_seconds_per_round": secure,
        "ratio_secure_over_plain": round(statistics.median(ratios), 3),
        "ratios_per_repeat": [round(r, 3) for r in ratios],
        "runs": runs,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "flwr": version("flwr"),
            "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "deployment.json").write_text(json.dumps(document, indent=2) + "\n")
    (RESULTS / "deployment.md").write_text(
        "| banks | plain s/round | secure s/round | secure / plain | target |\n"
        "|---|---|---|---|---|\n"
        f"| {args.banks} | {plain:.1f} | {secure:.1f} | "
        f"{document['ratio_secure_over_plain']:.2f}x | <= {TARGET}x |\n"
    )
    print(
        f"plain {plain:.1f} s/round, secure {secure:.1f} s/round, ratio "
        f"{document['ratio_secure_over_plain']:.2f}x -> bench/results/deployment.json"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
