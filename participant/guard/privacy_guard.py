"""The bank's side of differential privacy: it sets the budget and holds the line.

A bank with a budget (``max-epsilon`` in its node config, or ``--epsilon`` in a
simulation) answers every release about its training records through a
:class:`PrivacyGuard`:

1. At set-up, feature histograms are released with Gaussian noise (one record moves
   one count in each of the F histograms: L2 sensitivity sqrt(F)), and the noise
   multiplier for DP-SGD is calibrated so that the planned rounds, composed with that
   release, spend at most ``max_epsilon``. The calibration is written to the ledger
   as the run's plan, so a restarted participant reuses it.
2. Before each training round the round's DP-SGD event is charged to the ledger;
   if it would pass ``max_epsilon`` (more rounds than planned, a larger batch, more
   epochs) the round is refused with :class:`~privacy.errors.PrivacyBudgetExceeded`
   and no training happens.

Training-set sizes are treated as public, as in DP-SGD practice: the sampling rate
published in the ledger reveals them. Held-out test rows are not training rows;
their evaluation histograms are outside the guarantee (see README, Privacy model).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from credit.feature_stats import FeatureStats, NumericStats, grid_edges
from credit.messages import LedgerSummary, RunInstructions
from credit.schema import DatasetSchema
from privacy.accounting import DpEvent, calibrate_noise_multiplier
from privacy.budget import PrivacyBudget
from privacy.dp_sgd import steps_per_epoch
from privacy.errors import PrivacyBudgetExceeded
from privacy.ledger import PrivacyLedger, RunPlan
from privacy.noise import SecureGaussian

__all__ = ["PrivacyGuard", "TrainingRequest", "training_request"]

STATS_NOISE_MULTIPLIER = 20.0


@dataclass(frozen=True, kw_only=True)
class TrainingRequest:
    """What the coordinator asks of a bank for one run or round."""

    run: str
    server_round: int
    planned_rounds: int
    local_epochs: int
    batch_size: int
    max_grad_norm: float


def training_request(
    instructions: RunInstructions, *, run: str, server_round: int
) -> TrainingRequest:
    """What a request of the coordinator asks, as the privacy guard sees it."""
    return TrainingRequest(
        run=run,
        server_round=server_round,
        planned_rounds=instructions.planned_rounds,
        local_epochs=instructions.local_epochs,
        batch_size=instructions.batch_size,
        max_grad_norm=instructions.max_grad_norm,
    )


class PrivacyGuard:
    """Budget enforcement and noise calibration for one bank and its ledger.

    Parameters
    ----------
    bank : str
        The bank's name (the ledger must belong to it).
    budget : PrivacyBudget
        The bank's configured budget (delta: 1/(10 n_train) when unset).
    ledger_path : pathlib.Path
        The bank's ledger file.
    n_train : int
        Training rows; sets the default delta and the sampling rate.
    """

    def __init__(
        self, *, bank: str, budget: PrivacyBudget, ledger_path: Path, n_train: int
    ) -> None:
        self.n_train = n_train
        self.ledger = PrivacyLedger(ledger_path, bank=bank, budget=budget.for_rows(n_train))

    def summary(self) -> LedgerSummary:
        """The ledger as the bank reports it with its replies (public parameters, epsilon)."""
        return LedgerSummary(bank=self.ledger.bank, **self.ledger.summary())

    def release_feature_stats(
        self, stats: FeatureStats, schema: DatasetSchema, request: TrainingRequest
    ) -> FeatureStats:
        """Charge and return noisy histograms (moments recomputed from them).

        Also fixes the run's DP-SGD plan, so that the set-up release and the planned
        rounds together fit the budget. Raises ``PrivacyBudgetExceeded`` (nothing
        released) when even the set-up release does not fit.
        """
        features = list(stats.numeric)
        sensitivity = float(np.sqrt(len(features)))
        release = DpEvent(
            round=0,
            noise_multiplier=STATS_NOISE_MULTIPLIER,
            sample_rate=1.0,
            steps=1,
            max_grad_norm=sensitivity,
            kind="gaussian-release",
        )
        plan = self.ledger.plan_for(request.run) or self._calibrate(request, also=[release])
        self.ledger.charge(release)
        if self.ledger.plan_for(request.run) is None:
            self.ledger.record_plan(plan)
        noise = SecureGaussian()
        noisy = {}
        by_name = {feature.name: feature for feature in schema.numeric}
        for name in features:
            histogram = stats.numeric[name].histogram.astype(np.float64)
            histogram += (
                noise.standard_normal(histogram.size) * STATS_NOISE_MULTIPLIER * sensitivity
            )
            noisy[name] = _stats_from_histogram(
                np.clip(histogram, 0.0, None), grid_edges(by_name[name], stats.grid_bins)
            )
        return FeatureStats(numeric=noisy, grid_bins=stats.grid_bins)

    def plan(self, request: TrainingRequest) -> RunPlan:
        """The run's DP-SGD calibration, fixed at its first request and persisted."""
        existing = self.ledger.plan_for(request.run)
        if existing is not None:
            return existing
        plan = self._calibrate(request, also=[])
        self.ledger.record_plan(plan)
        return plan

    def _calibrate(self, request: TrainingRequest, *, also: list[DpEvent]) -> RunPlan:
        """Noise for the planned rounds after what is spent (and ``also``); refuse if none fits."""
        sample_rate = min(1.0, request.batch_size / self.n_train)
        steps = request.local_epochs * steps_per_epoch(self.n_train, request.batch_size)
        budget = self.ledger.budget
        try:
            noise_multiplier = calibrate_noise_multiplier(
                spent=[*self.ledger.events, *also],
                planned_rounds=request.planned_rounds,
                sample_rate=sample_rate,
                steps_per_round=steps,
                max_epsilon=budget.max_epsilon,
                delta=self.ledger.delta,
            )
        except ValueError as exc:
            spent = self.ledger.epsilon
            raise PrivacyBudgetExceeded(
                bank=self.ledger.bank,
                spent=spent,
                requested=float("inf"),
                maximum=budget.max_epsilon,
                server_round=request.server_round,
            ) from exc
        return RunPlan(
            run=request.run,
            noise_multiplier=noise_multiplier,
            sample_rate=sample_rate,
            steps_per_round=steps,
            planned_rounds=request.planned_rounds,
            max_grad_norm=request.max_grad_norm,
        )

    def charge_round(self, request: TrainingRequest) -> DpEvent:
        """Charge one round of DP-SGD as requested; refuse it if over budget."""
        plan = self.plan(request)
        event = DpEvent(
            round=request.server_round,
            noise_multiplier=plan.noise_multiplier,
            sample_rate=min(1.0, request.batch_size / self.n_train),
            steps=request.local_epochs * steps_per_epoch(self.n_train, request.batch_size),
            max_grad_norm=request.max_grad_norm,
        )
        self.ledger.charge(event)
        return event


def _stats_from_histogram(histogram: np.ndarray, edges: np.ndarray) -> NumericStats:
    """Moments from a (noisy) histogram via bin centres: pure post-processing."""
    centres = (edges[:-1] + edges[1:]) / 2.0
    count = float(histogram.sum())
    return NumericStats(
        count=max(round(count), 1),
        total=float((histogram * centres).sum()),
        total_squares=float((histogram * centres**2).sum()),
        histogram=np.round(histogram).astype(np.int64),
    )
