"""Governance quality of fedcredit: WoE/IV, scorecard, fairness, missing values (benchmark).

Issue 14's quality targets, on the embedded data split into banks by EDUCATION, every
run a ``fedcredit simulate`` subprocess under secure aggregation and without DP:

* **WoE/IV**: each run's ``metrics.json`` ``woe_iv`` (from the banks' summed set-up
  release) against the same tables computed directly on the banks' pooled training
  rows for the same bins: max absolute difference <= 1e-9 (quantile bins of a binned
  run, merged bins of a WoE run);
* **scorecard**: the test AUC of the integer scorecard (sum of ``scorecard.csv``'s
  points) of a ``--encoding woe`` run within 0.003 of the binned logistic
  regression's (same split, same seed, same held-out customers), at the CLI's default
  training settings and at settings where both have converged; plus a centralised
  decomposition of the gap on the same rows (converged scikit-learn fits on the same
  bins: one-hot quantile bins, one-hot merged bins, WoE of merged bins);
* **fairness**: ``metrics.json`` ``fairness`` against Fairlearn on the saved model's
  predictions for the pooled held-out rows: max absolute difference <= 1e-9;
* **missing values**: the embedded data with 20 % of LIMIT_BAL blanked at random and
  10 % of PAY_AMT1 blanked not at random (larger amounts likelier), its schema with
  ``missing = "allow"`` on both: the binned run's test AUC (missing bins) within 0.005
  of the complete data's, and above a run on the same blanked data with the incomplete
  rows dropped; all scored on the same held-out customers (the dropped run's model
  scores a blank with the median of its training rows, the usual fallback).

Targets over several seeds are judged on the mean (every seed's value is kept).
Writes ``bench/results/governance.json`` and ``governance.md`` (README table).

Usage::

    .venv/bin/python bench/governance.py                  # seeds 0 1 2 (12-31 min)
    .venv/bin/python bench/governance.py --seeds 0 --rounds 1 --converged-rounds 1 \\
        --converged-epochs 1 --out /tmp/governance.json     # a quick check
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import tomli_w
from _governance_central import central_decomposition
from _governance_checks import (
    MCAR_COLUMN,
    MNAR_COLUMN,
    Rows,
    auc,
    blank,
    blanked_schema_document,
    fairness_difference,
    impute,
    integer_scores,
    run_rows,
    woe_iv_difference,
)
from _governance_report import markdown, targets
from _simulate import simulate

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
SPLIT = ["--partition", "column", "--partition-column", "EDUCATION"]
CUTOFF = 0.3
"""The binned runs' decision cut-off for the fairness report (0.5 declines few)."""


@dataclass(frozen=True)
class Settings:
    """Training settings of the runs."""

    rounds: int
    converged_rounds: int
    converged_epochs: int
    jobs: int

    def training(self, name: str) -> list[str]:
        if name == "default":
            return ["--rounds", str(self.rounds)]
        epochs = ["--local-epochs", str(self.converged_epochs)]
        return ["--rounds", str(self.converged_rounds), *epochs]

    def document(self) -> dict[str, Any]:
        from credit.run_config import RunConfig

        defaults = RunConfig()
        common = {
            "learning_rate": defaults.learning_rate,
            "batch_size": defaults.batch_size,
            "validation_fraction": defaults.validation_fraction,
        }
        return {
            "split": "column EDUCATION (one bank per level group)",
            "secure_aggregation": True,
            "dp": False,
            "decision_cutoff": CUTOFF,
            "default": {"rounds": self.rounds, "local_steps": defaults.local_steps, **common},
            "converged": {
                "rounds": self.converged_rounds,
                "local_epochs": self.converged_epochs,
                **common,
            },
            "blanked": {
                "completely_at_random": {"column": "LIMIT_BAL", "share": 0.2},
                "not_at_random": {
                    "column": "PAY_AMT1",
                    "share": 0.1,
                    "chance": "2 * share * rank / (n - 1)",
                },
            },
        }


def _run(arguments: list[str], out: Path) -> Path:
    # Each bank's own CSV: the pooled checks read the banks' rows from their files.
    simulate([*SPLIT, "--write-bank-files", *arguments], out)
    return out


def _runs(seed: int, settings: Settings, work: Path) -> dict[str, Path]:
    """Every run of one seed: binned and woe at both settings, blanked and dropped."""
    data = _write_data(seed, work)
    common = ["--seed", str(seed), "--decision-cutoff", str(CUTOFF)]
    plan: dict[str, list[str]] = {}
    for name in ("default", "converged"):
        for encoding in ("binned", "woe"):
            plan[f"{encoding}-{name}"] = [
                "--encoding",
                encoding,
                *settings.training(name),
                *common,
            ]
    defaults = [*settings.training("default"), *common]
    plan["blanked"] = ["--data", str(data["blanked"]), "--schema", str(data["schema"]), *defaults]
    plan["dropped"] = ["--data", str(data["dropped"]), *defaults]
    with ThreadPoolExecutor(max_workers=settings.jobs) as pool:
        futures = {
            name: pool.submit(_run, arguments, work / f"{name}-{seed}")
            for name, arguments in plan.items()
        }
        return {name: future.result() for name, future in futures.items()}


def _write_data(seed: int, work: Path) -> dict[str, Path]:
    """The blanked data set, its schema, and the blanked rows without the incomplete ones."""
    from credit.datasets import embedded_data_path
    from credit.loading import load_bank_csv
    from credit.schema import load_schema

    frame = load_bank_csv(embedded_data_path(), load_schema()).frame
    blanked, incomplete = blank(frame, seed)
    paths = {
        "blanked": work / f"blanked-{seed}.csv",
        "dropped": work / f"dropped-{seed}.csv",
        "schema": work / "blanked.toml",
    }
    blanked.to_csv(paths["blanked"], index=False)  # a blank is an empty cell
    blanked[~incomplete].to_csv(paths["dropped"], index=False)
    paths["schema"].write_text(tomli_w.dumps(blanked_schema_document()), encoding="utf-8")
    return paths


def _metrics(out: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    return document


def measure_seed(seed: int, settings: Settings, work: Path) -> dict[str, Any]:
    """Run one seed's consortia and measure every target on them."""
    from credit.model_card import load_model
    from credit.schema import load_schema

    runs = _runs(seed, settings, work)
    schema = load_schema()
    rows = run_rows(runs["binned-default"], None, seed)
    target = schema.target
    labels = rows.test[target].to_numpy()
    result: dict[str, Any] = {"seed": seed, "test_rows": len(rows.test)}
    woe_iv, scorecard = {}, {}
    for name in ("default", "converged"):
        binned = load_model(runs[f"binned-{name}"] / "model")
        woe = load_model(runs[f"woe-{name}"] / "model")
        for encoding, model in (("binned", binned), ("woe", woe)):
            out = runs[f"{encoding}-{name}"]
            _same_customers(rows, run_rows(out, None, seed), schema.id_column)
            woe_iv[f"{encoding}-{name}"] = woe_iv_difference(
                _metrics(out)["woe_iv"], model.encoder, rows.train, target
            )
        binned_auc = auc(labels, binned.predict_proba(rows.test))
        card_file = runs[f"woe-{name}"] / "model" / "scorecard.csv"
        card = integer_scores(card_file, woe.encoder, rows.test)
        scorecard[name] = {
            "binned_auc": binned_auc,
            "woe_model_auc": auc(labels, woe.predict_proba(rows.test)),
            "scorecard_auc": auc(labels, -card),
            "gap": binned_auc - auc(labels, -card),
            "released_binned_auc": _metrics(runs[f"binned-{name}"])["final"]["auc"],
            "released_woe_auc": _metrics(runs[f"woe-{name}"])["final"]["auc"],
        }
    result["woe_iv_max_abs_diff"] = woe_iv
    result["scorecard"] = scorecard
    binned = load_model(runs["binned-default"] / "model")
    predicted = binned.predict_proba(rows.test)
    result["fairness_max_abs_diff"] = fairness_difference(
        _metrics(runs["binned-default"])["fairness"], schema, rows.test, predicted, CUTOFF
    )
    woe_run = runs["woe-default"]
    result["central"] = central_decomposition(
        rows,
        binned.encoder,
        load_model(woe_run / "model").encoder,
        _metrics(woe_run)["woe_iv"],
        target,
    )
    result["missing_values"] = _missing_values(runs, seed, rows)
    return result


def _same_customers(expected: Rows, got: Rows, id_column: str | None) -> None:
    if id_column is None or not expected.test[id_column].equals(got.test[id_column]):
        raise RuntimeError("two runs of one seed held out different customers")


def _missing_values(runs: dict[str, Path], seed: int, complete: Rows) -> dict[str, Any]:
    """Test AUC of the complete, blanked and dropped runs on the same held-out customers."""
    from credit.model_card import load_model
    from credit.schema import load_schema

    blanked_schema_path = runs["blanked"].parent / "blanked.toml"
    blanked_schema = load_schema(blanked_schema_path)
    blanked = run_rows(runs["blanked"], blanked_schema_path, seed)
    dropped = run_rows(runs["dropped"], None, seed)
    id_column = blanked_schema.id_column
    if not blanked.test[id_column].equals(complete.test[id_column]):
        raise RuntimeError("the blanked run held out other customers than the complete run")
    labels = blanked.test[blanked_schema.target].to_numpy()
    columns = [MCAR_COLUMN[0], MNAR_COLUMN[0]]
    medians = {name: float(dropped.train[name].median()) for name in columns}
    incomplete = blanked.test[columns].isna().any(axis=1).to_numpy()
    scores = {
        "complete": load_model(runs["binned-default"] / "model").predict_proba(complete.test),
        "blanked": load_model(runs["blanked"] / "model").predict_proba(blanked.test),
        "dropped": load_model(runs["dropped"] / "model").predict_proba(
            impute(blanked.test, medians)
        ),
    }
    return {
        "test_rows": len(labels),
        "incomplete_test_rows": int(incomplete.sum()),
        "train_rows": {"blanked": len(blanked.train), "dropped": len(dropped.train)},
        "imputed_medians": medians,
        "auc": {name: auc(labels, value) for name, value in scores.items()},
        "auc_complete_customers": {
            name: auc(labels[~incomplete], value[~incomplete]) for name, value in scores.items()
        },
    }


def _commit() -> str | None:
    completed = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    )
    return completed.stdout.strip() or None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rounds", type=int, default=10, help="default training: rounds")
    parser.add_argument("--converged-rounds", type=int, default=30)
    parser.add_argument("--converged-epochs", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time")
    parser.add_argument("--out", type=Path, default=RESULTS / "governance.json")
    args = parser.parse_args()
    settings = Settings(args.rounds, args.converged_rounds, args.converged_epochs, args.jobs)
    per_seed = []
    with tempfile.TemporaryDirectory() as work:
        for seed in args.seeds:
            measured = measure_seed(seed, settings, Path(work))
            print(json.dumps({"seed": seed, "scorecard": measured["scorecard"]}), flush=True)
            per_seed.append(measured)
    document = {
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "commit": _commit(),
        },
        "seeds": args.seeds,
        "settings": settings.document(),
        "targets": targets(per_seed),
        "per_seed": per_seed,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    table = markdown(document)
    args.out.with_suffix(".md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
