"""The bank's side of differential privacy: it sets the budget and holds the line.

A bank with a budget (``max-epsilon`` in its node config, or ``--epsilon`` in a
simulation) answers every release about its training records through a
:class:`PrivacyGuard`:

1. At set-up (federated feature statistics only), the per-class counts of every
   model input are released with Gaussian noise, a numeric input's grid on at most
   ``max_bins`` coarse cells per class (the bank's
   :class:`~participant.guard.settings.SetupReleasePolicy`; one record moves exactly
   one count of one class in each of the F inputs: L2 sensitivity sqrt(F),
   :mod:`~participant.guard.setup_release`). The release's noise
   multiplier is calibrated so that it alone costs ``budget_share * max_epsilon``;
   the noise multiplier for DP-SGD is then calibrated so that the planned rounds,
   composed with that release, spend at most ``max_epsilon``. The calibration is
   written to the ledger as the run's plan, so a restarted participant reuses it.
   A budget that no noise multiplier up to the accountant's largest fits is refused
   with what the set-up release and one round would cost at least.
2. Before each training round the round's DP-SGD event is charged to the ledger;
   if it would pass ``max_epsilon`` (more rounds than planned) the round is refused
   with :class:`~privacy.errors.PrivacyBudgetExceeded`, and a round that asks for
   another batch size, epoch or step count or clipping norm than the run's plan with
   :class:`~privacy.errors.RunPlanChanged`; either way no training happens.
3. Each evaluation release (noisy sums of the held-out rows) is charged as an
   ``evaluation-release`` event about the test rows (:meth:`PrivacyGuard.charge_evaluation`),
   with noise calibrated at the run's first evaluation so that its planned
   evaluations and its one governance release (:meth:`PrivacyGuard.charge_governance`)
   fit ``max_epsilon`` on the test rows alone: training and test rows are disjoint
   and fixed, so the two compose in parallel (see :mod:`privacy.accounting` and
   :mod:`participant.guard.held_out_budget`).

Every event names its run and row set; every run's calibration is a plan in the
ledger. The summary a bank sends with its replies (:meth:`PrivacyGuard.summary`)
carries its events, plans and training-row count, signed with the bank's audit key,
so ``fedcredit privacy verify`` can check them after the run.

Training-set sizes are treated as public, as in DP-SGD practice: the sampling rate
published in the ledger reveals them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from credit.feature_stats import FeatureStats
from credit.messages import LedgerSummary, RunInstructions
from credit.schema import DatasetSchema
from participant.guard import held_out_budget
from participant.guard.settings import SetupReleasePolicy
from participant.guard.setup_release import (
    Shortfall,
    noisy_stats,
    setup_event,
)
from privacy.accounting import (
    MAX_NOISE_MULTIPLIER,
    DpEvent,
    calibrate_noise_multiplier,
    epsilon_by_rows,
    one_release_noise_multiplier,
)
from privacy.budget import PrivacyBudget
from privacy.dp_sgd import round_steps
from privacy.errors import PrivacyBudgetExceeded, RunPlanChanged
from privacy.ledger import PrivacyLedger, RunPlan
from privacy.noise import SecureGaussian, SecureRandom
from privacy.noise_keys import FreshNoiseKeys, NoiseKeys, NoisePurpose

__all__ = ["PrivacyGuard", "TrainingRequest", "training_request"]


@dataclass(frozen=True, kw_only=True)
class TrainingRequest:
    """What the coordinator asks of a bank for one run or round."""

    run: str
    server_round: int
    planned_rounds: int
    local_epochs: int
    batch_size: int
    max_grad_norm: float
    local_steps: int = 0


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
        local_steps=instructions.local_steps,
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
    signing_key : Ed25519PrivateKey, optional
        The bank's audit key, which signs its ledger summaries.
    setup : SetupReleasePolicy, optional
        Cells per feature and share of the budget of the set-up release (default policy).
    noise_keys : NoiseKeys, optional
        Keys of the noise streams (:mod:`privacy.noise_keys`); default: fresh from
        ``os.urandom``, the only source a deployed bank has. A simulation with
        ``--reproducible-noise`` passes keys derived from its seed (research only).
    """

    def __init__(
        self,
        *,
        bank: str,
        budget: PrivacyBudget,
        ledger_path: Path,
        n_train: int,
        signing_key: Ed25519PrivateKey | None = None,
        setup: SetupReleasePolicy | None = None,
        noise_keys: NoiseKeys | None = None,
    ) -> None:
        self.n_train = n_train
        self.noise_keys: NoiseKeys = noise_keys if noise_keys is not None else FreshNoiseKeys()
        self.setup = setup if setup is not None else SetupReleasePolicy()
        self.ledger = PrivacyLedger(ledger_path, bank=bank, budget=budget.for_rows(n_train))
        self._signing_key = signing_key

    def summary(self) -> LedgerSummary:
        """The ledger as the bank reports it with its replies, signed with its audit key.

        Public parameters only: epsilon, delta, the budget, the events and plans and
        the training-row count. Without a signing key (a bank that keeps no audit
        log) the summary is unsigned, and ``fedcredit privacy verify`` says so.
        """
        summary = LedgerSummary(
            bank=self.ledger.bank, n_train=self.n_train, **self.ledger.summary()
        )
        if self._signing_key is None:
            return summary
        return summary.signed_with(self._signing_key)

    def release_feature_stats(
        self, stats: FeatureStats, schema: DatasetSchema, request: TrainingRequest
    ) -> FeatureStats:
        """Charge and return noisy per-class counts on the coordinator's grid (moments from them).

        Each numeric input's grid cells are merged, class by class, into at most
        ``setup.max_bins`` coarse cells (:func:`~credit.feature_stats.coarse_cells`),
        Gaussian noise of standard deviation ``z * sqrt(F)`` is added to every coarse,
        special-code, missing and level count of either class (F: the model inputs),
        and each noisy coarse count is spread evenly over its grid cells
        (post-processing). Nothing is clipped: a count may be negative, and the
        coordinator clips only the banks' sum. The noise multiplier ``z`` makes the
        release alone cost ``setup.budget_share * max_epsilon`` (:meth:`setup_release`).

        Also fixes the run's DP-SGD plan, so that the set-up release and the planned
        rounds together fit the budget. Raises ``PrivacyBudgetExceeded`` (nothing
        released, nothing recorded) when they do not, even at the most noise.
        """
        release = self.setup_release(request, features=stats.features)
        planned = self.ledger.plan_for(request.run)
        new_plan = None if planned is not None else self._calibrate(request, release=release)
        self.ledger.charge(release, plan=new_plan)  # the plan and the release, one write
        noise = self.noise(release, NoisePurpose.SETUP_RELEASE)
        max_bins = self.setup.max_bins
        return noisy_stats(stats, schema, release=release, max_bins=max_bins, noise=noise)

    def noise(self, event: DpEvent, purpose: NoisePurpose) -> SecureGaussian:
        """The Gaussian noise of ``event``, the release just charged, for ``purpose``."""
        return SecureGaussian(self.noise_keys.key(purpose, self._stream(event)))

    def sampler(self, event: DpEvent) -> SecureRandom:
        """The Poisson sampling of ``event``, the DP-SGD round just charged."""
        return SecureRandom(self.noise_keys.key(NoisePurpose.DP_SGD_SAMPLING, self._stream(event)))

    def _stream(self, event: DpEvent) -> str:
        """The noise stream's name: ``event``'s kind, round and place in the ledger.

        The place makes every charge's stream its own (a ledger never records two
        events at one place) and, unlike the run's key (Flower's run id when the run
        has no name), is the same in every simulation at one seed.

        Raises
        ------
        ValueError
            ``event`` is not the ledger's last event: noise is drawn for the release
            just charged, never for an older or uncharged one.
        """
        events = self.ledger.events
        if not events or events[-1] != event:
            raise ValueError(
                f"noise is drawn only for the release just charged; {event} is not the "
                f"last event of {self.ledger.path}"
            )
        return f"{event.kind}/{event.round}/{len(events) - 1}"

    def setup_release(self, request: TrainingRequest, *, features: int) -> DpEvent:
        """The set-up release's event: its noise multiplier spends the bank's share.

        One Gaussian release (q = 1, one step) of F inputs' per-class counts, L2
        sensitivity sqrt(F), whose noise multiplier is calibrated
        (:func:`~privacy.accounting.calibrate_noise_multiplier`) so that it alone
        costs at most ``setup.budget_share * max_epsilon`` (the smallest such noise,
        within the calibration's tolerance). Nothing is recorded.

        Raises
        ------
        PrivacyBudgetExceeded
            The share is below what the release costs even at the largest noise
            multiplier; the refusal says what the set-up and one round would cost.
        """
        try:
            noise_multiplier = one_release_noise_multiplier(
                self.setup.budget_share * self.ledger.budget.max_epsilon, self.ledger.delta
            )
        except ValueError as exc:
            least = setup_event(request.run, MAX_NOISE_MULTIPLIER, features)
            raise self._unaffordable(request, release=least) from exc
        return setup_event(request.run, noise_multiplier, features)

    def plan(self, request: TrainingRequest) -> RunPlan:
        """The run's DP-SGD calibration, fixed at its first request and persisted."""
        existing = self.ledger.plan_for(request.run)
        if existing is not None:
            return existing
        plan = self._calibrate(request)
        self.ledger.record_plan(plan)
        return plan

    def _calibrate(self, request: TrainingRequest, *, release: DpEvent | None = None) -> RunPlan:
        """Noise for the planned rounds after what is spent (and the set-up ``release``).

        Raises ``PrivacyBudgetExceeded`` (:meth:`_unaffordable`) if none fits.
        """
        sample_rate, steps = self._sampling(request)
        also = [] if release is None else [release]
        try:
            noise_multiplier = calibrate_noise_multiplier(
                spent=[*self.ledger.events, *also],
                planned_rounds=request.planned_rounds,
                sample_rate=sample_rate,
                steps_per_round=steps,
                max_epsilon=self.ledger.budget.max_epsilon,
                delta=self.ledger.delta,
            )
        except ValueError as exc:
            raise self._unaffordable(request, release=release) from exc
        return RunPlan(
            run=request.run,
            noise_multiplier=noise_multiplier,
            sample_rate=sample_rate,
            steps_per_round=steps,
            planned_rounds=request.planned_rounds,
            max_grad_norm=request.max_grad_norm,
            n_train=self.n_train,
            batch_size=request.batch_size,
            local_epochs=0 if request.local_steps else request.local_epochs,
            local_steps=request.local_steps,
        )

    def _sampling(self, request: TrainingRequest) -> tuple[float, int]:
        """A round's Poisson sampling rate B/n and its steps (S, or E * ceil(n/B))."""
        sample_rate = min(1.0, request.batch_size / self.n_train)
        steps = round_steps(
            self.n_train,
            request.batch_size,
            local_epochs=request.local_epochs,
            local_steps=request.local_steps,
        )
        return sample_rate, steps

    def _unaffordable(
        self, request: TrainingRequest, *, release: DpEvent | None
    ) -> PrivacyBudgetExceeded:
        """The refusal of a run that fits the budget at no noise multiplier.

        ``release`` is the run's set-up release (None without one): calibrated to
        its share, or at the largest noise multiplier when even that passes the
        share. The refusal's ``requested`` is the least the run would spend (that
        release and every planned round at the largest noise multiplier, after what
        is spent) and its one-line detail what the set-up release and one round of
        DP-SGD cost at least (:class:`~participant.guard.setup_release.Shortfall`).
        """
        delta = self.ledger.delta
        sample_rate, steps = self._sampling(request)
        one_round = DpEvent(
            round=request.server_round,
            noise_multiplier=MAX_NOISE_MULTIPLIER,
            sample_rate=sample_rate,
            steps=steps,
            max_grad_norm=request.max_grad_norm,
            run=request.run,
        )
        setup = [] if release is None else [release]
        rounds = [replace(one_round, steps=steps * request.planned_rounds)]
        shortfall = Shortfall(
            maximum=self.ledger.budget.max_epsilon,
            spent=epsilon_by_rows(self.ledger.events, delta)["train"],
            least=epsilon_by_rows([*self.ledger.events, *setup, *rounds], delta)["train"],
            one_round=epsilon_by_rows([one_round], delta)["train"],
            planned_rounds=request.planned_rounds,
            setup=None if release is None else epsilon_by_rows(setup, delta)["train"],
            share=self.setup.budget_share * self.ledger.budget.max_epsilon,
        )
        return PrivacyBudgetExceeded(
            bank=self.ledger.bank,
            spent=shortfall.spent,
            requested=shortfall.least,
            maximum=shortfall.maximum,
            server_round=request.server_round,
            detail=shortfall.text(),
        )

    def charge_round(self, request: TrainingRequest) -> DpEvent:
        """Charge one round of DP-SGD as planned; refuse it if over budget or off-plan.

        Raises
        ------
        RunPlanChanged
            The round's sampling rate, steps or clipping norm differ from the run's
            plan (another batch size, epoch count or norm); nothing is charged.
        PrivacyBudgetExceeded
            The round would take epsilon past ``max_epsilon``; nothing is charged.
        """
        plan = self.ledger.plan_for(request.run)
        new_plan = None
        if plan is None:
            plan = new_plan = self._calibrate(request)
        sample_rate, steps = self._sampling(request)
        if (sample_rate, steps, request.max_grad_norm) != (
            plan.sample_rate,
            plan.steps_per_round,
            plan.max_grad_norm,
        ):
            raise RunPlanChanged(
                planned=_mechanism(plan.sample_rate, plan.steps_per_round, plan.max_grad_norm),
                asked=_mechanism(sample_rate, steps, request.max_grad_norm),
                bank=self.ledger.bank,
                spent=self.ledger.epsilon,
                maximum=self.ledger.budget.max_epsilon,
                server_round=request.server_round,
            )
        event = DpEvent(
            round=request.server_round,
            noise_multiplier=plan.noise_multiplier,
            sample_rate=plan.sample_rate,
            steps=plan.steps_per_round,
            max_grad_norm=plan.max_grad_norm,
            run=request.run,
        )
        self.ledger.charge(event, plan=new_plan)  # a first round's plan and event, one write
        return event

    def charge_evaluation(self, run: str, server_round: int, planned_evaluations: int) -> DpEvent:
        """Charge one evaluation release of ``run`` about the test rows; return its event.

        At the run's first evaluation the noise multiplier z is calibrated so that
        ``planned_evaluations`` releases and the run's governance release (Gaussian,
        q = 1, one step each) fit ``max_epsilon`` composed with the test-row releases
        already spent (training-row releases compose in parallel and do not count),
        and persisted as the run's ``evaluation`` plan together with the first
        release; later evaluations reuse it
        (:func:`~participant.guard.held_out_budget.charge_evaluation`). The caller adds
        Gaussian noise of standard deviation ``event.noise_multiplier *
        event.max_grad_norm`` (:data:`~credit.metrics.EVALUATION_SENSITIVITY`) to the
        released vector.

        Raises
        ------
        PrivacyBudgetExceeded
            No noise fits the remaining test-row budget, or this release would pass
            it or the run's planned evaluations; nothing is recorded.
        """
        return held_out_budget.charge_evaluation(
            self.ledger,
            n_train=self.n_train,
            run=run,
            server_round=server_round,
            planned_evaluations=planned_evaluations,
        )

    def charge_governance(self, run: str, server_round: int, sensitivity: float) -> DpEvent:
        """Charge ``run``'s one governance release (calibration and fairness sums).

        At the run's evaluation noise multiplier, with its own L2 ``sensitivity``
        (:func:`~participant.guard.held_out_budget.charge_governance`).

        Raises
        ------
        PrivacyBudgetExceeded
            The run has no evaluation plan, already made its governance release, or
            the release would pass the budget; nothing is recorded.
        """
        return held_out_budget.charge_governance(
            self.ledger, run=run, server_round=server_round, sensitivity=sensitivity
        )


def _mechanism(sample_rate: float, steps: int, max_grad_norm: float) -> str:
    """A DP-SGD round's mechanism as text for a refusal."""
    return f"sampling rate {sample_rate:.6g}, {steps} steps, max-grad-norm {max_grad_norm:g}"
