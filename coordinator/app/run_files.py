"""Write a finished run to disk: metrics.json, the model with its card, a plot, ledgers
and the model report (``report.html``, :mod:`coordinator.app.report`).

Each bank with a privacy budget reports its ledger summary with its replies; the
coordinator keeps the latest one per bank as ``ledgers/<bank>.json`` (the bank's own
ledger file, with every event, stays at the bank).

The model folder is a signed package (:mod:`credit.package`: weights, card, schema,
scorecard, ``scoring.json``, ``privacy.json``, a manifest of their digests signed with
the coordinator's audit key), written afresh beside ``model/`` and moved in place.

With federated feature statistics ``metrics.json`` holds every model input's WoE/IV
table (``woe_iv``); a logistic regression on WoE inputs also writes its scorecard,
``model/scorecard.csv``, with its scaling in ``metrics.json`` (``scorecard``).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from coordinator.app.run_state import RunState
    from credit.governance.scorecard import Scorecard

# torch (the model), matplotlib (the plot), the report and the governance tables are
# imported where the files are written: the operator's commands read these names
# without paying for them.

__all__ = [
    "LEDGER_DIR",
    "METRICS_FILE",
    "MODEL_DIR",
    "PLOT_FILE",
    "REPORT_FILE",
    "RunFiles",
    "metrics_document",
    "replace_folder",
    "run_files",
    "run_scorecard",
    "write_run_outputs",
]

METRICS_FILE = "metrics.json"
MODEL_DIR = "model"
PLOT_FILE = "rounds.png"
REPORT_FILE = "report.html"
LEDGER_DIR = "ledgers"
_FINAL_KEYS = (
    "auc",
    "ks",
    "gini",
    "brier",
    "log_loss",
    "accuracy",
    "f1",
    "f1_threshold",
    "n_rows",
    "default_rate",
)


@dataclass(frozen=True)
class RunFiles:
    """Paths of a run's outputs."""

    metrics: Path
    model: Path
    plot: Path
    report: Path


def run_files(out_dir: Path) -> RunFiles:
    """Where a run in ``out_dir`` keeps its outputs."""
    return RunFiles(
        metrics=out_dir / METRICS_FILE,
        model=out_dir / MODEL_DIR,
        plot=out_dir / PLOT_FILE,
        report=out_dir / REPORT_FILE,
    )


def metrics_document(state: RunState, wall_seconds: float) -> dict[str, Any]:
    """The ``metrics.json`` document of a run.

    ``score_histograms`` holds the summed score histograms ``final`` was computed
    from (:meth:`~coordinator.app.run_state.ScoreHistograms.document`; null when no
    round's model was scored). ``rounds_scored_on`` names the rows the rounds' metrics
    come from (``validation`` parts, or ``test``: the held-out rows); with validation
    parts ``best_round`` is the round kept (null: none was validated, the last model
    is kept), ``selection`` says more (:meth:`SelectedModel.document
    <coordinator.app.run_state.SelectedModel.document>`) and ``final`` is that model's
    evaluation on the held-out rows. ``stopped_early`` says why early stopping ended
    the run (null: it did not). ``final_missing`` says why the kept model has no final
    evaluation (its evaluate exchange failed; null: it has one): ``final`` is then
    empty, ``score_histograms`` null and the calibration and fairness reports absent,
    although the run wrote its model.
    """
    scored = state.final_metrics()
    histograms = state.final_scores
    final = scored.as_dict() if scored is not None else {}
    # calibration, fairness and governance (how many banks' sums) of the last model
    governance = state.governance or {}
    document = {
        "config": state.config.to_flower(),
        "schema": {"name": state.schema.name, "sha256": state.schema.schema_hash()},
        "rounds": [
            {
                "round": r.server_round,
                "auc": r.metrics.auc if r.metrics is not None else None,
                "ks": r.metrics.ks if r.metrics is not None else None,
                "loss": r.metrics.log_loss if r.metrics is not None else None,
                "train_loss": r.train_loss,
                "banks": list(r.banks),
                "refused": list(r.refused),
                "dropped": list(r.dropped),
                "aborted": r.aborted,
                "max_epsilon_spent": r.max_epsilon_spent,
                "seconds": r.seconds,
                "exchanges": dict(r.exchanges),
            }
            for r in state.rounds
        ],
        "final": {key: final[key] for key in _FINAL_KEYS if key in final},
        "final_missing": state.final_missing,
        "score_histograms": histograms.document() if histograms is not None else None,
        "participants": {bank.name: {"n_train": bank.n_train} for bank in state.banks},
        "privacy": state.privacy_document(),
        "refusals": state.refusals_document(),
        "secure_aggregation": state.secure_aggregation,
        "status": "completed" if state.stopped is None else f"stopped: {state.stopped}",
        **_selection_document(state),
        "wall_seconds": wall_seconds,
        **governance,
    }
    if state.woe:
        from credit.woe_binning import woe_iv_document

        document["woe_iv"] = woe_iv_document(state.woe)
    if state.config.builds_scorecard:
        from credit.model_card import SCORECARD_FILE

        scaling = state.config.scaling
        document["scorecard"] = {
            "pdo": scaling.pdo,
            "base_score": scaling.base_score,
            "base_odds": scaling.base_odds,
            "file": f"{MODEL_DIR}/{SCORECARD_FILE}",
        }
    return document


def _selection_document(state: RunState) -> dict[str, Any]:
    """``rounds_scored_on``, ``best_round``, ``selection`` and ``stopped_early``."""
    selected = state.selected
    best_round = None
    if selected is not None and selected.validation_auc is not None:
        best_round = selected.server_round
    return {
        "rounds_scored_on": "validation" if state.config.selects_best_round else "test",
        "best_round": best_round,
        "selection": None if selected is None else selected.document(),
        "stopped_early": state.stopped_early,
    }


def write_run_outputs(out_dir: Path, state: RunState, wall_seconds: float) -> RunFiles:
    """Write metrics, model package, plot, ledgers and report into ``out_dir`` (created if needed).

    The report is written last: it reads the other files back.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    document = metrics_document(state, wall_seconds)
    files = run_files(out_dir)
    files.metrics.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    replace_folder(files.model, lambda folder: _write_package(folder, state, document))
    _plot_rounds(document["rounds"], files.plot, document["rounds_scored_on"])
    _write_ledgers(out_dir / LEDGER_DIR, state.privacy_document())
    from coordinator.app.report.writer import write_report

    write_report(metrics=files.metrics, model=files.model, report=files.report)
    return files


def _write_package(folder: Path, state: RunState, document: dict[str, Any]) -> None:
    """The signed model package (:mod:`credit.package`) of the run's kept model in ``folder``.

    Signed with the coordinator's audit key (the key that signs the run's audit log);
    ``scoring.json`` takes the run's scaling for a scorecard run (else the default
    scaling), its decision cut-off and score bins, and the development counts the run
    released (``woe_iv`` and ``score_histograms`` of ``metrics.json``) with their DP
    noise variance (from its ``privacy`` section).
    """
    from coordinator.app.audit_trail import coordinator_key_path
    from credit.audit import load_or_create_signing_key
    from credit.governance.scorecard import ScoreScaling, write_scorecard_csv
    from credit.model_card import SCORECARD_FILE, save_model
    from credit.models import build_model
    from credit.package import scoring_settings, write_package
    from credit.schema import embedded_schema_path

    module = build_model(state.spec)
    module.load_state_dict(state.kept_arrays().to_torch_state_dict())
    save_model(
        folder,
        module,
        spec=state.spec,
        encoder=state.encoder,
        schema_name=state.schema.name,
        training=document["config"],
        metrics=document["final"],
        selection=document["selection"],
    )
    config = state.config
    scorecard = run_scorecard(state) if config.builds_scorecard else None
    if scorecard is not None:  # before the report, which reads it
        write_scorecard_csv(scorecard, folder / SCORECARD_FILE)
    scoring = scoring_settings(
        state.encoder,
        state.schema,
        scaling=config.scaling if scorecard is not None else ScoreScaling(),
        cutoff=config.decision_cutoff,
        scorecard=scorecard,
        woe_iv=document.get("woe_iv"),
        score_histograms=document["score_histograms"],
        score_bins=config.score_bins,
        privacy=document["privacy"],
        grid_bins=config.grid_bins,
    )
    schema_file = Path(config.schema_file) if config.schema_file else embedded_schema_path()
    write_package(
        folder,
        schema_bytes=schema_file.read_bytes(),
        scoring=scoring,
        privacy=document["privacy"],
        run=config.run_name or Path(config.out_dir).name,
        signing_key=load_or_create_signing_key(coordinator_key_path(config)),
    )


def replace_folder(target: Path, write: Callable[[Path], None]) -> None:
    """Write a folder beside ``target``, then put it in ``target``'s place.

    A package lists every file of its folder: a folder written afresh holds nothing
    of an earlier write (a resumed run's, an interrupted one's).
    """
    fresh = target.with_name(f".{target.name}-writing")
    stale = target.with_name(f".{target.name}-replaced")
    for leftover in (fresh, stale):
        if leftover.exists():
            shutil.rmtree(leftover)
    fresh.mkdir()
    write(fresh)
    if target.exists():
        target.rename(stale)
    fresh.rename(target)
    if stale.exists():
        shutil.rmtree(stale)


def run_scorecard(state: RunState) -> Scorecard:
    """The scorecard of the run's final logistic regression on its WoE inputs."""
    from credit.woe_binning import scorecard_of

    kept = state.kept_arrays()
    weights = kept["0.weight"].numpy()
    bias = float(kept["0.bias"].numpy().reshape(-1)[0])
    return scorecard_of(
        state.encoder, state.woe, weights=weights, bias=bias, scaling=state.config.scaling
    )


def _write_ledgers(folder: Path, privacy: dict[str, Any]) -> None:
    """One JSON file per bank: the ledger summary it last reported."""
    if not privacy:
        return
    folder.mkdir(exist_ok=True)
    for bank, summary in privacy.items():
        text = json.dumps(summary, indent=2) + "\n"
        (folder / f"{bank}.json").write_text(text, encoding="utf-8")


def _plot_rounds(rounds: list[dict[str, Any]], path: Path, scored_on: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4), dpi=110)
    scored = [r for r in rounds if r["auc"] is not None]
    numbers = [r["round"] for r in scored]
    axis.plot(numbers, [r["auc"] for r in scored], marker="o", label="AUC")
    axis.plot(numbers, [r["ks"] for r in scored], marker="s", label="KS")
    axis.set_xlabel("round")
    axis.set_ylabel(f"pooled {scored_on} metric")
    axis.set_title(f"Federated {scored_on} AUC and KS per round")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
