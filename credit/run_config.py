"""The run configuration, parsed once into a frozen model at the edge.

Shared by both sides: Flower hands the ServerApp and ClientApps a flat
``run_config`` with hyphenated keys (defaults in ``[tool.flwr.app.config]`` of
``pyproject.toml``); the ``fedcredit simulate`` command builds the same model from
its flags. Below the entry points, code
receives a :class:`RunConfig`, never raw keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from credit.config_files import validate_fields
from credit.encoding import EncodingKind, StatsSource
from credit.feature_stats import DEFAULT_GRID_BINS, MAX_GRID_BINS
from credit.metrics import DEFAULT_SCORE_BINS, MAX_SCORE_BINS
from credit.model_spec import MAX_LAYERS, MAX_WIDTH, ModelKind
from credit.strategy import (
    DEFAULT_BETA1,
    DEFAULT_BETA2,
    DEFAULT_PROXIMAL_MU,
    DEFAULT_SERVER_MOMENTUM,
    DEFAULT_TAU,
    STRATEGY_DEFAULT,
    Strategy,
    misplaced_option,
    plain_fedavg_problem,
    server_learning_rate_of,
)

if TYPE_CHECKING:  # the governance package imports scipy: the operator's commands skip it
    from credit.gbdt import BoostingParams
    from credit.governance.scorecard import ScoreScaling

__all__ = ["AUTOMATIC", "BOOSTING_FLAGS", "RunConfig"]

_FLOWER_RENAMES = {"num-server-rounds": "rounds"}
_NOT_DIGESTED = frozenset({"out-dir", "resume", "audit-key"})
_ON_GRID = 1e-9
MONITOR_QUANTILE = 0.99
"""``monitor-quantile``'s default: ``credit.governance.stability.DEFAULT_QUANTILE`` (a test
pins them equal; that module imports scipy, which the operator's commands skip)."""
"""How far ``decision_cutoff * score_bins`` may lie from a whole number (floating point)."""


AUTOMATIC = -1
"""``evaluate-every``: every round without privacy budgets, the last round's only with them."""

BOOSTING_FLAGS = {
    "trees": "--trees",
    "max_depth": "--max-depth",
    "tree_learning_rate": "--tree-learning-rate",
    "reg_lambda": "--reg-lambda",
    "gamma": "--gamma",
    "min_child_weight": "--min-child-weight",
    "subsample": "--subsample",
    "colsample": "--colsample",
    "max_bins": "--max-bins",
}
"""The boosting fields and the flags that set them (``simulate`` and ``coordinator
launch`` alike): what a validation error names."""


class RunConfig(BaseModel):
    """Everything the coordinator decides for one federated run.

    Parameters
    ----------
    rounds : int, default 10
        Federated rounds (train then evaluate), >= 1.
    model : ModelKind, default ``logreg``
        ``logreg``, ``mlp`` or ``gbdt`` (federated gradient-boosted trees: one exchange
        per tree level, :mod:`coordinator.app.boosting_run`; the boosting fields below
        apply, the SGD ones do not).
    encoding : EncodingKind, default ``binned``
        ``binned`` (quantile bins, one-hot), ``standardized`` (z-scores) or ``woe``
        (each input the weight of evidence of its merged bin; needs federated
        feature statistics).
    feature_stats : StatsSource, default ``federated``
        Encoder parameters from per-bank aggregates (``federated``) or from the
        schema's public bounds only (``public``).
    quantile_bins : int, default 10
        Bins per numeric column for the binned encoding, >= 2.
    local_epochs : int, default 0
        Local work per round in passes over a bank's training rows, >= 0: a bank of
        n rows takes ``local_epochs * ceil(n / batch_size)`` steps, so small banks
        move little. 0: ``local_steps``; > 0 replaces ``local_steps``.
    local_steps : int, default 50
        Local work per round in SGD steps, the same at every bank whatever its size
        (DP-SGD: that many Poisson-sampled steps at rate ``batch_size / n``), >= 1
        unless ``local_epochs`` is set. 50 steps of 64 rows: about one epoch of a
        bank of 3,000 training rows, ten of a bank of 300.
    batch_size, learning_rate
        Local SGD batch size (the expected Poisson batch under DP-SGD) and step size.
    hidden_sizes : tuple of int, default (64, 32)
        MLP hidden layers (accepts ``"64,32"``).
    strategy : Strategy, default ``fedavg``
        How updates become the next global model (:mod:`credit.strategy`): ``fedavg``;
        ``fedprox`` (each bank adds ``proximal_mu / 2 * ||w - w_global||^2`` to its
        local loss); ``fedadam``, ``fedyogi``, ``fedavgm`` (the coordinator takes a
        server optimiser's step from the securely aggregated mean). A strategy's
        options below may be set only with it; a setting that makes it plain FedAvg
        (``fedprox`` with mu 0, ``fedavgm`` with learning rate 1 and momentum 0) is
        refused.
    proximal_mu : float, default 0.0
        FedProx's mu, >= 0, finite (> 0 with ``fedprox``). Each bank refuses a round
        whose mu exceeds its own bound (``participant start --max-proximal-mu``).
    server_learning_rate : float, default 0.0
        The server optimiser's step size (Flower's ``eta`` / ``server_learning_rate``),
        >= 0; 0: the strategy's Flower default (``fedadam`` 0.1, ``fedyogi`` 0.01,
        ``fedavgm`` 1.0).
    server_momentum : float, default 0.0
        FedAvgM's server momentum, in [0, 1).
    server_beta1, server_beta2 : float, default 0.9, 0.99
        FedAdam's and FedYogi's first- and second-moment decay, in [0, 1).
    server_tau : float, default 1e-3
        FedAdam's and FedYogi's adaptivity floor (added to the root of the second
        moment), > 0.
    seed : int, default 0
        Seeds model initialisation, splits, shuffles and simulated partitions.
    test_fraction : float, default 0.2
        Share of each bank's own rows held out as its test split.
    validation_fraction : float, default 0.2
        Share of each bank's training rows kept apart as its validation part, in
        [0, 1): never trained on, it scores the rounds' models (the run's cadence), the
        run keeps the round whose summed validation AUC is best, and only that model is
        scored on the held-out rows (the final metrics). A bank fixes its own and
        refuses a run that names another. 0: no validation part; the rounds are scored
        on the held-out rows and the last round's model is kept (as before).
    patience : int, default 0
        Early stopping (with validation parts): stop the run once this many validated
        rounds after the best one have not beaten its validation AUC, >= 0; 0: run every
        round. Whatever stops the run, the best round's model is kept.
    min_banks : int, default 2
        Fewest banks a round needs; fewer replies fail the run cleanly.
    score_bins : int, default 100
        Bins of the score histograms banks release for evaluation (a bank's policy
        caps them: 100 by default).
    decision_cutoff : float, default 0.5
        The fairness report's decision: an applicant is declined when the model's
        predicted default probability is >= this; in [0, 1] and a multiple of
        ``1 / score_bins`` (a bin edge: banks refuse any other cut-off).
    evaluate_every : int, default -1
        Score the global model every this many rounds (the last round's model always);
        0: the last round's only; -1 (automatic): every round without privacy budgets,
        the last round's only with them (every evaluation of held-out rows is charged
        to their budget).
    schema : str
        The dataset schema file ('' = the embedded one).
    out_dir : str
        Where the coordinator writes metrics, model and plot.
    round_timeout : float, default 600
        Seconds to wait for replies in one round.
    max_grad_norm : float, default 1.0
        Per-sample clipping norm banks with a privacy budget use for DP-SGD.
    planned_rounds : int, optional
        Rounds announced to banks for their noise calibration; ``rounds`` when unset.
        Announcing fewer than are run models a coordinator that extends a run: banks
        with a budget refuse every round past it.
    secure_aggregation : bool, default True
        Combine updates by secure aggregation: the coordinator learns only their sum.
    secagg_clip : float, default 16.0
        Per-coordinate clip of a bank's masked update (its difference from the
        global model) in the fixed-point code of secure aggregation.
    secagg_threshold_fraction : float, default 2/3
        The consortium's threshold policy F, in [0.5, 1): secure aggregation's
        threshold is ``floor(F * N) + 1`` of a roster of N banks. Every bank computes
        its own from its policy (``participant start --secagg-threshold-fraction``,
        default 2/3) and refuses a round naming another, so this must be the banks' F.
    secagg_graph : {"auto", "complete", "sparse"}, default "auto"
        Secure aggregation's communication graph: ``complete``, ``sparse`` (SecAgg+'s
        Harary graph, Bell et al. 2020) or ``auto`` (sparse above
        :data:`~privacy.secagg.graph.SPARSE_ABOVE` banks). Must be the banks' own.
    secagg_dropout_rate, secagg_corruption_rate : float, default 0.1 and 0.05
        The sparse graph's dropout rate and colluding fraction its degree and
        threshold are computed for, in [0, 1) (must be the banks' own).
    run_name : str
        The consortium's name for the run; banks key their privacy plan by it (by
        Flower's run id when empty), so a resumed run keeps the plan.
    resume : bool, default False
        Continue from the checkpoint in ``out_dir`` instead of starting afresh.
    audit_key : str
        The coordinator's Ed25519 audit signing key (PEM); empty: create or reuse
        the per-user key (``$XDG_DATA_HOME/fedcredit/coordinator-audit.key``, see
        :func:`coordinator.app.audit_trail.default_key_path`). Never inside ``out_dir``.
    pdo, base_score, base_odds : float, default 20, 600, 50
        The scorecard's scaling (``encoding = "woe"`` with ``logreg``): every ``pdo``
        points double the odds (good:bad), which are ``base_odds`` at ``base_score``
        (:class:`~credit.governance.scorecard.ScoreScaling`). ``pdo`` and
        ``base_odds`` > 0, all finite.
    monitor_run : str
        Makes the run a stability-monitoring run (it trains nothing): the folder of the
        finished development run whose model it monitors, on the coordinator's host
        (:mod:`coordinator.app.monitor_run`); '' (the default): a training run. The
        monitoring run takes the development run's settings but for its own
        ``out-dir``, ``run-name``, ``secure-aggregation``, ``min-banks``,
        ``round-timeout`` and ``audit-key``; it is not resumed, and its ``out-dir``
        is another folder. Only the coordinator reads it: a bank answers on the bins
        of the model it holds, whatever folder this names.
    monitor_quantile : float, default 0.99
        A monitoring run's drift flag: the chi-square quantile of PSI under no drift
        (``credit.governance.stability.DEFAULT_QUANTILE``), in (0, 1).
    trees, max_depth, tree_learning_rate, reg_lambda, gamma, min_child_weight, \
    subsample, colsample, max_bins
        ``model = "gbdt"`` only (:meth:`boosting_params`, the ranges of
        :class:`credit.gbdt.BoostingParams`): trees (default 100), depth (6), the trees'
        learning rate (shrinkage, 0.1; ``learning-rate`` is local SGD's and is not
        used), L2 on leaf weights (1), minimum gain of a split (0), minimum Hessian sum
        of a child (1), share of its rows a bank samples per tree (1), share of the
        features a tree may split on (1), and bins per feature of the shared edges
        (255: up to 254 quantile edges per numeric column, from the same federated
        statistics the binned encoder uses).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    rounds: int = Field(default=10, ge=1)
    model: ModelKind = ModelKind.LOGREG
    encoding: EncodingKind = EncodingKind.BINNED
    feature_stats: StatsSource = StatsSource.FEDERATED
    quantile_bins: int = Field(default=10, ge=2, le=100)
    local_epochs: int = Field(default=0, ge=0)
    local_steps: int = Field(default=50, ge=0)
    batch_size: int = Field(default=64, ge=1)
    learning_rate: float = Field(default=0.01, gt=0)
    hidden_sizes: tuple[Annotated[int, Field(ge=1, le=MAX_WIDTH)], ...] = Field(
        default=(64, 32), max_length=MAX_LAYERS
    )
    # Strategy (credit.strategy): `strategy` first, its options' validators read it.
    strategy: Strategy = Strategy.FEDAVG
    proximal_mu: float = Field(
        default=DEFAULT_PROXIMAL_MU, ge=0, allow_inf_nan=False, validate_default=True
    )
    server_learning_rate: float = Field(
        default=STRATEGY_DEFAULT, ge=0, allow_inf_nan=False, validate_default=True
    )
    server_momentum: float = Field(
        default=DEFAULT_SERVER_MOMENTUM, ge=0, lt=1, validate_default=True
    )
    server_beta1: float = Field(default=DEFAULT_BETA1, ge=0, lt=1, validate_default=True)
    server_beta2: float = Field(default=DEFAULT_BETA2, ge=0, lt=1, validate_default=True)
    server_tau: float = Field(default=DEFAULT_TAU, gt=0, allow_inf_nan=False, validate_default=True)
    seed: int = 0
    test_fraction: float = Field(default=0.2, gt=0, lt=1)
    validation_fraction: float = Field(default=0.2, ge=0, lt=1)
    patience: int = Field(default=0, ge=0)
    min_banks: int = Field(default=2, ge=1)
    score_bins: int = Field(default=DEFAULT_SCORE_BINS, ge=2, le=MAX_SCORE_BINS)
    decision_cutoff: float = Field(default=0.5, ge=0, le=1)
    evaluate_every: int = Field(default=AUTOMATIC, ge=AUTOMATIC)
    grid_bins: int = Field(default=DEFAULT_GRID_BINS, ge=2, le=MAX_GRID_BINS)
    schema_file: str = Field(default="", alias="schema")
    out_dir: str = "fedcredit-run"
    round_timeout: float = Field(default=600.0, gt=0)
    max_grad_norm: float = Field(default=1.0, gt=0)
    planned_rounds: int | None = Field(default=None, ge=1)
    secure_aggregation: bool = True
    secagg_clip: float = Field(default=16.0, gt=0)
    secagg_threshold_fraction: float = Field(default=2 / 3, ge=0.5, lt=1)
    secagg_graph: Literal["auto", "complete", "sparse"] = "auto"
    secagg_dropout_rate: float = Field(default=0.1, ge=0, lt=1)
    secagg_corruption_rate: float = Field(default=0.05, ge=0, lt=1)
    run_name: str = ""
    resume: bool = False
    audit_key: str = ""
    pdo: float = Field(default=20.0, gt=0, allow_inf_nan=False)
    base_score: float = Field(default=600.0, allow_inf_nan=False)
    base_odds: float = Field(default=50.0, gt=0, allow_inf_nan=False)
    monitor_run: str = ""
    monitor_quantile: float = Field(default=MONITOR_QUANTILE, gt=0, lt=1)
    # model = "gbdt" (federated boosting): credit.gbdt.BoostingParams's ranges.
    trees: int = Field(default=100, ge=1, le=10_000)
    max_depth: int = Field(default=6, ge=1, le=12)
    tree_learning_rate: float = Field(default=0.1, gt=0, le=1)
    reg_lambda: float = Field(default=1.0, ge=0, allow_inf_nan=False)
    gamma: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    min_child_weight: float = Field(default=1.0, ge=0, allow_inf_nan=False)
    subsample: float = Field(default=1.0, gt=0, le=1)
    colsample: float = Field(default=1.0, gt=0, le=1)
    max_bins: int = Field(default=255, ge=2, le=255)

    @model_validator(mode="after")
    def _woe_needs_federated_statistics(self) -> Self:
        if self.encoding is EncodingKind.WOE and self.feature_stats is not StatsSource.FEDERATED:
            raise ValueError(
                "encoding 'woe' needs feature-stats 'federated': its WoE values come from "
                "the banks' per-class counts in the set-up release, which public feature "
                f"statistics skip; got feature-stats '{self.feature_stats}'"
            )
        return self

    @model_validator(mode="after")
    def _epochs_or_steps(self) -> Self:
        if self.local_epochs < 1 and self.local_steps < 1:
            raise ValueError(
                "a round needs local work: set local-steps >= 1 (or local-epochs >= 1); "
                "got local-steps 0 and local-epochs 0"
            )
        return self

    @model_validator(mode="after")
    def _monitoring_run_apart(self) -> Self:
        if not self.monitor_run:
            return self
        if self.resume:
            raise ValueError(
                "a monitoring run (monitor-run set) is not resumed: submit a new one; "
                "got resume true"
            )
        development = Path(self.monitor_run).expanduser().resolve()
        if Path(self.out_dir).expanduser().resolve() == development:
            raise ValueError(
                "a monitoring run writes into its own out-dir, not into the development "
                f"run's folder it monitors; got out-dir and monitor-run both '{development}'"
            )
        return self

    def boosting_params(self) -> BoostingParams:
        """The hyperparameters of a ``gbdt`` run (base score: the banks' default rate)."""
        from credit.gbdt import BoostingParams

        return BoostingParams(
            n_trees=self.trees,
            max_depth=self.max_depth,
            learning_rate=self.tree_learning_rate,
            reg_lambda=self.reg_lambda,
            gamma=self.gamma,
            min_child_weight=self.min_child_weight,
            subsample=self.subsample,
            colsample_bytree=self.colsample,
            max_bins=self.max_bins,
        )

    @property
    def round_steps(self) -> int:
        """The local steps a round asks for: ``local_steps``, or 0 when epochs are set."""
        return 0 if self.local_epochs else self.local_steps

    @model_validator(mode="after")
    def _patience_needs_validation(self) -> Self:
        if self.patience and not self.selects_best_round:
            raise ValueError(
                f"patience {self.patience} needs validation parts (validation-fraction > 0): "
                "early stopping watches the validation AUC"
            )
        return self

    @property
    def scaling(self) -> ScoreScaling:
        """The scorecard's scaling: ``pdo``, ``base_score``, ``base_odds``."""
        from credit.governance.scorecard import ScoreScaling

        return ScoreScaling(pdo=self.pdo, base_score=self.base_score, base_odds=self.base_odds)

    @property
    def builds_scorecard(self) -> bool:
        """Whether the run ends with a scorecard: a logistic regression on WoE inputs."""
        return self.encoding is EncodingKind.WOE and self.model is ModelKind.LOGREG

    @property
    def announced_rounds(self) -> int:
        """Rounds the banks are told to plan their privacy budget for."""
        return self.planned_rounds if self.planned_rounds is not None else self.rounds

    def evaluates(self, server_round: int, *, private: bool) -> bool:
        """Whether the model of ``server_round`` is scored (the last round's always is).

        ``private``: whether the banks train under privacy budgets (the default
        cadence then scores the last round's model only).
        """
        every = self.evaluate_every if self.evaluate_every != AUTOMATIC else int(not private)
        if server_round >= self.rounds:
            return True
        return every > 0 and server_round % every == 0

    @property
    def selects_best_round(self) -> bool:
        """Whether the rounds are scored on the banks' validation parts and the best kept."""
        return self.validation_fraction > 0

    def announced_evaluations(self, *, private: bool) -> int:
        """Evaluations the banks are told to plan their held-out rows' budget for.

        Without a validation part: one per round the cadence scores (the last always).
        With one: one per round before the last that the cadence scores, the last
        round's too if there is any such round (else there is nothing to choose
        between), and the final evaluation of the selected model.
        """
        rounds = self.announced_rounds
        if not self.selects_best_round:
            return sum(
                1 for r in range(1, rounds + 1) if r == rounds or self.evaluates(r, private=private)
            )
        earlier = sum(1 for r in range(1, rounds) if self.evaluates(r, private=private))
        return earlier + (1 if earlier else 0) + 1

    def digest(self) -> str:
        """SHA-256 (hex) of what the run does: canonical JSON of :meth:`to_flower`.

        Where it writes (``out-dir``, ``audit-key``) and whether it resumes are left
        out, so a resumed run keeps its digest; both sides record it in their audit logs.
        """
        import hashlib
        import json

        settings = {k: v for k, v in self.to_flower().items() if k not in _NOT_DIGESTED}
        canonical = json.dumps(settings, sort_keys=True, separators=(",", ":"), allow_nan=False)
        return hashlib.sha256(canonical.encode()).hexdigest()

    @field_validator(
        "proximal_mu",
        "server_learning_rate",
        "server_momentum",
        "server_beta1",
        "server_beta2",
        "server_tau",
    )
    @classmethod
    def _option_of_the_strategy(cls, value: float, info: ValidationInfo) -> float:
        strategy, name = info.data.get("strategy"), info.field_name
        if strategy is None or name is None:  # the strategy itself was refused
            return value
        problem = misplaced_option(strategy, name, value, cls.model_fields[name].default)
        if problem is not None:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _strategy_is_not_plain_fedavg(self) -> Self:
        problem = plain_fedavg_problem(
            self.strategy,
            proximal_mu=self.proximal_mu,
            server_momentum=self.server_momentum,
            server_learning_rate=self.effective_server_learning_rate,
        )
        if problem is not None:
            raise ValueError(problem)
        return self

    @property
    def effective_server_learning_rate(self) -> float:
        """The server step size: ``server_learning_rate``, or the strategy's Flower default
        (0.0 for a strategy without a server step)."""
        return server_learning_rate_of(self.strategy, self.server_learning_rate)

    @property
    def round_proximal_mu(self) -> float:
        """The mu each train message carries: ``proximal_mu`` under FedProx, else 0."""
        return self.proximal_mu if self.strategy is Strategy.FEDPROX else 0.0

    @field_validator("hidden_sizes", mode="before")
    @classmethod
    def _parse_hidden(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return tuple(int(part) for part in value.split(",") if part.strip())
            except ValueError as exc:
                raise ValueError(
                    f"expected comma-separated integers like '64,32'; got '{value}'"
                ) from exc
        return value

    @field_validator("audit_key")
    @classmethod
    def _key_outside_outputs(cls, value: str, info: ValidationInfo) -> str:
        out_dir = info.data.get("out_dir")
        if value and out_dir is not None:
            outputs = Path(out_dir).expanduser().resolve()
            if Path(value).expanduser().resolve().is_relative_to(outputs):
                raise ValueError(
                    f"must lie outside the run's output folder {outputs}, where whoever can "
                    "change the run's outputs could replace the key (leave it unset for the "
                    f"per-user key); got '{value}'"
                )
        return value

    @field_validator("score_bins")
    @classmethod
    def _even_bins(cls, value: int) -> int:
        if value % 2:
            raise ValueError(f"must be even so that 0.5 is a bin edge; got {value}")
        return value

    @field_validator("decision_cutoff")
    @classmethod
    def _cutoff_on_the_score_grid(cls, value: float, info: ValidationInfo) -> float:
        bins = info.data.get("score_bins")
        if bins is not None and abs(value * bins - round(value * bins)) > _ON_GRID:
            raise ValueError(
                f"must be a multiple of 1/score-bins = 1/{bins} (a score-bin edge, the only "
                f"cut-off banks accept), e.g. {round(value * bins) / bins:g}; got {value:g}"
            )
        return value

    @classmethod
    def from_flower(cls, run_config: Mapping[str, Any]) -> RunConfig:
        """Parse Flower's ``context.run_config`` (hyphenated keys)."""
        spelled = {_FLOWER_RENAMES.get(key, key.replace("-", "_")): key for key in run_config}
        fields = {name: run_config[key] for name, key in spelled.items()}
        return cls.build(fields, source="run config", spelled=spelled)

    @classmethod
    def build(
        cls,
        fields: Mapping[str, Any],
        *,
        source: str,
        spelled: Mapping[str, str] | None = None,
    ) -> RunConfig:
        """Validate fields, turning pydantic errors into one-line :class:`ConfigError`.

        ``spelled`` maps field names back to the keys as the user wrote them, so the
        error names ``num-server-rounds`` rather than ``rounds``.
        """
        return validate_fields(cls, fields, source=source, spelled=spelled)

    def to_flower(self) -> dict[str, Any]:
        """The hyphenated form used in ``run_config`` and ``metrics.json``."""
        data = self.model_dump(mode="json", by_alias=True)
        data["hidden-sizes"] = ",".join(str(h) for h in self.hidden_sizes)
        data.pop("hidden_sizes")
        renamed = {v: k for k, v in _FLOWER_RENAMES.items()}
        # Flower config values are scalars: unset optional fields are left out.
        return {renamed.get(k, k.replace("_", "-")): v for k, v in data.items() if v is not None}
