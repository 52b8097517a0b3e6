"""Cost of secure aggregation: fedcredit's protocol and Flower's SecAgg+ (benchmark, not a test).

For every size (banks x parameters) and repeat, runs four measurements one after
the other, each in its own process (Ray per process), with trivial local compute so
that only the protocol's cost shows:

* ``python -m bench.secagg_fedcredit --mode plain|secure`` (fedcredit's message flow)
* ``python -m bench.secagg_flower --mode plain|secaggplus`` (Flower's legacy
  ``DefaultWorkflow`` with and without ``SecAggPlusWorkflow``)

Each prints one JSON line (``round_seconds``, ``seconds_per_round`` = median of rounds
2..R, ``bytes_up_per_participant``, ``peak_rss_mb``, and for fedcredit's secure mode
``signature_ms_per_bank_per_round``; see those modules). The ratio of
a system is its secure ``seconds_per_round`` over its plain one in the same repeat;
a size's ratio is the median over repeats. Without ``bench/secagg_fedcredit.py``
only Flower is measured. Writes ``bench/results/secagg.json`` (after every run, so
an interrupted benchmark keeps what it measured; ``--resume`` continues it) and
``bench/results/secagg.md`` (Markdown table).

Usage::

    .venv/bin/python -m bench.secagg                              # 4 sizes, 6 rounds, 3 repeats
    .venv/bin/python -m bench.secagg --sizes 5x10000 --rounds 4 --repeats 1
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

from deploy.flower_env import flower_env

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DEFAULT_SIZES = "5x10000,10x10000,10x1000000,20x100000"
RUNNERS = {"fedcredit": "bench.secagg_fedcredit", "flower": "bench.secagg_flower"}
MODES = {"fedcredit": ("plain", "secure"), "flower": ("plain", "secaggplus")}
TARGETS = (
    "Reference, not a pass mark: Flower's SecAgg+ (complete graph, threshold N//2+1) "
    "against Flower's own plain FedAvg, next to fedcredit's secure aggregation against "
    "fedcredit's plain flow, at the same sizes, interleaved in one run on one machine. "
    "A ratio is secure seconds per round over plain seconds per round (lower is "
    "cheaper); 'fedcredit_vs_flower' is fedcredit's ratio over Flower's. The plain "
    "baselines differ: fedcredit's plain round is one train round trip (which also scores "
    "the previous round's model; one evaluate follows the last round), Flower's is fit "
    "only (one). Each round trip waits for replies by polling: Flower's "
    "Grid.send_and_receive every 0.1 s in simulation, fedcredit's coordinator (and its "
    "runner here) from 0.05 s backing off to 0.5 s; absolute seconds per round are "
    "reported too."
)
Size = tuple[int, int]
Run = dict[str, object]


def parse_sizes(text: str) -> list[Size]:
    """``"5x10000,10x1000000"`` -> ``[(5, 10000), (10, 1000000)]``."""
    sizes = []
    for item in text.split(","):
        banks, _, params = item.strip().partition("x")
        if not (banks.isdigit() and params.isdigit()):
            raise SystemExit(f"--sizes: expected BANKSxPARAMS items like 5x10000; got {item!r}")
        sizes.append((int(banks), int(params)))
    return sizes


def available_systems() -> list[str]:
    """Systems whose runner module exists (fedcredit's may not be written yet)."""
    systems = []
    for system, module in RUNNERS.items():
        if importlib.util.find_spec(module) is None:
            print(f"{module} not found: {system} is not measured", file=sys.stderr)
        else:
            systems.append(system)
    return systems


def run_one(system: str, mode: str, size: Size, rounds: int, repeat: int) -> Run:
    """One measurement in its own process; its JSON line plus the repeat and wall time."""
    banks, params = size
    command = [sys.executable, "-m", RUNNERS[system], "--mode", mode]
    command += ["--banks", str(banks), "--params", str(params), "--rounds", str(rounds)]
    load = os.getloadavg()[0]
    started = time.monotonic()
    completed = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, env=flower_env(simulation=True)
    )
    if completed.returncode != 0:
        tail = "\n".join(completed.stderr.splitlines()[-20:])
        raise SystemExit(
            f"{' '.join(command[1:])} failed (exit {completed.returncode}); the runs so far "
            f"are saved, fix and rerun with --resume. Its last stderr lines:\n{tail}"
        )
    run: Run = json.loads(completed.stdout.strip().splitlines()[-1])
    run["repeat"] = repeat
    run["wall_seconds"] = round(time.monotonic() - started, 1)
    run["load_average_before"] = round(load, 2)  # others' work on a shared machine shows here
    return run


def _find(runs: list[Run], system: str, mode: str, size: Size) -> list[Run]:
    key = (system, mode, *size)
    return [r for r in runs if (r["system"], r["mode"], r["banks"], r["params"]) == key]


def _median(runs: list[Run], field: str) -> float:
    return statistics.median(float(str(r[field])) for r in runs)


def _signing(runs: list[Run]) -> dict[str, object]:
    """Median signing cost per bank and round over repeats, and the calls it makes."""
    calls = runs[0]["signatures_per_bank_per_round"]
    return {
        "signature_ms_per_bank_per_round": _median(runs, "signature_ms_per_bank_per_round"),
        "signatures_per_bank_per_round": calls,
    }


def summarise_system(runs: list[Run], system: str, size: Size) -> dict[str, object] | None:
    """Per-mode medians over repeats and the secure/plain ratio of each repeat."""
    plain_mode, secure_mode = MODES[system]
    plain, secure = _find(runs, system, plain_mode, size), _find(runs, system, secure_mode, size)
    if not plain or not secure:
        return None
    summary: dict[str, object] = {}
    for mode, group in ((plain_mode, plain), (secure_mode, secure)):
        summary[mode] = {
            "seconds_per_round": _median(group, "seconds_per_round"),
            "bytes_up_per_participant": int(_median(group, "bytes_up_per_participant")),
            "peak_rss_mb": _median(group, "peak_rss_mb"),
            "repeats": len(group),
        }
        if all("signature_ms_per_bank_per_round" in r for r in group):  # fedcredit secure
            summary[mode].update(_signing(group))
    plain_by_repeat = {r["repeat"]: float(str(r["seconds_per_round"])) for r in plain}
    ratios = [
        float(str(r["seconds_per_round"])) / plain_by_repeat[r["repeat"]]
        for r in secure
        if r["repeat"] in plain_by_repeat
    ]
    summary["ratios"] = ratios
    summary["ratio"] = statistics.median(ratios) if ratios else None
    return summary


def _ratio(summary: dict[str, object] | None) -> float | None:
    ratio = summary["ratio"] if summary else None
    return ratio if isinstance(ratio, float) else None


def summarise(runs: list[Run], sizes: list[Size]) -> list[dict[str, object]]:
    """One row per size: each system's summary and fedcredit's ratio over Flower's."""
    rows = []
    for size in sizes:
        row: dict[str, object] = {"banks": size[0], "params": size[1]}
        summaries = {system: summarise_system(runs, system, size) for system in RUNNERS}
        row.update(summaries)
        fedcredit, flower = _ratio(summaries["fedcredit"]), _ratio(summaries["flower"])
        row["fedcredit_vs_flower"] = fedcredit / flower if fedcredit and flower else None
        rows.append(row)
    return rows


def _bytes(count: object) -> str:
    value = float(str(count))
    for unit in ("B", "KiB", "MiB"):
        if value < 1024 or unit == "MiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _cells(summary: object, system: str) -> tuple[str, str, str]:
    """Ratio (with seconds), bytes up and peak memory cells of one system."""
    if not isinstance(summary, dict):
        return "—", "—", "—"
    plain, secure = (summary[mode] for mode in MODES[system])
    ratio = (
        f"{summary['ratio']:.2f}x ({plain['seconds_per_round']:.2f} → "
        f"{secure['seconds_per_round']:.2f} s)"
    )
    sent = (
        f"{_bytes(plain['bytes_up_per_participant'])} → "
        f"{_bytes(secure['bytes_up_per_participant'])}"
    )
    memory = f"{plain['peak_rss_mb']:.0f} → {secure['peak_rss_mb']:.0f}"
    return ratio, sent, memory


def _signing_cell(summary: object) -> str:
    """fedcredit's signing time per bank and round, with its calls."""
    secure = summary.get("secure") if isinstance(summary, dict) else None
    if not isinstance(secure, dict) or "signature_ms_per_bank_per_round" not in secure:
        return "—"
    calls = secure["signatures_per_bank_per_round"]
    return (
        f"{secure['signature_ms_per_bank_per_round']:.1f} ({calls['sign']:.1f} signs, "
        f"{calls['verify']:.1f} verifications)"
    )


def markdown(rows: list[dict[str, object]], rounds: int, repeats: int) -> str:
    """The table: ratios, bytes up per participant and peak memory, plain → secure."""
    lines = [
        "| banks x params | fedcredit secure/plain | Flower SecAgg+/plain | fedcredit vs Flower "
        "| bytes up/participant/round, fedcredit | bytes up/participant/round, Flower "
        "| peak MiB, fedcredit | peak MiB, Flower | fedcredit signing ms/bank/round |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        fc_ratio, fc_bytes, fc_memory = _cells(row["fedcredit"], "fedcredit")
        fl_ratio, fl_bytes, fl_memory = _cells(row["flower"], "flower")
        versus = row["fedcredit_vs_flower"]
        versus_cell = f"{versus:.2f}" if isinstance(versus, float) else "—"
        lines.append(
            f"| {row['banks']} x {row['params']:,} | {fc_ratio} | {fl_ratio} | {versus_cell} "
            f"| {fc_bytes} | {fl_bytes} | {fc_memory} | {fl_memory} "
            f"| {_signing_cell(row['fedcredit'])} |"
        )
    lines += [
        "",
        f"Secure over plain wall time per round (median of rounds 2..{rounds}, median over "
        f"{repeats} interleaved repeat(s) of the per-repeat ratio); in brackets plain → secure "
        "seconds per round, each a median over repeats, so their quotient can differ from "
        "the ratio. fedcredit vs Flower is the ratio of the two ratios. "
        "Bytes: serialized reply messages a participant sends per round (all protocol "
        "stages). Peak: summed RSS of the process tree (driver and Ray workers). "
        "fedcredit's plain round is train (scoring the previous model), Flower's is fit only. "
        "Signing: wall time a bank spends in Ed25519 signing and verification per round "
        "(set-up included), median over repeats, part of the secure seconds per round.",
    ]
    return "\n".join(lines) + "\n"


def machine() -> dict[str, object]:
    """Where the figures were measured."""
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        **{name: version(name) for name in ("flwr", "torch", "numpy", "ray")},
    }


def write_results(
    runs: list[Run], args: argparse.Namespace, systems: list[str], *, complete: bool
) -> str:
    """Write the JSON (after every run) and the Markdown table; return the table."""
    sizes = parse_sizes(args.sizes)
    rows = summarise(runs, sizes)
    document = {
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "complete": complete,
        "targets": TARGETS,
        "machine": machine(),
        "rounds": args.rounds,
        "repeats": args.repeats,
        "sizes": [list(size) for size in sizes],
        "systems": systems,
        "summary": rows,
        "runs": runs,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=2) + "\n")
    table = markdown(rows, args.rounds, args.repeats)
    out.with_suffix(".md").write_text(table)
    return table


def _previous_runs(args: argparse.Namespace) -> list[Run]:
    path = Path(args.out)
    if not path.exists():
        return []
    previous = json.loads(path.read_text())
    if previous["rounds"] != args.rounds:
        raise SystemExit(f"{path} was measured with other rounds; run without --resume")
    runs: list[Run] = previous["runs"]
    return runs


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--sizes", default=DEFAULT_SIZES, help="BANKSxPARAMS,... ")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(RESULTS / "secagg.json"))
    parser.add_argument(
        "--resume", action="store_true", help="keep the runs already in --out (same rounds)"
    )
    args = parser.parse_args(argv)
    systems = available_systems()
    runs = _previous_runs(args) if args.resume else []
    done = {(r["system"], r["mode"], r["banks"], r["params"], r["repeat"]) for r in runs}
    plan = [
        (repeat, size, system, mode)
        for repeat in range(args.repeats)
        for size in parse_sizes(args.sizes)
        for system in systems
        for mode in MODES[system]
        if (system, mode, *size, repeat) not in done
    ]
    for number, (repeat, size, system, mode) in enumerate(plan, start=1):
        run = run_one(system, mode, size, args.rounds, repeat)
        print(
            f"[{number}/{len(plan)}] {system:<9} {mode:<10} {size[0]:>2} banks "
            f"{size[1]:>9,} params, repeat {repeat}: "
            f"{float(str(run['seconds_per_round'])):.3f} s/round, "
            f"{run['bytes_up_per_participant']:,} B up, {run['peak_rss_mb']} MiB peak "
            f"({run['wall_seconds']} s)",
            file=sys.stderr,
            flush=True,
        )
        runs.append(run)
        write_results(runs, args, systems, complete=False)
    print(write_results(runs, args, systems, complete=True))


if __name__ == "__main__":
    main()
