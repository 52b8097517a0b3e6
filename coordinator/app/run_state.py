"""What a run holds as it goes: banks, the global model, round results, privacy records.

The run driver updates one :class:`RunState` round by round; the checkpoint saves
it after every round's aggregation (and once more when a round's evaluation comes
in) and the run files are written from it at the end. A round's metrics arrive one
exchange after its training (with the next round's train replies, or the final
evaluation): until then it is a :class:`PendingRound`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flwr.app import ArrayRecord

from coordinator.app.server_optimizer import OptimizerState
from credit.encoding import FeatureEncoder
from credit.messages import LedgerSummary, Refusal
from credit.metrics import CreditMetrics, ScoreSummary
from credit.model_spec import ModelSpec
from credit.run_config import RunConfig
from credit.schema import DatasetSchema

if TYPE_CHECKING:  # the governance package imports scipy: the operator's commands skip it
    from credit.governance.woe import WoeTable

__all__ = [
    "BankInfo",
    "BestRound",
    "PendingRound",
    "RoundResult",
    "RunState",
    "ScoreHistograms",
    "SelectedModel",
    "TrainOutcome",
]


@dataclass(frozen=True)
class BankInfo:
    """A participating bank as the coordinator knows it."""

    name: str
    node_id: int
    n_train: int


@dataclass(frozen=True)
class TrainOutcome:
    """The training step of one round.

    Attributes
    ----------
    arrays : ArrayRecord
        The new global model.
    train_loss : float or None
        Weighted mean training loss of the banks that report one (banks under DP do not).
    trained : tuple of int
        Nodes whose updates are in the new model.
    refused : tuple of Refusal
        Banks that refused the round (privacy budget).
    dropped : tuple of int
        The run's nodes that neither trained nor refused (lost, timed out, or dropped
        out at any stage of secure aggregation).
    aborted : str or None
        Why the round was aborted (the model is unchanged); None if it was not.
    """

    arrays: ArrayRecord
    train_loss: float | None
    trained: tuple[int, ...]
    refused: tuple[Refusal, ...] = ()
    dropped: tuple[int, ...] = ()
    aborted: str | None = None


@dataclass(frozen=True)
class RoundResult:
    """Outcome of one completed (or aborted) round.

    ``seconds`` is the round's wall time; ``exchanges`` the part of it each message
    exchange took (stage -> seconds, push to return), in the order they happened:
    ``train`` (which also brings the previous round's evaluation), ``unmask`` under
    secure aggregation, and ``evaluate`` for an evaluate-only exchange that scored
    this round's model (the last round's; or one whose evaluation did not come with
    the next round's train replies); ``advertise`` when the round had to ask for its
    keys on its own. A checkpoint written before rounds kept them loads with none.
    ``metrics`` is None for a round whose model was not scored: the run's cadence
    (``evaluate-every``) skipped it, or its evaluation was lost with the next round's
    secure sum.
    """

    server_round: int
    metrics: CreditMetrics | None
    train_loss: float | None
    banks: tuple[str, ...]
    seconds: float
    refused: tuple[str, ...] = ()
    max_epsilon_spent: float | None = None
    dropped: tuple[str, ...] = ()
    aborted: str | None = None
    exchanges: dict[str, float] = field(default_factory=dict)

    def progress_line(self, total_rounds: int) -> str:
        """One progress line: round, AUC, KS, test loss, banks, ε, refusals, dropouts, time."""
        m = self.metrics
        scored = (
            f"AUC {m.auc:.4f}  KS {m.ks:.4f}  loss {m.log_loss:.4f}"
            if m is not None
            else "not evaluated" + " " * 26
        )
        line = f"round {self.server_round:>3}/{total_rounds}  {scored}  banks {len(self.banks)}"
        if self.max_epsilon_spent is not None:
            line += f"  ε spent ≤ {self.max_epsilon_spent:.3f}"
        if self.refused:
            line += f"  refused {len(self.refused)}"
        if self.dropped:
            line += f"  dropped {len(self.dropped)}"
        if self.aborted:
            line += "  ABORTED (model unchanged)"
        return line + f"  {self.seconds:5.1f} s"


@dataclass(frozen=True)
class PendingRound:
    """A trained (or aborted) round whose evaluation has not come in yet.

    Everything of its :class:`RoundResult` but the metrics, and the epsilon each bank
    had spent after it (for the round's audit entry: later replies move it on).

    Attributes
    ----------
    epsilon : dict of str to float
        Bank -> epsilon spent per its ledger after this round (banks with a budget).
    """

    server_round: int
    train_loss: float | None
    banks: tuple[str, ...]
    seconds: float
    refused: tuple[str, ...] = ()
    max_epsilon_spent: float | None = None
    dropped: tuple[str, ...] = ()
    aborted: str | None = None
    exchanges: dict[str, float] = field(default_factory=dict)
    epsilon: dict[str, float] = field(default_factory=dict)

    def result(
        self,
        metrics: CreditMetrics | None,
        *,
        seconds: float = 0.0,
        exchanges: Mapping[str, float] | None = None,
    ) -> RoundResult:
        """The round's result, once ``metrics`` came in.

        ``seconds`` and ``exchanges`` are an evaluate-only exchange's, if one was
        needed; they are added to the round's own.
        """
        merged = dict(self.exchanges)
        for stage, spent in (exchanges or {}).items():
            merged[stage] = merged.get(stage, 0.0) + spent
        return RoundResult(
            server_round=self.server_round,
            metrics=metrics,
            train_loss=self.train_loss,
            banks=self.banks,
            seconds=self.seconds + seconds,
            refused=self.refused,
            max_epsilon_spent=self.max_epsilon_spent,
            dropped=self.dropped,
            aborted=self.aborted,
            exchanges=merged,
        )


@dataclass(frozen=True)
class BestRound:
    """The round whose model scored the best summed validation AUC so far, and that model.

    Attributes
    ----------
    server_round : int
        The round.
    auc : float
        Its pooled AUC on the banks' validation parts (the selection criterion).
    arrays : ArrayRecord
        Its global model.
    """

    server_round: int
    auc: float
    arrays: ArrayRecord

    def beaten_by(self, auc: float) -> bool:
        """Whether a validation AUC of ``auc`` is better (ties keep the earlier round)."""
        return auc > self.auc


@dataclass(frozen=True)
class SelectedModel:
    """The model a run with validation parts keeps, and its final evaluation.

    Attributes
    ----------
    server_round : int
        The round whose model it is.
    metrics : CreditMetrics or None
        Its pooled metrics on the banks' held-out rows (None: no bank released them).
    validation_auc : float or None
        Its validation AUC (None: no round was validated; the last model is kept).
    last_round : int
        The last round the run trained (or aborted).
    seconds : float
        The final evaluation's wall time.
    exchanges : dict of str to float
        Its exchanges' times (stage -> seconds).
    """

    server_round: int
    metrics: CreditMetrics | None
    validation_auc: float | None
    last_round: int
    seconds: float = 0.0
    exchanges: dict[str, float] = field(default_factory=dict)

    @property
    def still_improving(self) -> bool:
        """Whether the kept round is the last one validated and trained: more rounds may help."""
        return self.validation_auc is not None and self.server_round == self.last_round

    def document(self) -> dict[str, Any]:
        """``metrics.json``'s ``selection`` entry (the final metrics are in ``final``)."""
        return {
            "round": self.server_round,
            "validation_auc": self.validation_auc,
            "last_round": self.last_round,
            "still_improving": self.still_improving,
            "seconds": self.seconds,
            "exchanges": dict(self.exchanges),
        }


@dataclass(frozen=True)
class ScoreHistograms:
    """The summed score histograms a round's metrics were computed from.

    Per class, counts of held-out rows in ``len(defaulters)`` equal-width score bins
    on [0, 1], summed over the banks that evaluated, settled as
    :func:`~credit.metrics.credit_metrics` settles them (clipped at zero: a sum with
    DP noise holds real numbers). The run keeps the final round's, from which the
    model report draws its ROC and KS curves and the score distribution.
    """

    server_round: int
    defaulters: tuple[float, ...]
    non_defaulters: tuple[float, ...]

    @classmethod
    def settled(cls, server_round: int, summary: ScoreSummary) -> ScoreHistograms:
        """The histograms of a summed ``summary``, clipped at zero (post-processing)."""
        return cls(
            server_round=server_round,
            defaulters=tuple(float(v) for v in summary.positives.clip(min=0.0)),
            non_defaulters=tuple(float(v) for v in summary.negatives.clip(min=0.0)),
        )

    def document(self) -> dict[str, Any]:
        """``{"round", "bins", "defaulters", "non_defaulters"}``: ``metrics.json``'s form."""
        return {
            "round": self.server_round,
            "bins": len(self.defaulters),
            "defaulters": list(self.defaulters),
            "non_defaulters": list(self.non_defaulters),
        }

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> ScoreHistograms:
        """Inverse of :meth:`document` (a checkpoint's)."""
        return cls(
            server_round=int(document["round"]),
            defaulters=tuple(float(v) for v in document["defaulters"]),
            non_defaulters=tuple(float(v) for v in document["non_defaulters"]),
        )


@dataclass
class RunState:
    """Everything a run has produced so far (the coordinator writes it to disk).

    Attributes
    ----------
    privacy : dict of str to LedgerSummary
        The latest ledger summary each bank with a budget reported.
    refusals : list of Refusal
        Every refusal of the run, in order.
    pending : PendingRound or None
        The last trained round, while its evaluation has not come in.
    stopped : str or None
        Why the run stopped early (budgets spent); None when it ran every round.
    secure_aggregation : dict or None
        The secure-aggregation parameters (None: plain FedAvg).
    final_scores : ScoreHistograms or None
        The summed score histograms of the final metrics: of the last round whose
        model was scored, or (with validation parts) of the selected model's final
        evaluation on the held-out rows (None: none yet, or a checkpoint from before
        they were kept).
    governance : dict or None
        ``metrics.json``'s calibration and fairness report of the last model
        (:func:`coordinator.app.governance.governance_outcome`); None: not asked.
    woe : dict of str to WoeTable
        Each model input's WoE/IV table from the set-up release (empty without
        federated feature statistics).
    best : BestRound or None
        With validation parts: the round with the best validation AUC so far (None:
        none scored yet, or no validation parts).
    selected : SelectedModel or None
        With validation parts: the model the run keeps (the best round's, or the last
        one's when no round was validated) with its final metrics on the held-out
        rows, once the final evaluation came in.
    stopped_early : str or None
        Why the run stopped before its last round because the validation AUC stopped
        improving (``patience``); None otherwise.
    final_missing : str or None
        Why the kept model has no final evaluation (held-out metrics, calibration and
        fairness): its evaluate exchange failed, and it is not asked again (the banks
        make that release once per run). None: it was made, or is still to come.
    server_optimizer : OptimizerState or None
        The server optimiser's moments after its last step (FedAdam, FedYogi,
        FedAvgM: :mod:`coordinator.app.server_optimizer`); None: no step yet, or a
        strategy without one.
    """

    config: RunConfig
    schema: DatasetSchema
    encoder: FeatureEncoder
    spec: ModelSpec
    banks: list[BankInfo]
    arrays: ArrayRecord
    rounds: list[RoundResult] = field(default_factory=list)
    privacy: dict[str, LedgerSummary] = field(default_factory=dict)
    refusals: list[Refusal] = field(default_factory=list)
    pending: PendingRound | None = None
    stopped: str | None = None
    secure_aggregation: dict[str, Any] | None = None
    final_scores: ScoreHistograms | None = None
    governance: dict[str, Any] | None = None
    woe: dict[str, WoeTable] = field(default_factory=dict)
    best: BestRound | None = None
    selected: SelectedModel | None = None
    stopped_early: str | None = None
    final_missing: str | None = None
    server_optimizer: OptimizerState | None = None

    def final_metrics(self) -> CreditMetrics | None:
        """The run's final metrics (None: none).

        With validation parts, the selected model's on the held-out rows; without,
        those of the last round whose model was scored. None when the kept model's
        final evaluation failed (:attr:`final_missing`): no other model's metrics
        stand in for it.
        """
        if self.final_missing is not None:
            return None
        if self.config.selects_best_round:
            return None if self.selected is None else self.selected.metrics
        for result in reversed(self.rounds):
            if result.metrics is not None:
                return result.metrics
        return None

    def kept_arrays(self) -> ArrayRecord:
        """The model the run keeps: the selected round's (validation parts), else the last."""
        if self.selected is not None and self.best is not None:
            return self.best.arrays
        return self.arrays

    def privacy_document(self) -> dict[str, dict[str, Any]]:
        """Each bank's ledger summary as ``metrics.json`` and the checkpoint keep it."""
        return {bank: summary.document() for bank, summary in self.privacy.items()}

    def refusals_document(self) -> list[dict[str, Any]]:
        """Every refusal as ``metrics.json`` and the checkpoint keep it."""
        return [refusal.document() for refusal in self.refusals]
