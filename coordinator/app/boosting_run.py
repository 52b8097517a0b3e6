"""A federated boosting run over Flower's Grid (``model = "gbdt"``): set-up, levels, outputs.

How the run flows::

    set-up   as a logistic-regression run's (coordinator.app.run_setup): the banks join
             and release aggregates of their training rows (in the clear, or summed in
             secure round 0); the binned encoder is fitted from the sum with max-bins
             quantile bins per numeric column: its edges are the shared bins
    trees    per tree, per level one exchange (coordinator.app.boosting_flower): the
             banks' histograms summed -> the core's split choice (credit.gbdt) ->
             the splits travel with the next level's orders, the leaf values with the
             next tree's first
    outputs  OUT/model/xgboost.json (XGBoost JSON, loadable by xgboost.Booster),
             OUT/model/model_card.json (how to build the input matrix from a bank's
             CSV, the hyperparameters, feature importance), OUT/model/encoder.json
             (the binned encoder: credit.gbdt.raw_matrix), signed as a model package
             (coordinator.app.boosting_package: fedcredit score, serve, model verify),
             OUT/metrics.json (the levels, seconds, banks, ledgers),
             OUT/boosting-checkpoint.json (after every tree), then OUT/report.html
             (coordinator.app.report, from the files above: trees, feature importance,
             held-out metrics and curves)

The base score is the consortium's default rate from the summed class counts of the
set-up statistics (0.5 with public statistics, which count nothing). The
coordinator's randomness (column subsampling per tree) is public and seeded by
``seed``; each bank draws its own row sample (``subsample < 1``).

Then the banks score the ensemble on their held-out rows
(:mod:`coordinator.app.boosting_evaluation`: score histograms and sums, summed in the
clear or in one more secure round): ``metrics.json``'s ``final`` (AUC, KS, ...) and
``score_histograms`` (the sum those come from, which the coordinator already holds).

Not yet for boosted trees: resuming from the checkpoint, validation parts for model
selection (a deployed bank's validation rows are left out of training and unused;
``fedcredit simulate`` sets none apart), the rounds plot (the report charts the trees
instead).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from flwr.serverapp import Grid

from coordinator.app.aggregation import Aggregation
from coordinator.app.audit_trail import CoordinatorAudit
from coordinator.app.bank_replies import ReplyBook
from coordinator.app.boosting import BoostingRun, LevelRecord, train_federated
from coordinator.app.boosting_checkpoint import CHECKPOINT_FILE, save_boosting_checkpoint
from coordinator.app.boosting_evaluation import (
    HeldOutEvaluation,
    ensemble_part,
    evaluate_ensemble,
)
from coordinator.app.boosting_flower import FlowerLevelSum
from coordinator.app.boosting_package import (
    boosting_model_card,
    write_boosting_package,
    write_model_folder,
)
from coordinator.app.exchange import BankExchange
from coordinator.app.instructions import run_instructions
from coordinator.app.report.writer import write_report
from coordinator.app.run_files import (
    LEDGER_DIR,
    METRICS_FILE,
    MODEL_DIR,
    RunFiles,
    replace_folder,
    run_files,
)
from coordinator.app.run_setup import RunSetup
from coordinator.app.secagg_server import SecureAggregation
from credit.durable import write_durably
from credit.encoding import EncodingKind, FeatureEncoder, StatsSource, fit_encoder
from credit.errors import ConfigError
from credit.feature_stats import FeatureStats, settle_noisy
from credit.gbdt import (
    ENCODER_FILE,
    XGBOOST_FILE,
    FeatureBins,
    base_score_from_counts,
    bins_from_encoder,
)
from credit.messages import Refusal, RunInstructions, Task
from credit.messages.gbdt import GbdtEncoding
from credit.model_card import CARD_FILE
from credit.run_config import RunConfig
from credit.schema import DatasetSchema, load_schema

__all__ = [
    "ENCODER_FILE",
    "MODEL_CARD_FILE",
    "XGBOOST_FILE",
    "BoostingDriver",
    "default_rate",
    "write_boosting_outputs",
]

MODEL_CARD_FILE = CARD_FILE

EventCallback = Callable[[str], None]


def default_rate(stats: FeatureStats | None) -> float:
    """The base score: events over rows in the summed class counts (0.5 without any).

    Every row is counted in exactly one cell of every column (a grid cell, a special
    code or missing), so one column's cells count the rows; a noisy sum is settled
    (rounded, clipped to its range) before.
    """
    if stats is None:
        return 0.5
    cells = (
        next(iter(stats.numeric.values())).cells
        if stats.numeric
        else next(iter(stats.categorical.values()))
    )
    events = max(round(float(np.sum(cells.events))), 0)
    rows = max(round(float(np.sum(cells.counts))), 1)
    return base_score_from_counts(min(events, rows), rows)


@dataclass(frozen=True)
class _BoostingStart:
    """What the trees start from once the banks have joined."""

    banks: dict[int, str]  # node id -> bank name: every one answers every level
    training_rows: int
    encoding: GbdtEncoding
    bins: FeatureBins
    base_score: float
    aggregation: Aggregation
    instructions: RunInstructions

    @property
    def secure(self) -> SecureAggregation | None:
        """The run's secure aggregation (None: the levels are summed in the clear)."""
        return self.aggregation if isinstance(self.aggregation, SecureAggregation) else None


class BoostingDriver:
    """Drive one federated boosting run (module docstring) and write its outputs.

    Parameters
    ----------
    grid : flwr.serverapp.Grid
        Flower's handle on the connected nodes.
    config : RunConfig
        The run configuration (``model = "gbdt"``).
    on_event : callable, optional
        Receives one-line progress messages (one per tree).
    """

    def __init__(
        self, grid: Grid, config: RunConfig, *, on_event: EventCallback | None = None
    ) -> None:
        if config.resume:
            raise ConfigError(
                "resuming a boosting run is not supported yet; start it afresh "
                "(its finished trees are in OUT/boosting-checkpoint.json)",
                source="resume",
            )
        self.grid = grid
        self.config = config
        self.schema: DatasetSchema = load_schema(config.schema_file or None)
        self._on_event = on_event or (lambda text: None)
        self._exchange = BankExchange(
            grid, min_banks=config.min_banks, timeout=config.round_timeout
        )
        self._audit: CoordinatorAudit | None = None
        self._book = ReplyBook(on_event=self._on_event, on_refusal=self._record_refusal)

    def run(self) -> RunFiles:
        """Set-up, every tree, the outputs (recorded in ``OUT/audit/coordinator.jsonl``)."""
        started = time.monotonic()
        audit = CoordinatorAudit(self.config, flower_run_id=self.grid.run.run_id)
        self._audit = audit
        self._exchange.audit = audit
        try:
            audit.run_start(self.schema.schema_hash())
            files = self._run(audit, started)
        except Exception as error:
            audit.run_failed(error)
            raise
        finally:
            self._exchange.audit = None
            audit.close()
            self._audit = None
        return files

    def _run(self, audit: CoordinatorAudit, started: float) -> RunFiles:
        """Set-up, the trees, the held-out evaluation, the outputs."""
        out = Path(self.config.out_dir)
        start = self._set_up(audit)
        level_sum = FlowerLevelSum(
            exchange=self._exchange,
            book=self._book,
            query=start.instructions.query(Task.GBDT_LEVEL),
            encoding=start.encoding,
            bins=start.bins,
            banks=start.banks,
            secure=start.secure,
        )
        run = train_federated(
            params=self.config.boosting_params(),
            bins=start.bins,
            base_score=start.base_score,
            level_sum=level_sum,
            rng=np.random.default_rng(self.config.seed),
            on_tree=lambda run: self._tree_done(out, run),
        )
        evaluation = evaluate_ensemble(
            exchange=self._exchange,
            book=self._book,
            query=start.instructions.query(Task.GBDT_EVALUATE),
            parts=(ensemble_part(run, self.config.score_bins), start.encoding),
            banks=start.banks,
            secure=start.secure,
            secure_round=level_sum.levels + 1,  # its keys came with the last level's unmask
        )
        self._on_event(_evaluation_line(evaluation))
        record = self._run_record(start, evaluation, time.monotonic() - started)
        files = write_boosting_outputs(
            out,
            run,
            start.encoding.encoder,
            banks=sorted(start.banks.values()),
            training_rows=start.training_rows,
            extra=record,
            schema_name=self.schema.name,
            package=lambda folder: write_boosting_package(
                folder, self.config, self.schema, start.encoding.encoder, record["privacy"]
            ),
        )
        write_report(metrics=files.metrics, model=files.model, report=files.report)  # last
        audit.boosting_end(
            trees=len(run.trees),
            model_sha256=_sha256(files.model / XGBOOST_FILE),
            final_auc=None if evaluation.metrics is None else evaluation.metrics.auc,
            final_missing=evaluation.missing,
        )
        return files

    def _set_up(self, audit: CoordinatorAudit) -> _BoostingStart:
        """The banks join and release their statistics; the bins and base score from them."""
        setup = RunSetup(
            self.grid,
            self.config,
            self.schema,
            exchange=self._exchange,
            book=self._book,
            audit=audit,
            on_event=self._on_event,
        )
        joined, aggregation, stats = setup.join_and_sum()
        private = setup.private
        settled = settle_noisy(stats, self.schema) if private and stats is not None else stats
        encoder = self._encoder(settled)
        start = _BoostingStart(
            banks={reply.bank.node_id: reply.bank.name for reply in joined},
            training_rows=sum(reply.bank.n_train for reply in joined),
            encoding=GbdtEncoding(encoder=encoder),
            bins=bins_from_encoder(encoder),
            base_score=default_rate(settled),
            aggregation=aggregation,
            instructions=run_instructions(self.config, self.schema, private=private),
        )
        if (line := aggregation.describe()) is not None:
            self._on_event(line)
        self._on_event(
            f"bins fitted ({self.config.feature_stats} statistics from {len(start.banks)} "
            f"banks, {start.training_rows:,} training rows): {start.bins.n_features} "
            f"features, up to {start.bins.n_bins - 1} bins each; base score "
            f"{start.base_score:.4f}"
        )
        return start

    def _run_record(
        self, start: _BoostingStart, evaluation: HeldOutEvaluation, seconds: float
    ) -> dict[str, Any]:
        """What ``metrics.json`` records beside the trees: protocol, ledgers, evaluation."""
        return {
            "secure_aggregation": start.aggregation.summary(),
            "privacy": {bank: summary.document() for bank, summary in self._book.privacy.items()},
            "refusals": [refusal.document() for refusal in self._book.refusals],
            "wall_seconds": seconds,
            "final": None if evaluation.metrics is None else evaluation.metrics.as_dict(),
            "final_banks": evaluation.banks,
            "final_missing": evaluation.missing,
            "score_histograms": None if evaluation.scores is None else evaluation.scores.document(),
            "schema": {"name": self.schema.name, "sha256": self.schema.schema_hash()},
        }

    def _encoder(self, stats: FeatureStats | None) -> FeatureEncoder:
        """The binned encoder whose edges are the run's bins (``max_bins`` per column), from
        the (settled) summed statistics, or the schema's public bounds without any."""
        if stats is None:
            return fit_encoder(
                self.schema,
                kind=EncodingKind.BINNED,
                source=StatsSource.PUBLIC,
                stats=None,
                quantile_bins=self.config.max_bins,
            )
        return fit_encoder(
            self.schema,
            kind=EncodingKind.BINNED,
            source=self.config.feature_stats,
            stats=stats,
            quantile_bins=self.config.max_bins,
        )

    def _tree_done(self, out: Path, run: BoostingRun) -> None:
        save_boosting_checkpoint(out / CHECKPOINT_FILE, run)
        tree = len(run.trees) - 1
        levels = [level for level in run.levels if level.tree == tree]
        seconds = sum(level.seconds for level in levels)
        leaves = sum(
            1 for index in range(len(run.trees[-1].values)) if run.trees[-1].is_leaf(index)
        )
        self._on_event(
            f"tree {tree + 1}/{run.params.n_trees}: {len(levels)} levels, {leaves} leaves, "
            f"{seconds:.2f} s"
        )

    def _record_refusal(self, refusal: Refusal) -> None:
        if self._audit is not None:
            self._audit.refusal(refusal.bank, refusal.server_round, refusal.text())


def _evaluation_line(evaluation: HeldOutEvaluation) -> str:
    if evaluation.metrics is None:
        return f"held-out evaluation missing: {evaluation.missing}"
    metrics = evaluation.metrics
    return (
        f"held-out evaluation ({evaluation.banks} banks, {metrics.n_rows:,} rows): "
        f"AUC {metrics.auc:.4f}, KS {metrics.ks:.4f}"
    )


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _level_document(level: LevelRecord) -> dict[str, Any]:
    return {
        "tree": level.tree,
        "depth": level.depth,
        "nodes": list(level.nodes),
        "splits": len(level.splits),
        "seconds": level.seconds,
    }


def write_boosting_outputs(
    out: Path,
    run: BoostingRun,
    encoder: FeatureEncoder,
    *,
    banks: list[str],
    training_rows: int,
    extra: dict[str, Any],
    schema_name: str,
    package: Callable[[Path], object] | None = None,
) -> RunFiles:
    """Write ``model/`` (``xgboost.json``, ``encoder.json``, ``model_card.json``) and
    ``metrics.json``.

    The model folder is written afresh beside ``model/`` and moved in place
    (:func:`~coordinator.app.run_files.replace_folder`); ``package`` completes it into
    a signed package first (:func:`~coordinator.app.boosting_package.write_boosting_package`).
    """
    files = run_files(out)
    out.mkdir(parents=True, exist_ok=True)
    card = boosting_model_card(
        run, encoder, banks=banks, training_rows=training_rows, schema_name=schema_name
    )
    replace_folder(
        out / MODEL_DIR, lambda folder: write_model_folder(folder, run, encoder, card, package)
    )
    metrics = {
        "status": "completed",
        "model": "gbdt",
        "trees": len(run.trees),
        "levels": [_level_document(level) for level in run.levels],
        "level_seconds": float(sum(level.seconds for level in run.levels)),
        "base_score": run.base_score,
        "params": run.params.model_dump(),
        "banks": banks,
        "training_rows": training_rows,
        **extra,
    }
    _write_json(out / METRICS_FILE, metrics)
    for bank, summary in (extra.get("privacy") or {}).items():  # as a logreg run keeps them
        (out / LEDGER_DIR).mkdir(exist_ok=True)
        _write_json(out / LEDGER_DIR / f"{bank}.json", summary)
    return files


def _write_json(path: Path, document: dict[str, Any]) -> None:
    write_durably(path, (json.dumps(document, indent=2) + "\n").encode("utf-8"))
