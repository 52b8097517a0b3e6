"""One federated run, driven by the coordinator over Flower's Grid.

How a run flows::

    coordinator                                   each bank
    ───────────                                   ─────────
    wait for min_banks nodes
    query "feature-stats"  ───────────────────▶   validate file, split 80/20,
                           ◀───────────────────   aggregates of train rows (no rows)
    combine aggregates, fit encoder
    for round 1..R:
        train(weights, encoder) ──────────────▶   local SGD on train rows
                           ◀───────────────────   new weights, n_train
        FedAvg (weighted by n_train)
        evaluate(weights)  ───────────────────▶   score own test rows
                           ◀───────────────────   score histograms, loss sums
        pooled AUC, KS, ... from summed histograms

Rounds that get fewer than ``min_banks`` usable replies raise
:class:`~coordinator.errors.RoundFailed`; the global model is then the last
completed round's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, RecordDict
from flwr.serverapp import Grid

from coordinator.errors import RoundFailed
from coordinator.privacy_records import BudgetsExhausted, ledger_of, refusal_of, refusal_text
from coordinator.strategy import CreditFedAvg
from credit import keys
from credit.encoding import FeatureEncoder, fit_encoder
from credit.feature_stats import combine_feature_stats
from credit.metrics import CreditMetrics
from credit.models import ModelSpec, build_model
from credit.run_config import RunConfig
from credit.schema import DatasetSchema, load_schema
from credit.wire import (
    array_record,
    config_record,
    config_str,
    feature_stats_from_record,
    metric_number,
    metric_record,
)

__all__ = ["BankInfo", "Federation", "RoundResult", "RunOutcome"]

_NODE_WAIT_SECONDS = 600.0
_NODE_POLL_SECONDS = 1.0


@dataclass(frozen=True)
class BankInfo:
    """A participating bank as the coordinator knows it."""

    name: str
    node_id: int
    n_train: int
    n_test: int


@dataclass(frozen=True)
class RoundResult:
    """Outcome of one completed round."""

    server_round: int
    metrics: CreditMetrics
    train_loss: float | None
    banks: tuple[str, ...]
    seconds: float
    refused: tuple[str, ...] = ()
    max_epsilon_spent: float | None = None


@dataclass
class RunOutcome:
    """Everything a finished run produced (the coordinator writes it to disk)."""

    config: RunConfig
    schema: DatasetSchema
    encoder: FeatureEncoder
    spec: ModelSpec
    banks: list[BankInfo]
    arrays: ArrayRecord
    rounds: list[RoundResult] = field(default_factory=list)
    privacy: dict[str, dict[str, Any]] = field(default_factory=dict)
    refusals: list[dict[str, Any]] = field(default_factory=list)
    stopped: str | None = None


RoundCallback = Callable[[RoundResult, int], None]
EventCallback = Callable[[str], None]


class Federation:
    """Drive set-up, training and evaluation rounds for one run.

    Parameters
    ----------
    grid : flwr.serverapp.Grid
        Flower's handle on the connected nodes.
    config : RunConfig
        The run configuration.
    on_round : callable, optional
        Called with each :class:`RoundResult` and the planned number of rounds.
    on_event : callable, optional
        Called with one-line progress messages during set-up.
    """

    def __init__(
        self,
        grid: Grid,
        config: RunConfig,
        *,
        on_round: RoundCallback | None = None,
        on_event: EventCallback | None = None,
    ) -> None:
        self.grid = grid
        self.config = config
        self.schema = load_schema(config.schema_file or None)
        self.strategy = CreditFedAvg(min_banks=config.min_banks)
        self.privacy: dict[str, dict[str, Any]] = {}
        self._refusals: list[dict[str, Any]] = []
        self._on_round = on_round or (lambda result, total: None)
        self._on_event = on_event or (lambda text: None)

    def run(self) -> RunOutcome:
        """Run set-up and every round; return the outcome."""
        node_ids = self._wait_for_nodes()
        banks, encoder = self._fit_encoder(node_ids)
        spec = ModelSpec(
            kind=self.config.model,
            n_inputs=encoder.n_inputs,
            hidden_sizes=self.config.hidden_sizes,
        )
        arrays = ArrayRecord(build_model(spec, seed=self.config.seed).state_dict())
        outcome = RunOutcome(
            config=self.config,
            schema=self.schema,
            encoder=encoder,
            spec=spec,
            banks=banks,
            arrays=arrays,
        )
        names = {bank.node_id: bank.name for bank in banks}
        for server_round in range(1, self.config.rounds + 1):
            try:
                result, outcome.arrays = self._round(
                    server_round, outcome.arrays, encoder, spec, names
                )
            except BudgetsExhausted as stop:
                outcome.stopped = str(stop)
                self._on_event(f"stopped: {stop}")
                break
            outcome.rounds.append(result)
            self._on_round(result, self.config.rounds)
        outcome.privacy = dict(self.privacy)
        outcome.refusals = list(self._refusals)
        return outcome

    # -- set-up ---------------------------------------------------------------------

    def _wait_for_nodes(self) -> list[int]:
        deadline = time.monotonic() + _NODE_WAIT_SECONDS
        while True:
            node_ids = sorted(self.grid.get_node_ids())
            if len(node_ids) >= self.config.min_banks:
                self._on_event(f"{len(node_ids)} banks connected")
                return node_ids
            if time.monotonic() > deadline:
                raise RoundFailed(
                    stage="connect",
                    server_round=0,
                    received=len(node_ids),
                    required=self.config.min_banks,
                    reasons=[f"waited {_NODE_WAIT_SECONDS:.0f} s for banks to connect"],
                )
            time.sleep(_NODE_POLL_SECONDS)

    def _base_config(self) -> ConfigRecord:
        return ConfigRecord(
            {
                keys.SCHEMA_HASH: self.schema.schema_hash(),
                keys.TEST_FRACTION: self.config.test_fraction,
                keys.SEED: self.config.seed,
                keys.PLANNED_ROUNDS: self.config.announced_rounds,
                keys.LOCAL_EPOCHS: self.config.local_epochs,
                keys.BATCH_SIZE: self.config.batch_size,
                keys.MAX_GRAD_NORM: self.config.max_grad_norm,
            }
        )

    def _fit_encoder(self, node_ids: list[int]) -> tuple[list[BankInfo], FeatureEncoder]:
        config = self._base_config()
        config[keys.TASK] = keys.TASK_FEATURE_STATS
        config[keys.GRID_BINS] = self.config.grid_bins
        messages = [
            Message(RecordDict({keys.CONFIG: config}), node_id, MessageType.QUERY)
            for node_id in node_ids
        ]
        replies = self._usable(
            self.grid.send_and_receive(messages, timeout=self.config.round_timeout),
            "feature-stats",
            0,
        )
        accepted = []
        for reply in replies:
            self._record_privacy(reply)
            refusal = refusal_of(reply)
            if refusal is None:
                accepted.append(reply)
            else:
                self._refusals.append(refusal)
                self._on_event(refusal_text(refusal))
        if len(accepted) < self.config.min_banks:
            raise RoundFailed(
                stage="feature-stats",
                server_round=0,
                received=len(accepted),
                required=self.config.min_banks,
                reasons=[refusal_text(r) for r in self._refusals],
            )
        replies = accepted
        banks = [
            BankInfo(
                name=config_str(config_record(r.content, keys.BANK), keys.BANK_NAME),
                node_id=r.metadata.src_node_id,
                n_train=int(metric_number(metric_record(r.content, keys.METRICS), keys.N_TRAIN)),
                n_test=int(metric_number(metric_record(r.content, keys.METRICS), keys.N_TEST)),
            )
            for r in replies
        ]
        banks.sort(key=lambda bank: bank.name)
        stats = combine_feature_stats(
            [
                feature_stats_from_record(array_record(r.content, keys.FEATURE_STATS))
                for r in replies
            ]
        )
        encoder = fit_encoder(
            self.schema,
            kind=self.config.encoding,
            source=self.config.feature_stats,
            stats=stats,
            quantile_bins=self.config.quantile_bins,
        )
        total = sum(bank.n_train for bank in banks)
        self._on_event(
            f"encoder fitted ({self.config.encoding}, {self.config.feature_stats} statistics "
            f"from {len(banks)} banks, {total:,} training rows): {encoder.n_inputs} model inputs"
        )
        return banks, encoder

    # -- rounds ---------------------------------------------------------------------

    def _round(
        self,
        server_round: int,
        arrays: ArrayRecord,
        encoder: FeatureEncoder,
        spec: ModelSpec,
        names: dict[int, str],
    ) -> tuple[RoundResult, ArrayRecord]:
        started = time.monotonic()
        config = self._base_config()
        config[keys.ENCODER] = encoder.model_dump_json()
        config[keys.MODEL_SPEC] = spec.model_dump_json()
        config[keys.SCORE_BINS] = self.config.score_bins
        train_config = ConfigRecord(dict(config))
        train_config[keys.LEARNING_RATE] = self.config.learning_rate
        timeout = self.config.round_timeout

        all_train = self._usable(
            self.grid.send_and_receive(
                self.strategy.configure_train(server_round, arrays, train_config, self.grid),
                timeout=timeout,
            ),
            "train",
            server_round,
        )
        train_replies, refused = self._split_refusals(all_train)
        if len(train_replies) < self.config.min_banks:
            raise BudgetsExhausted(
                f"round {server_round}: {len(refused)} bank(s) refused (privacy budget spent), "
                f"{len(train_replies)} accepted, {self.config.min_banks} needed; "
                f"the model of round {server_round - 1} is final"
            )
        new_arrays, train_metrics = self.strategy.aggregate_train(server_round, train_replies)
        if new_arrays is None or train_metrics is None:
            raise RoundFailed(
                stage="train", server_round=server_round, received=0, required=1, reasons=[]
            )
        evaluate_replies = self._usable(
            self.grid.send_and_receive(
                self.strategy.configure_evaluate(server_round, new_arrays, config, self.grid),
                timeout=timeout,
            ),
            "evaluate",
            server_round,
        )
        metrics_record = self.strategy.aggregate_evaluate(server_round, evaluate_replies)
        if metrics_record is None:
            raise RoundFailed(
                stage="evaluate", server_round=server_round, received=0, required=1, reasons=[]
            )
        spent = [ledger["epsilon"] for ledger in self.privacy.values()]
        result = RoundResult(
            server_round=server_round,
            metrics=CreditMetrics.from_dict(metrics_record),
            train_loss=(
                metric_number(train_metrics, keys.TRAIN_LOSS)
                if keys.TRAIN_LOSS in train_metrics
                else None
            ),
            banks=tuple(sorted(names.get(r.metadata.src_node_id, "?") for r in train_replies)),
            seconds=time.monotonic() - started,
            refused=tuple(sorted(str(r[keys.BANK_NAME]) for r in refused)),
            max_epsilon_spent=max(spent) if spent else None,
        )
        return result, new_arrays

    def _split_refusals(self, replies: list[Message]) -> tuple[list[Message], list[dict[str, Any]]]:
        """Separate typed refusals from updates; record ledgers and refusals."""
        accepted, refused = [], []
        for reply in replies:
            self._record_privacy(reply)
            refusal = refusal_of(reply)
            if refusal is None:
                accepted.append(reply)
            else:
                refused.append(refusal)
                self._refusals.append(refusal)
                self._on_event(refusal_text(refusal))
        return accepted, refused

    def _record_privacy(self, reply: Message) -> None:
        ledger = ledger_of(reply)
        if ledger is not None:
            bank, summary = ledger
            self.privacy[bank] = summary

    def _usable(self, replies: Iterable[Message], stage: str, server_round: int) -> list[Message]:
        """Keep replies without errors; fail the round below ``min_banks``."""
        replies = list(replies)
        valid = [r for r in replies if not r.has_error()]
        if len(valid) < self.config.min_banks:
            reasons = [
                f"node {r.metadata.src_node_id}: {r.error.reason}" for r in replies if r.has_error()
            ]
            raise RoundFailed(
                stage=stage,
                server_round=server_round,
                received=len(valid),
                required=self.config.min_banks,
                reasons=reasons,
            )
        return valid
