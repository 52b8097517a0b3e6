"""What ``bench/governance.py`` measures on a finished run, and the data it generates.

Everything here reads a run's output folder (``metrics.json``, ``model/``, the banks'
files that ``simulation.json`` names) and computes the pooled reference it is compared
with; nothing starts a run. The references are independent of the code they check:
the WoE/IV oracle is the formula on the pooled rows' own counts, the fairness oracle
is Fairlearn on the saved model's predictions, and scorecard scores are read back from
``scorecard.csv`` (its integer points), not recomputed by ``credit.governance``.
"""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from sklearn.metrics import roc_auc_score

from credit.encoding import FeatureEncoder
from credit.schema import DatasetSchema, embedded_schema_path
from credit.woe_binning import layout_of
from participant.guard.bank import BankSource, prepare_bank
from participant.guard.settings import HoldOut

__all__ = [
    "MCAR_COLUMN",
    "MNAR_COLUMN",
    "Rows",
    "auc",
    "blank",
    "blanked_schema_document",
    "fairness_difference",
    "impute",
    "integer_scores",
    "pooled_woe",
    "run_rows",
    "woe_iv_difference",
]

MCAR_COLUMN = ("LIMIT_BAL", 0.20)
"""Column blanked completely at random, and the share of its rows blanked."""
MNAR_COLUMN = ("PAY_AMT1", 0.10)
"""Column blanked not at random (the larger the value, the likelier), and its share."""


@dataclass(frozen=True)
class Rows:
    """A run's banks' rows, pooled: training rows and held-out rows."""

    train: pd.DataFrame
    test: pd.DataFrame


def run_rows(out: Path, schema_path: Path | None, seed: int, test_fraction: float = 0.2) -> Rows:
    """Every bank's training and held-out rows of the run in ``out``, pooled in bank order.

    The banks' files are the ones ``OUT/simulation.json`` names, read with the schema at
    ``schema_path`` (the embedded one when None); each bank splits its rows as a
    simulated bank does (:func:`participant.guard.bank.prepare_bank` with the run's
    seed, test fraction and validation fraction), and its training rows are the ones
    it trained on: neither held out nor in its validation part.
    """
    simulation = json.loads((out / "simulation.json").read_text(encoding="utf-8"))
    config = json.loads((out / "metrics.json").read_text(encoding="utf-8"))["config"]
    holdout = HoldOut.for_simulation(
        fraction=test_fraction,
        seed=seed,
        validation_fraction=float(config.get("validation-fraction", 0.0)),
    )
    banks = [
        prepare_bank(BankSource(bank["name"], Path(bank["file"]), schema_path), holdout)
        for bank in simulation["banks"]
    ]
    return Rows(
        pd.concat([bank.train for bank in banks], ignore_index=True),
        pd.concat([bank.test for bank in banks], ignore_index=True),
    )


def auc(labels: NDArray[Any], risk: NDArray[Any]) -> float:
    """Exact ROC AUC of ``risk`` (higher: likelier to default)."""
    return float(roc_auc_score(labels, risk))


def pooled_woe(indices: NDArray[np.int64], labels: NDArray[Any], n_bins: int) -> dict[str, Any]:
    """WoE/IV of pooled rows computed directly: counts per bin, then optbinning's formula.

    ``WoE_i = ln((N_i / N) / (E_i / E))``, ``IV_i = (N_i / N - E_i / E) * WoE_i``; a bin
    without events or without non-events has WoE 0 and IV 0 (optbinning 1.0.0).
    """
    events = np.bincount(indices[labels == 1], minlength=n_bins).astype(np.float64)
    non_events = np.bincount(indices[labels == 0], minlength=n_bins).astype(np.float64)
    both = (events > 0) & (non_events > 0)
    event_share = events / events.sum()
    non_event_share = non_events / non_events.sum()
    woe = np.zeros(n_bins)
    woe[both] = np.log(non_event_share[both] / event_share[both])
    iv = np.where(both, (non_event_share - event_share) * woe, 0.0)
    return {"events": events, "non_events": non_events, "woe": woe, "iv": iv}


def woe_iv_difference(
    document: Mapping[str, Any], encoder: FeatureEncoder, train: pd.DataFrame, target: str
) -> float:
    """Largest absolute difference between a run's ``woe_iv`` and the pooled training rows'.

    Compared per feature and bin: events, non-events, WoE, IV term, and each
    feature's IV. The run's bins must be the encoder's (same features, same labels).

    Raises
    ------
    ValueError
        The run's tables do not have the encoder's features or bins.
    """
    labels = train[target].to_numpy()
    indices = encoder.bin_indices(train)
    encodings = (*encoder.numeric, *encoder.categorical)
    if list(document) != [e.name for e in encodings]:
        raise ValueError(f"woe_iv features {list(document)} are not the encoder's")
    largest = 0.0
    for encoding in encodings:
        bins = document[encoding.name]["bins"]
        layout = layout_of(encoding)
        if [row["bin"] for row in bins] != list(layout.labels):
            raise ValueError(f"woe_iv '{encoding.name}': bins are not the encoder's")
        pooled = pooled_woe(indices[encoding.name], labels, layout.n_bins)
        for key, reported in (("events", "events"), ("non_events", "non_events")):
            got = np.array([row[reported] for row in bins], dtype=np.float64)
            largest = max(largest, float(np.max(np.abs(got - pooled[key]))))
        for key in ("woe", "iv"):
            got = np.array([row[key] for row in bins], dtype=np.float64)
            largest = max(largest, float(np.max(np.abs(got - pooled[key]))))
        total = float(document[encoding.name]["iv"])
        largest = max(largest, abs(total - float(pooled["iv"].sum())))
    return largest


def integer_scores(scorecard_csv: Path, encoder: FeatureEncoder, frame: pd.DataFrame) -> Any:
    """Each row's integer score: the sum of its bins' points as ``scorecard.csv`` lists them.

    Raises
    ------
    ValueError
        The file's bins of a feature are not the encoder's bins, in order.
    """
    card = pd.read_csv(scorecard_csv, keep_default_na=False, dtype={"bin": str})
    indices = encoder.bin_indices(frame)
    total = np.zeros(len(frame), dtype=np.int64)
    for name in encoder.features:
        rows = card[card["feature"] == name]
        if list(rows["bin"]) != [str(label) for label in encoder.bin_labels(name)]:
            raise ValueError(f"{scorecard_csv}: the bins of '{name}' are not the encoder's")
        total += rows["points"].to_numpy(dtype=np.int64)[indices[name]]
    return total


def fairness_difference(
    document: Mapping[str, Any],
    schema: DatasetSchema,
    test: pd.DataFrame,
    predicted: NDArray[np.float64],
    cutoff: float,
) -> float:
    """Largest absolute difference between a run's ``fairness`` and Fairlearn's metrics.

    Fairlearn's ``MetricFrame`` on the pooled held-out rows, decisions ``predicted >=
    cutoff``: per group the count, 1 - selection rate (the approval rate), TPR and FPR;
    per column the demographic-parity difference, equal-opportunity difference (over
    groups with defaulters), equalised-odds difference and adverse impact ratio. A rate
    the run reports as null (no rows under it) must be one Fairlearn reports as 0; any
    other mismatch of structure is infinitely different.
    """
    import fairlearn.metrics as fm

    from credit.governance.release import schema_groupings

    truth = test[schema.target].to_numpy(dtype=np.int64)
    declined = (predicted >= cutoff).astype(np.int64)
    largest = 0.0
    for grouping in schema_groupings(schema):
        report = document[grouping.column]
        labels = np.asarray(grouping.labels)[grouping.indices(test[grouping.column])]
        frame = fm.MetricFrame(
            metrics={
                "selection_rate": fm.selection_rate,
                "tpr": fm.true_positive_rate,
                "fpr": fm.false_positive_rate,
                "count": fm.count,
            },
            y_true=truth,
            y_pred=declined,
            sensitive_features=labels,
        ).by_group
        if sorted(report["groups"]) != sorted(frame.index):
            return math.inf
        for group, entry in report["groups"].items():
            reference = frame.loc[group]
            pairs = [
                (entry["n"], reference["count"]),
                (1.0 - entry["approval_rate"], reference["selection_rate"]),
                (entry["tpr"], reference["tpr"]),
                (entry["fpr"], reference["fpr"]),
            ]
            for got, want in pairs:
                if got is None:  # no rows under the rate: Fairlearn says 0
                    if want != 0.0:
                        return math.inf
                    continue
                largest = max(largest, abs(float(got) - float(want)))
        largest = max(largest, _column_difference(report, truth, declined, labels))
    return largest


def _column_difference(
    report: Mapping[str, Any],
    truth: NDArray[np.int64],
    declined: NDArray[np.int64],
    labels: NDArray[np.str_],
) -> float:
    """The column's disparity measures against Fairlearn's."""
    import fairlearn.metrics as fm

    with_defaulters = np.isin(labels, np.unique(labels[truth == 1]))
    parity = fm.demographic_parity_difference(truth, declined, sensitive_features=labels)
    opportunity = fm.equal_opportunity_difference(
        truth[with_defaulters],
        declined[with_defaulters],
        sensitive_features=labels[with_defaulters],
    )
    false_alarms = fm.MetricFrame(
        metrics=fm.false_positive_rate, y_true=truth, y_pred=declined, sensitive_features=labels
    ).difference()
    ratio = fm.demographic_parity_ratio(truth, 1 - declined, sensitive_features=labels)
    pairs = [
        (report["demographic_parity_difference"], parity),
        (report["equal_opportunity_difference"], opportunity),
        (report["equalized_odds_difference"], max(opportunity, false_alarms)),
        (report["adverse_impact_ratio"], ratio),
    ]
    return max(abs(float(got) - float(want)) for got, want in pairs)


def blank(frame: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, NDArray[np.bool_]]:
    """``frame`` with :data:`MCAR_COLUMN` and :data:`MNAR_COLUMN` partly blanked.

    The first column's cells are blanked with the same chance each (completely at
    random); the second's with a chance that grows linearly with the value's rank,
    from 0 for the smallest to twice the share for the largest (ties share their
    average rank), so that the larger values are the likelier to be missing (not at
    random) and the expected share is the column's. Test-data generation:
    ``np.random.default_rng(seed)``.

    Returns
    -------
    tuple of pandas.DataFrame and numpy.ndarray of bool
        The blanked copy, and which rows lost a value (in either column).
    """
    rng = np.random.default_rng(seed)
    (mcar, mcar_share), (mnar, mnar_share) = MCAR_COLUMN, MNAR_COLUMN
    blanked = frame.astype({mcar: float, mnar: float})
    at_random = rng.random(len(frame)) < mcar_share
    rank = frame[mnar].rank(method="average").to_numpy() - 1.0
    chance = 2.0 * mnar_share * rank / max(len(frame) - 1, 1)
    not_at_random = rng.random(len(frame)) < chance
    blanked.loc[at_random, mcar] = np.nan
    blanked.loc[not_at_random, mnar] = np.nan
    return blanked, at_random | not_at_random


def blanked_schema_document() -> dict[str, Any]:
    """The embedded schema with ``missing = "allow"`` on the two blanked columns."""
    document = tomllib.loads(embedded_schema_path().read_text(encoding="utf-8"))
    document["name"] = "uci-default-blanked"
    blanked = {MCAR_COLUMN[0], MNAR_COLUMN[0]}
    for entry in document["numeric"]:
        if entry["name"] in blanked:
            entry["missing"] = "allow"
    return document


def impute(frame: pd.DataFrame, medians: Mapping[str, float]) -> pd.DataFrame:
    """``frame`` with each blank of the named columns replaced by the column's median."""
    return frame.fillna({name: float(value) for name, value in medians.items()})
