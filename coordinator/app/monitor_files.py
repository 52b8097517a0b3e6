"""A monitoring run's inputs and outputs: the development run read back, the report written.

Inputs (:func:`read_development`): the development run's folder, whose

* ``model/`` gives the model (its encoder's bins and its weights' SHA-256);
* ``metrics.json`` gives the run's configuration (its ``score-bins``), and the
  consortium's development counts the run released already
  (:func:`~credit.governance.stability_release.development_counts`): each
  characteristic's per-bin events + non-events of the summed set-up release over the
  banks' **training rows** (``woe_iv``: a run with ``feature-stats federated``), and the
  final model's summed score histograms over the banks' **held-out rows**
  (``score_histograms``). Nothing new is released about the development rows.

Outputs (:func:`write_monitor_outputs`) in ``OUT_MONITOR/``:

* ``stability.json``: the thresholds, the consortium's comparison (score PSI, every
  characteristic's CSI, each with its level, critical value, drift flag and per-bin
  table; under DP the critical value allows for the noise of both samples' counts:
  :mod:`credit.stability_noise`) and each bank's own comparison (its later file
  against all its development rows, computed at the bank), and the ledger summaries
  the banks reported;
* ``stability.png``: PSI and CSI per characteristic as bars, consortium and banks,
  with the 0.1 and 0.25 thresholds;
* ``ledgers/<bank>.json``: each bank's ledger summary (as a training run's).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coordinator.app.monitor_driver import MonitorOutcome
from coordinator.app.monitor_names import PLOT_FILE, STABILITY_FILE
from coordinator.app.run_files import LEDGER_DIR, METRICS_FILE, MODEL_DIR
from credit.errors import ConfigError
from credit.governance.stability import DEFAULT_QUANTILE, MONITOR_THRESHOLD, SHIFT_THRESHOLD
from credit.governance.stability_release import (
    SCORE,
    NoiseVariances,
    PopulationComparison,
    StabilityCounts,
    StabilityLayout,
    development_counts,
)
from credit.run_config import RunConfig
from credit.schema import load_schema
from credit.stability_noise import development_noise

__all__ = [
    "PLOT_FILE",
    "STABILITY_FILE",
    "Development",
    "read_development",
    "stability_document",
    "write_monitor_outputs",
]

DEVELOPMENT_SAMPLE = (
    "consortium: the development run's released counts (characteristics: the summed "
    "set-up release over the banks' training rows, metrics.json woe_iv; score: the final "
    "model's summed score histograms over the banks' held-out rows); each bank: all its "
    "development rows (training and held-out), at the bank"
)


@dataclass(frozen=True)
class Development:
    """The development run as a monitoring run needs it.

    Attributes
    ----------
    config : RunConfig
        The development run's configuration.
    layout : StabilityLayout
        Its model's characteristics' bins and its score bins.
    model_sha256 : str
        SHA-256 of its model's weights.
    counts : StabilityCounts or None
        The consortium's development counts (None: the run released none, e.g. an
        encoder from public bounds; then the consortium is not compared).
    missing : str or None
        Why ``counts`` is None.
    noise : NoiseVariances or None
        The DP noise variance of ``counts`` per bin (None: exact counts;
        :mod:`credit.stability_noise`).
    """

    config: RunConfig
    layout: StabilityLayout
    model_sha256: str
    counts: StabilityCounts | None
    missing: str | None = None
    noise: NoiseVariances | None = None


def read_development(run_dir: Path) -> Development:
    """Read a finished run's model, configuration and released development counts.

    Raises
    ------
    ConfigError
        No run there (no ``metrics.json`` or ``model/``), or a model without bins
        (the file or folder is named).
    """
    from credit.errors import FedcreditError
    from credit.model_card import load_model

    metrics_path = run_dir / METRICS_FILE
    try:
        document = json.loads(metrics_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            "no metrics.json: pass a finished run's folder", source=str(run_dir)
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"unreadable metrics.json ({exc})", source=str(metrics_path)) from exc
    if not isinstance(document, dict) or not isinstance(document.get("config"), dict):
        raise ConfigError("metrics.json has no run configuration", source=str(metrics_path))
    config = RunConfig.from_flower(document["config"])
    try:
        model = load_model(run_dir / MODEL_DIR)
        layout = StabilityLayout.of(model.encoder, config.score_bins)
    except (FedcreditError, ValueError) as exc:
        raise ConfigError(str(exc), source=str(run_dir / MODEL_DIR)) from exc
    counts, missing = _released_counts(document, layout)
    schema = load_schema(config.schema_file or None)
    return Development(
        config=config,
        layout=layout,
        model_sha256=str(model.card["weights"]["sha256"]),
        counts=counts,
        missing=missing,
        noise=development_noise(
            document.get("privacy") or {}, layout, model.encoder, schema, config.grid_bins
        ),
    )


def _released_counts(
    document: Mapping[str, Any], layout: StabilityLayout
) -> tuple[StabilityCounts | None, str | None]:
    woe_iv, histograms = document.get("woe_iv"), document.get("score_histograms")
    if not isinstance(woe_iv, Mapping):
        return None, "the run released no per-bin counts (woe_iv: feature-stats federated)"
    if not isinstance(histograms, Mapping):
        return None, "the run's final model was not scored (no score_histograms)"
    try:
        return development_counts(woe_iv, histograms, layout), None
    except (ValueError, KeyError, TypeError) as exc:
        return None, f"the run's released counts do not fit its model ({exc})"


def stability_document(
    *,
    run_dir: Path,
    later: Mapping[str, str],
    layout: StabilityLayout,
    model_sha256: str,
    consortium: PopulationComparison | None,
    consortium_missing: str | None,
    outcome: MonitorOutcome | None,
    banks: Mapping[str, PopulationComparison],
    quantile: float = DEFAULT_QUANTILE,
) -> dict[str, Any]:
    """``stability.json``: thresholds, the consortium's and each bank's comparison.

    ``layout`` and ``model_sha256`` are the development model's; ``consortium_missing``
    says why the consortium is not compared when ``consortium`` is None (e.g.
    :attr:`Development.missing`).
    """
    consortium_part: dict[str, Any] | None = None
    if consortium is not None and outcome is not None:
        consortium_part = {
            **consortium.document(layout),
            "banks": list(outcome.banks),
            "summed_banks": outcome.summed_banks,
            "secure_aggregation": outcome.secure,
            "refusals": [refusal.text() for refusal in outcome.refusals],
        }
    return {
        "run": str(run_dir),
        "later_files": dict(later),
        "model_sha256": model_sha256,
        "thresholds": {"monitor": MONITOR_THRESHOLD, "shift": SHIFT_THRESHOLD},
        "quantile": quantile,
        "development_sample": DEVELOPMENT_SAMPLE,
        "consortium": consortium_part,
        "consortium_missing": consortium_missing if consortium is None else None,
        "banks": {name: comparison.document(layout) for name, comparison in banks.items()},
        "privacy": {}
        if outcome is None
        else {bank: summary.document() for bank, summary in outcome.privacy.items()},
    }


def write_monitor_outputs(out_dir: Path, document: Mapping[str, Any]) -> Path:
    """Write ``stability.json``, the plot and the ledger summaries; return the JSON's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / STABILITY_FILE
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    privacy = document.get("privacy") or {}
    if privacy:
        folder = out_dir / LEDGER_DIR
        folder.mkdir(exist_ok=True)
        for bank, summary in privacy.items():
            (folder / f"{bank}.json").write_text(json.dumps(summary, indent=2) + "\n", "utf-8")
    _plot(document, out_dir / PLOT_FILE)
    return path


def _plot(document: Mapping[str, Any], path: Path) -> None:
    """PSI (score) and CSI (characteristics) as grouped bars, thresholds as lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    series = {}
    if document.get("consortium"):
        series["consortium"] = document["consortium"]
    series.update(document.get("banks") or {})
    if not series:
        return
    first = next(iter(series.values()))
    names = [SCORE, *first["characteristics"]]
    fig, ax = plt.subplots(figsize=(min(16.0, max(8.0, 0.6 * len(names) + 2.0)), 5.0))
    width = 0.8 / len(series)
    positions = np.arange(len(names))
    for k, (label, part) in enumerate(series.items()):
        values = [part["score"]["psi"], *(part["characteristics"][n]["psi"] for n in names[1:])]
        bars = ax.bar(positions + k * width, values, width, label=label)
        drifted = [part["score"]["drift"]] + [
            part["characteristics"][n]["drift"] for n in names[1:]
        ]
        for bar, drift in zip(bars, drifted, strict=True):
            if drift:  # the sample-size-aware flag: drift that noise does not explain
                ax.annotate("drift", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                            ha="center", va="bottom", fontsize=7, rotation=90)  # fmt: skip
    ax.axhline(MONITOR_THRESHOLD, color="orange", linestyle="--", label="monitor (0.1)")
    ax.axhline(SHIFT_THRESHOLD, color="red", linestyle="--", label="shift (0.25)")
    ax.set_xticks(positions + width * (len(series) - 1) / 2, names, rotation=60, ha="right")
    ax.set_ylabel("PSI (score) / CSI (characteristic)")
    ax.set_title("Stability of the later file against the development sample")
    ax.legend(fontsize="small", ncols=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
