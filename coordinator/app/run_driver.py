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

With secure aggregation (the default) the train step returns masked updates and
one more round trip unmasks only their sum; :mod:`coordinator.app.secagg_server` shows the flow.

Rounds that get fewer than ``min_banks`` usable replies raise
:class:`~coordinator.errors.RoundFailed`; the global model is then the last
completed round's. A round that loses too many banks to dropouts (below
``min_banks``, or below the secure-aggregation threshold) is aborted instead: the
global model stays as it was, the round is recorded as aborted and the run goes on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, RecordDict
from flwr.serverapp import Grid

from coordinator.app.audit_trail import CoordinatorAudit
from coordinator.app.checkpoint import load_checkpoint, save_checkpoint
from coordinator.app.exchange import send_and_receive
from coordinator.app.privacy_records import BudgetsExhausted, ledger_of, refusal_of, refusal_text
from coordinator.app.run_state import BankInfo, RoundResult, RunState
from coordinator.app.secagg_server import SecureAggregation
from coordinator.app.strategy import CreditFedAvg
from coordinator.errors import RoundFailed
from credit import message_keys as keys
from credit.encoding import FeatureEncoder, fit_encoder
from credit.feature_stats import combine_feature_stats
from credit.metrics import CreditMetrics
from credit.models import ModelSpec, build_model
from credit.records import (
    array_record,
    config_record,
    config_str,
    feature_stats_from_record,
    flatten,
    metric_number,
    metric_record,
)
from credit.run_config import RunConfig
from credit.schema import load_schema
from privacy.secagg.protocol import SecAggAborted

__all__ = ["RunDriver"]

_NODE_WAIT_SECONDS = 600.0
_NODE_POLL_SECONDS = 1.0


RoundCallback = Callable[[RoundResult, int], None]
EventCallback = Callable[[str], None]


class RunDriver:
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
        self.secure: SecureAggregation | None = None
        self._refusals: list[dict[str, Any]] = []
        self._audit: CoordinatorAudit | None = None
        self._on_round = on_round or (lambda result, total: None)
        self._on_event = on_event or (lambda text: None)

    def run(self) -> RunState:
        """Run set-up and every round (or continue from the checkpoint); return the state.

        Every step is recorded in the signed audit log ``OUT/audit/coordinator.jsonl``
        (see :mod:`coordinator.app.audit_trail`), including a failure.
        """
        audit = CoordinatorAudit(self.config, flower_run_id=self.grid.run.run_id)
        self._audit = audit
        try:
            state = self._run(audit)
        except Exception as error:
            audit.run_failed(error)
            raise
        else:
            audit.run_end(state)
        finally:
            audit.close()
            self._audit = None
        return state

    def _run(self, audit: CoordinatorAudit) -> RunState:
        out_dir = Path(self.config.out_dir)
        if self.config.resume:
            state, completed = load_checkpoint(out_dir, self.config)
            audit.run_resume(completed, state.arrays, self.schema.schema_hash())
            node_ids = self._wait_for_nodes()
            self.privacy = dict(state.privacy)
            self._refusals = list(state.refusals)
            state.banks = self._rejoin(node_ids, state.banks)
            self._on_event(f"resuming after round {completed} from {out_dir / 'checkpoint'}")
        else:
            audit.run_start(self.schema.schema_hash())
            state, completed = self._start(self._wait_for_nodes()), 0
        audit.setup(state.banks, state.arrays)
        if self.secure is not None and completed < self.config.rounds:
            self._on_event(self.secure.describe())
            self._request_advertisements(completed + 1, state.arrays)
        self._rounds(state, completed, audit)
        state.privacy = dict(self.privacy)
        state.refusals = list(self._refusals)
        if self.secure is not None:
            state.secure_aggregation = self.secure.summary()
        return state

    def _rounds(self, state: RunState, completed: int, audit: CoordinatorAudit) -> None:
        """Rounds ``completed + 1`` to the last; each is audited, then checkpointed."""
        names = {bank.node_id: bank.name for bank in state.banks}
        for server_round in range(completed + 1, self.config.rounds + 1):
            try:
                result, state.arrays = self._round(
                    server_round, state.arrays, state.encoder, state.spec, names
                )
            except BudgetsExhausted as stop:
                state.stopped = str(stop)
                self._on_event(f"stopped: {stop}")
                break
            state.rounds.append(result)
            state.privacy = dict(self.privacy)
            state.refusals = list(self._refusals)
            audit.round(result, state.arrays, self.privacy)
            save_checkpoint(Path(self.config.out_dir), state, server_round)
            self._on_round(result, self.config.rounds)

    def _start(self, node_ids: list[int]) -> RunState:
        """Set-up of a new run: encoder from the banks' aggregates, initial model."""
        banks, encoder = self._fit_encoder(node_ids)
        spec = ModelSpec(
            kind=self.config.model,
            n_inputs=encoder.n_inputs,
            hidden_sizes=self.config.hidden_sizes,
        )
        return RunState(
            config=self.config,
            schema=self.schema,
            encoder=encoder,
            spec=spec,
            banks=banks,
            arrays=ArrayRecord(build_model(spec, seed=self.config.seed).state_dict()),
        )

    def _rejoin(self, node_ids: list[int], known: list[BankInfo]) -> list[BankInfo]:
        """On resume: find the run's banks again (no data release) and re-key.

        The banks answer an ``enroll`` query with their name and row counts (and, with
        secure aggregation, a new encryption key for the new Flower run); a bank the
        checkpoint does not know is refused a place in the run.
        """
        config = self._base_config()
        config[keys.TASK] = keys.TASK_ENROLL
        content = RecordDict({keys.CONFIG: config})
        if self.config.secure_aggregation:
            content[keys.SECAGG] = ConfigRecord()
        messages = [Message(RecordDict(dict(content)), n, MessageType.QUERY) for n in node_ids]
        replies = self._exchange(messages, "enroll", 0)
        by_name = {bank.name: bank for bank in known}
        banks, accepted = [], []
        for reply in replies:
            info = self._bank_info(reply)
            if info.name not in by_name:
                self._on_event(f"bank '{info.name}' is not part of this run: left out")
                if self._audit is not None:
                    self._audit.refusal(info.name, 0, "not part of the run being resumed")
                continue
            banks.append(info)
            accepted.append(reply)
        banks.sort(key=lambda bank: bank.name)
        if self.config.secure_aggregation:
            self._enroll_secure(accepted, banks)
        return banks

    @staticmethod
    def _bank_info(reply: Message) -> BankInfo:
        metrics = metric_record(reply.content, keys.METRICS)
        return BankInfo(
            name=config_str(config_record(reply.content, keys.BANK), keys.BANK_NAME),
            node_id=reply.metadata.src_node_id,
            n_train=int(metric_number(metrics, keys.N_TRAIN)),
            n_test=int(metric_number(metrics, keys.N_TEST)),
        )

    def _enroll_secure(self, replies: list[Message], banks: list[BankInfo]) -> None:
        self.secure = SecureAggregation(run=self.grid.run.run_id, clip=self.config.secagg_clip)
        try:
            self.secure.enroll(
                replies, {bank.node_id: bank.n_train for bank in banks}, self.config.min_banks
            )
        except ValueError as exc:
            raise RoundFailed(
                stage="secure-aggregation set-up",
                server_round=0,
                received=len(replies),
                required=2,
                reasons=[str(exc)],
            ) from exc

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
                keys.DROPOUT_RATE: self.config.dropout_rate,
                keys.RUN_NAME: self.config.run_name,
            }
        )

    def _fit_encoder(self, node_ids: list[int]) -> tuple[list[BankInfo], FeatureEncoder]:
        config = self._base_config()
        config[keys.TASK] = keys.TASK_FEATURE_STATS
        config[keys.GRID_BINS] = self.config.grid_bins
        content = RecordDict({keys.CONFIG: config})
        if self.config.secure_aggregation:
            content[keys.SECAGG] = ConfigRecord()  # asks banks for their encryption keys
        messages = [
            Message(RecordDict(dict(content)), node_id, MessageType.QUERY) for node_id in node_ids
        ]
        replies, _ = self._split_refusals(self._exchange(messages, "feature-stats", 0))
        if len(replies) < self.config.min_banks:
            raise RoundFailed(
                stage="feature-stats",
                server_round=0,
                received=len(replies),
                required=self.config.min_banks,
                reasons=[refusal_text(r) for r in self._refusals],
            )
        banks = [self._bank_info(r) for r in replies]
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
        if self.config.secure_aggregation:
            self._enroll_secure(replies, banks)
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
        config[keys.SERVER_ROUND] = server_round
        train_config = ConfigRecord(dict(config))
        train_config[keys.LEARNING_RATE] = self.config.learning_rate

        aborted: str | None = None
        new_arrays, train_loss = arrays, None
        trained: list[int] = []
        refused: list[dict[str, Any]] = []
        dropped: list[int] = []
        try:
            new_arrays, train_loss, trained, refused, dropped = self._train(
                server_round, arrays, train_config
            )
        except SecAggAborted as abort:
            aborted = str(abort)
            self._on_event(aborted)
        evaluate_replies = self._evaluate(server_round, new_arrays, config)
        metrics_record = self.strategy.aggregate_evaluate(server_round, evaluate_replies)
        if metrics_record is None:
            raise RoundFailed(
                stage="evaluate", server_round=server_round, received=0, required=1, reasons=[]
            )
        spent = [ledger["epsilon"] for ledger in self.privacy.values()]
        result = RoundResult(
            server_round=server_round,
            metrics=CreditMetrics.from_dict(metrics_record),
            train_loss=train_loss,
            banks=tuple(sorted(names.get(node, "?") for node in trained)),
            seconds=time.monotonic() - started,
            refused=tuple(sorted(str(r[keys.BANK_NAME]) for r in refused)),
            max_epsilon_spent=max(spent) if spent else None,
            dropped=tuple(sorted(names.get(node, "?") for node in dropped)),
            aborted=aborted,
        )
        return result, new_arrays

    def _train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord
    ) -> tuple[ArrayRecord, float | None, list[int], list[dict[str, Any]], list[int]]:
        """One training step: new arrays, mean train loss, who trained, refused, dropped.

        Raises
        ------
        SecAggAborted
            If dropouts leave fewer banks than the round needs (the model is unchanged).
        BudgetsExhausted
            If refusals leave fewer than ``min_banks`` banks.
        """
        if self.secure is not None:
            messages = self.secure.train_messages(server_round, arrays, config)
        else:
            messages = list(self.strategy.configure_train(server_round, arrays, config, self.grid))
        replies, dropped = self._split_dropped(self._exchange(messages, "train", server_round))
        accepted, refused = self._split_refusals(replies)
        needed = self.config.min_banks
        if len(accepted) < needed and len(accepted) + len(dropped) < needed:
            raise BudgetsExhausted(
                f"round {server_round}: {len(refused)} bank(s) refused (privacy budget spent), "
                f"{len(accepted)} accepted, {needed} needed; "
                f"the model of round {server_round - 1} is final"
            )
        if len(accepted) < needed:
            raise SecAggAborted(server_round, "train", len(accepted), needed)
        trained = [r.metadata.src_node_id for r in accepted]
        if self.secure is not None:
            update = self.secure.aggregate(server_round, accepted, arrays, config, self._exchange)
            return update.arrays, update.train_loss, update.banks, refused, dropped
        new_arrays, metrics = self.strategy.aggregate_train(server_round, accepted)
        if new_arrays is None or metrics is None:
            raise RoundFailed(
                stage="train", server_round=server_round, received=0, required=1, reasons=[]
            )
        loss = metric_number(metrics, keys.TRAIN_LOSS) if keys.TRAIN_LOSS in metrics else None
        return new_arrays, loss, trained, refused, dropped

    def _evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord
    ) -> list[Message]:
        """Evaluate ``arrays`` at every bank; with secure aggregation, gather next keys."""
        messages = list(self.strategy.configure_evaluate(server_round, arrays, config, self.grid))
        next_round = server_round + 1 if server_round < self.config.rounds else 0
        if self.secure is not None and next_round:
            self.secure.open_round(next_round, flatten(arrays).size)
            for message in messages:
                message.content[keys.SECAGG] = self.secure.record(advertise_round=next_round)
        replies = self._exchange(messages, "evaluate", server_round)
        if self.secure is not None and next_round:
            self.secure.collect_advertisements(next_round, replies)
        return replies

    def _request_advertisements(self, server_round: int, arrays: ArrayRecord) -> None:
        """Ask every bank of the roster for its keys of ``server_round`` (set-up only)."""
        assert self.secure is not None
        self.secure.open_round(server_round, flatten(arrays).size)
        config = self._base_config()
        config[keys.TASK] = keys.TASK_SECAGG_ADVERTISE
        messages = [
            Message(
                RecordDict(
                    {
                        keys.CONFIG: config,
                        keys.SECAGG: self.secure.record(advertise_round=server_round),
                    }
                ),
                node_id,
                MessageType.QUERY,
            )
            for node_id in sorted(self.secure.roster)
        ]
        replies, _ = self._split_dropped(self._exchange(messages, "advertise", 0))
        self.secure.collect_advertisements(server_round, replies)

    def _exchange(self, messages: list[Message], stage: str, server_round: int) -> list[Message]:
        """Send ``messages``, wait for the replies, keep those without errors."""
        replies = send_and_receive(self.grid, messages, timeout=self.config.round_timeout)
        return self._usable(replies, stage, server_round)

    def _split_dropped(self, replies: list[Message]) -> tuple[list[Message], list[int]]:
        """Separate simulated dropouts (they answer only "dropped") from real replies."""
        present = [r for r in replies if keys.DROPPED not in r.content.config_records]
        gone = [r.metadata.src_node_id for r in replies if keys.DROPPED in r.content.config_records]
        return present, gone

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
                if self._audit is not None:
                    self._audit.refusal(
                        str(refusal[keys.BANK_NAME]),
                        int(refusal[keys.SERVER_ROUND]),
                        refusal_text(refusal),
                    )
        return accepted, refused

    def _record_privacy(self, reply: Message) -> None:
        ledger = ledger_of(reply)
        if ledger is not None:
            bank, summary = ledger
            self.privacy[bank] = summary

    def _usable(self, replies: Iterable[Message], stage: str, server_round: int) -> list[Message]:
        """Keep replies without errors; fail the round below ``min_banks``.

        Secure aggregation's own stages only drop the failed replies: the protocol
        decides against its threshold whether the round goes on.
        """
        replies = list(replies)
        valid = [r for r in replies if not r.has_error()]
        if stage in ("advertise", "unmask"):
            return valid
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
