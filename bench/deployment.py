"""Seconds per round on Flower's Deployment Engine, plain and with secure aggregation.

A benchmark, not a test. It builds a real consortium on loopback with the
operator's and banks' own commands (``coordinator init/start/add-participant``,
``participant keygen/start``: SuperLink with TLS and node authentication, the nginx
edge, and per bank its guard service and a SuperNode whose ClientApp is a thin relay
forwarding each message to the guard over a Unix socket), then launches runs with
``coordinator launch``, alternating ``--no-secure-aggregation`` and
``--secure-aggregation`` so that both modes see the same machine load. Each run
trains the credit model on the banks' files (2,500 rows each from the embedded data,
differential privacy off unless ``--epsilon``). Seconds per round are read from the
run's ``metrics.json`` (the coordinator's wall time per round: train, which also
brings the previous round's evaluation, then consistency and unmask when secure; the
last round adds the evaluation of the final model: evaluate, and when secure its own
consistency and unmask); a run's figure is the median of
its rounds 2..R (round 1 includes the first ClientApp starts). The ratio is secure
over plain within each repeat, median over repeats.

Where a round's time goes, per mode and stage (train, consistency, unmask, evaluate;
medians of rounds 2..R over all repeats; evaluate is the final exchange only):

- exchange: push to return at the coordinator (``metrics.json`` ``rounds[].exchanges``);
- relay start: from the ``flwr-clientapp`` process's start to its connection to the
  bank's guard (``relay_age`` in each bank's ``services/guard.log``);
- guard compute: the guard's own time answering (``compute`` in the same line);
- Flower polling and transport: the remainder, exchange - relay start - guard compute.

Guard requests of kind ``train`` are the train stage, ``evaluate`` the evaluate stage,
and queries after a run's first train request of task ``secagg-consistency`` and
``secagg-unmask`` those stages (the guard logs each query's task; the queries before
the first train are set-up: feature statistics and, when secure, the first keys).

Targets: plain <= 10 s per round, secure <= 1.5x plain, relay start <= 1 s (median).

Writes ``OUT/deployment.json`` and ``OUT/deployment.md`` (``--out``, default
``bench/results``).

Usage::

    .venv/bin/python -m bench.deployment                 # 3 banks, 5 rounds, 2 repeats
    .venv/bin/python -m bench.deployment --rounds 2 --repeats 1 --out /tmp/bench-smoke
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
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
"""Secure aggregation's target: at most this many times plain FedAvg's seconds per round."""
PLAIN_TARGET_SECONDS = 10.0
"""Plain FedAvg's target: at most this many seconds per round."""
RELAY_START_TARGET_SECONDS = 1.0
"""The relay's target: its process connects to the guard within this (median)."""
STAGES = ("train", "consistency", "unmask", "evaluate")
_QUERY_STAGES = {"secagg-consistency": "consistency", "secagg-unmask": "unmask"}
_GUARD_LINE = re.compile(
    r"request kind=(?P<kind>\w+) task=(?P<task>[\w-]+) run=(?P<run>\d+) status=(?P<status>\w+) "
    r"relay_age=(?P<relay_age>[\d.?]+) compute=(?P<compute>[\d.]+)"
)


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
    names = [f"bank-{index + 1}" for index in range(banks)]
    for index, bank in enumerate(names):
        data = work / f"{bank}.csv"
        frame.iloc[index * ROWS_PER_BANK : (index + 1) * ROWS_PER_BANK].to_csv(data, index=False)
        keys = work / bank / "keys"
        fedcredit("participant", "keygen", str(keys))
        fedcredit(
            "coordinator", "add-participant", str(root), bank,
            "--public-key", str(keys / "node.pub"), "--audit-key", str(keys / "audit.pub"),
        )  # fmt: skip
    members = work / "members.json"  # the list of every bank, as the operator sends it
    fedcredit("coordinator", "members", str(root), "--out", str(members))
    budget = ["--max-epsilon", str(epsilon)] if epsilon else ["--no-dp"]
    for bank in names:
        # --allow-plain-updates: the bench also times plain FedAvg, which banks that
        # require secure aggregation (the default) refuse.
        fedcredit(
            "participant", "start", "--bundle", str(root / "participants" / bank / "bundle"),
            "--key", str(work / bank / "keys" / "node.key"), "--data", str(work / f"{bank}.csv"),
            "--home", str(work / bank / "node"), "--runtime-port", str(_free_port()), *budget,
            "--members", str(members), "--allow-plain-updates",
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


def _guard_log(work: Path, index: int) -> Path:
    return work / f"bank-{index + 1}" / "node" / "services" / "guard.log"


def _log_sizes(work: Path, banks: int) -> list[int]:
    """Each bank's guard log size now (a run's lines are those written after)."""
    sizes = []
    for index in range(banks):
        log = _guard_log(work, index)
        sizes.append(log.stat().st_size if log.exists() else 0)
    return sizes


def _guard_requests(text: str) -> dict[str, list[dict[str, float]]]:
    """One bank's requests of one run by stage, rounds 2..R (all rounds if only one).

    ``train`` requests are that stage, one per round, and the ``evaluate`` request the
    final evaluation; queries of task ``secagg-consistency`` and ``secagg-unmask`` are
    those stages (when secure: one each per round, and one each for the final
    evaluation, which the coordinator adds to the last round's); queries before the
    run's first train request are set-up. Each request: relay start and compute.
    """
    by_stage: dict[str, list[dict[str, float]]] = {stage: [] for stage in STAGES}
    trained = False
    for match in _GUARD_LINE.finditer(text):
        kind = match["kind"]
        trained = trained or kind == "train"
        stage = _QUERY_STAGES.get(match["task"]) if kind == "query" and trained else kind
        if stage not in by_stage or match["relay_age"] == "?":
            continue
        by_stage[stage].append(
            {"relay_start": float(match["relay_age"]), "compute": float(match["compute"])}
        )
    return {stage: requests[1:] or requests for stage, requests in by_stage.items()}


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def measure(
    root: Path, work: Path, banks: int, mode: str, rounds: int, repeat: int
) -> dict[str, Any]:
    """One launch; seconds per round and per exchange from its metrics.json, guard logs."""
    name = f"{mode}-{repeat}"
    out = work / "results" / name
    flag = "--secure-aggregation" if mode == "secure" else "--no-secure-aggregation"
    sizes = _log_sizes(work, banks)
    started = time.monotonic()
    fedcredit(
        "coordinator", "launch", str(root), "--rounds", str(rounds), "--run-name", name,
        "--out", str(out), flag,
    )  # fmt: skip
    wall = time.monotonic() - started
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    seconds = [float(r["seconds"]) for r in metrics["rounds"]]
    measured = metrics["rounds"][1:] or metrics["rounds"]
    exchanges = {
        stage: [round(float(r["exchanges"][stage]), 3) for r in measured if stage in r["exchanges"]]
        for stage in STAGES
    }
    guard: dict[str, list[dict[str, float]]] = {stage: [] for stage in STAGES}
    for index, size in enumerate(sizes):
        with _guard_log(work, index).open("rb") as log:
            log.seek(size)
            text = log.read().decode("utf-8", errors="replace")
        for stage, requests in _guard_requests(text).items():
            guard[stage].extend(requests)
    return {
        "mode": mode,
        "repeat": repeat,
        "round_seconds": [round(s, 2) for s in seconds],
        "seconds_per_round": round(statistics.median(seconds[1:] or seconds), 2),
        "exchange_seconds": {stage: values for stage, values in exchanges.items() if values},
        "relay_start_seconds": {
            stage: [r["relay_start"] for r in requests]
            for stage, requests in guard.items()
            if requests
        },
        "guard_compute_seconds": {
            stage: [r["compute"] for r in requests] for stage, requests in guard.items() if requests
        },
        "launch_wall_seconds": round(wall, 1),
        "final_auc": metrics["final"]["auc"],
        "load_average_after": round(os.getloadavg()[0], 2),  # 1-min mean: load during the run
    }


def breakdown(runs: list[dict[str, Any]], mode: str) -> dict[str, dict[str, Any]]:
    """Per stage of ``mode``'s runs: median exchange, relay start, guard compute, remainder.

    Medians over every measured round (2..R) of every repeat, and for the guard's
    figures over every bank too; the remainder is Flower polling and transport.
    """
    table: dict[str, dict[str, Any]] = {}
    for stage in STAGES:
        pooled = {
            key: [v for run in runs if run["mode"] == mode for v in run[key].get(stage, [])]
            for key in ("exchange_seconds", "relay_start_seconds", "guard_compute_seconds")
        }
        if not pooled["exchange_seconds"]:
            continue
        exchange = _median(pooled["exchange_seconds"])
        relay = _median(pooled["relay_start_seconds"])
        compute = _median(pooled["guard_compute_seconds"])
        remainder = None
        if exchange is not None and relay is not None and compute is not None:
            remainder = round(exchange - relay - compute, 3)
        table[stage] = {
            "exchange_seconds": exchange,
            "relay_start_seconds": relay,
            "guard_compute_seconds": compute,
            "flower_polling_and_transport_seconds": remainder,
            "exchanges": len(pooled["exchange_seconds"]),
            "guard_requests": len(pooled["relay_start_seconds"]),
        }
    return table


def import_seconds(*modules: str, repeats: int = 5) -> float:
    """Median wall time of a fresh Python process that imports ``modules`` and exits."""
    code = "; ".join(f"import {module}" for module in modules)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, env=_env())
        times.append(time.perf_counter() - started)
    return round(statistics.median(times), 3)


def relay_import_seconds(repeats: int = 5) -> float:
    """Median seconds the relay's own imports add to a process that has Flower's loaded
    (``python -X importtime``: the relay module's cumulative import time)."""
    times = []
    for _ in range(repeats):
        traced = subprocess.run(
            [sys.executable, "-X", "importtime", "-c",
             "import flwr.supernode.cli; import participant.relay.client_app"],
            capture_output=True, text=True, check=True, env=_env(),
        )  # fmt: skip
        line = next(
            text for text in traced.stderr.splitlines()
            if text.rstrip().endswith("| participant.relay.client_app")
        )  # fmt: skip
        times.append(int(line.split("|")[1]) / 1e6)
    return round(statistics.median(times), 3)


def clientapp_imports() -> dict[str, float]:
    """What a ClientApp process spends on imports: a fresh Python, Flower's
    ``flwr-clientapp`` (its module imports Flower's whole SuperNode), and the relay's own
    share on top of it."""
    return {
        "python_alone": import_seconds("sys"),
        "flower_clientapp": import_seconds("flwr.supernode.cli"),
        "relay_share": relay_import_seconds(),
    }


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def markdown(document: dict[str, Any]) -> str:
    """The results as two markdown tables: the headline, then where a round's time goes."""
    ratio = document["ratio_secure_over_plain"]
    relay = document["relay_start_seconds_median"]
    imports = document["clientapp_import_seconds"]
    lines = [
        "| banks | plain s/round | secure s/round | secure / plain | relay start (median) "
        "| targets |",
        "|---|---|---|---|---|---|",
        f"| {document['banks']} | {document['plain_seconds_per_round']:.1f} | "
        f"{document['secure_seconds_per_round']:.1f} | {ratio:.2f}x | {_seconds(relay)} s | "
        f"plain <= {PLAIN_TARGET_SECONDS:.0f} s, secure <= {TARGET}x plain, "
        f"relay start <= {RELAY_START_TARGET_SECONDS:.0f} s |",
        "",
        "Where a round's time goes (seconds, medians of rounds 2..R; relay start and "
        "guard compute from the banks' guard logs; the remainder is Flower polling and "
        "transport):",
        "",
        "| mode | exchange | exchange s | relay start s | guard compute s "
        "| Flower polling and transport s |",
        "|---|---|---|---|---|---|",
    ]
    for mode in ("plain", "secure"):
        for stage, row in document["breakdown"][mode].items():
            lines.append(
                f"| {mode} | {stage} | {_seconds(row['exchange_seconds'])} | "
                f"{_seconds(row['relay_start_seconds'])} | "
                f"{_seconds(row['guard_compute_seconds'])} | "
                f"{_seconds(row['flower_polling_and_transport_seconds'])} |"
            )
    lines += [
        "",
        "A ClientApp process's imports on a quiet machine (fresh process, median of 5): "
        f"Python alone {imports['python_alone']:.2f} s, Flower's `flwr-clientapp` "
        f"{imports['flower_clientapp']:.2f} s; the relay's own imports add "
        f"{imports['relay_share']:.3f} s.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--banks", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--epsilon", type=float, default=None)
    parser.add_argument(
        "--out", type=Path, default=RESULTS, help="folder of deployment.json and deployment.md"
    )
    args = parser.parse_args(argv)
    imports = clientapp_imports()  # before the consortium starts: a quiet machine
    print(f"ClientApp imports: {imports}", flush=True)
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="fedcredit-bench-") as folder:
        work = Path(folder)
        print(f"building a {args.banks}-bank consortium in {work} ...", flush=True)
        root = build_consortium(work, args.banks, args.epsilon)
        try:
            for repeat in range(1, args.repeats + 1):
                for mode in ("plain", "secure") if repeat % 2 else ("secure", "plain"):
                    run = measure(root, work, args.banks, mode, args.rounds, repeat)
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
    ratio = round(statistics.median(ratios), 3)
    relay = _median(
        [v for run in runs for values in run["relay_start_seconds"].values() for v in values]
    )
    document = {
        "benchmark": "deployment",
        "description": (
            "Seconds per round (median of rounds 2..R) of `fedcredit coordinator launch` on a "
            "real consortium on loopback: SuperLink with TLS and node authentication behind "
            "the nginx edge; per bank, started by `participant start`, its guard service "
            "(data, ledger, keys, every answer) and a SuperNode whose ClientApp is a thin "
            "relay (no torch) forwarding each message to the guard over a Unix socket; "
            "differential privacy off unless `--epsilon`; plain FedAvg and secure "
            "aggregation interleaved. Ratio = secure / plain per repeat, median over "
            "repeats. Breakdown per mode and stage (medians of rounds 2..R): exchange = "
            "push to return at the coordinator (metrics.json rounds[].exchanges); relay "
            "start = flwr-clientapp process start to its connection to the guard and guard "
            "compute = the guard's answering time (both from the banks' guard logs: train "
            "-> train, queries after the run's first train: secagg-consistency -> consistency, "
            "secagg-unmask -> unmask, evaluate -> evaluate); "
            "Flower polling and transport = exchange - relay start - guard compute."
        ),
        "target": f"secure <= {TARGET}x plain per round",
        "targets": {
            "plain_seconds_per_round": f"<= {PLAIN_TARGET_SECONDS:g}",
            "ratio_secure_over_plain": f"<= {TARGET:g}",
            "relay_start_seconds_median": f"<= {RELAY_START_TARGET_SECONDS:g}",
        },
        "targets_met": {
            "plain_seconds_per_round": plain <= PLAIN_TARGET_SECONDS,
            "ratio_secure_over_plain": ratio <= TARGET,
            "relay_start_seconds_median": relay is not None and relay <= RELAY_START_TARGET_SECONDS,
        },
        "banks": args.banks,
        "rounds": args.rounds,
        "repeats": args.repeats,
        "rows_per_bank": ROWS_PER_BANK,
        "epsilon": args.epsilon,
        "plain_seconds_per_round": plain,
        "secure_seconds_per_round": secure,
        "ratio_secure_over_plain": ratio,
        "ratios_per_repeat": [round(r, 3) for r in ratios],
        "relay_start_seconds_median": relay,
        "clientapp_import_seconds": imports,
        "breakdown": {mode: breakdown(runs, mode) for mode in ("plain", "secure")},
        "runs": runs,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "flwr": version("flwr"),
            "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    }
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    (out / "deployment.json").write_text(json.dumps(document, indent=2) + "\n")
    (out / "deployment.md").write_text(markdown(document))
    print(
        f"plain {plain:.1f} s/round, secure {secure:.1f} s/round, ratio {ratio:.2f}x, "
        f"relay start {_seconds(relay)} s -> {out / 'deployment.json'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
