"""What the coordinator asks of a bank: the ``config`` record of every request.

Every request carries the run's instructions; a query adds its :class:`Task`, and
train and evaluate messages add the round's settings, the encoder and the model
architecture (the weights travel in the ``arrays`` record). A train message may also
ask the bank to score the model it carries (:class:`EvaluateRequest`, its own
``evaluate`` record). Secure-aggregation records are in :mod:`credit.messages.secagg`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Self

from pydantic import Field, model_validator

from credit import message_keys
from credit.encoding import FeatureEncoder
from credit.feature_stats import MAX_GRID_BINS
from credit.messages._parts import AS_JSON, ConfigPart, from_json
from credit.metrics import MAX_SCORE_BINS
from credit.model_spec import ModelSpec
from credit.run_config import RunConfig

__all__ = [
    "EvaluateRequest",
    "EvaluationRows",
    "GovernanceRequest",
    "QueryInstructions",
    "RoundInstructions",
    "RunInstructions",
    "Task",
]


class Task(StrEnum):
    """What a query message asks a bank to do."""

    FEATURE_STATS = "feature-stats"
    """Join a new run: aggregates of the training rows for the encoder (in the clear,
    or, with secure aggregation's inputs in the message, as the input of secure round 0)."""
    JOIN = "join"
    """Join a new run without a data release (the encoder comes from public bounds, or
    the aggregates follow in secure round 0)."""
    ENROLL = "enroll"
    """Rejoin a resumed run: name and row counts, no data release."""
    STABILITY = "stability"
    """Stability monitoring: the bank's counts of its later file on the development
    model's bins (in the clear, or, with secure aggregation's inputs in the message, as
    the input of a secure sum); see :class:`~credit.messages.stability.StabilityRequest`."""
    GBDT_LEVEL = "gbdt-level"
    """Federated boosting: one tree level's histograms of the bank's training rows (in
    the clear, or masked as the input of that level's secure sum); see
    :mod:`credit.messages.gbdt`."""
    GBDT_EVALUATE = "gbdt-evaluate"
    """Federated boosting: score the finished ensemble on the bank's held-out rows (score
    histograms and sums, never scores; in the clear or masked)."""
    SECAGG_ADVERTISE = "secagg-advertise"
    """Secure aggregation: masking keys and sealed shares for a round."""
    SECAGG_CONSISTENCY = "secagg-consistency"
    """Secure aggregation: sign the round's survivor set (the consistency check)."""
    SECAGG_UNMASK = "secagg-unmask"
    """Secure aggregation: the shares the coordinator needs to unmask a round's sum."""


class EvaluationRows(StrEnum):
    """Which of a bank's rows an evaluation scores."""

    VALIDATION = "validation"
    """The bank's validation part: the run's per-round evaluations (model selection)."""
    TEST = "test"
    """The held-out rows: the selected model's final evaluation (and governance release)."""


class RunInstructions(ConfigPart):
    """The run's settings, carried in every request (the ``config`` record).

    Parameters
    ----------
    run_name : str
        The consortium's name of the run ('' = Flower's run id); banks key their
        privacy plan by it, so a resumed run keeps its plan.
    schema_hash : str
        The dataset schema's canonical hash; a bank refuses a run of another schema.
    test_fraction : float
        Share of each bank's rows held out as its test split, in (0, 1).
    validation_fraction : float
        Share of each bank's training rows kept as its validation part, in [0, 1)
        (0: none); a bank refuses a run that names another than its own.
    seed : int
        Seeds the hold-out and shuffles.
    planned_rounds : int
        Rounds the banks plan their privacy budget for, >= 1.
    planned_evaluations : int
        Evaluations of held-out rows the banks plan their privacy budget for, >= 1
        (a bank with a budget refuses those past what its budget allows).
    local_epochs : int
        Local epochs per round, >= 0 (0: ``local_steps``).
    local_steps : int
        Local SGD steps per round, >= 0 (0: ``local_epochs``); exactly one of the two
        is > 0.
    batch_size : int
        Local (expected) batch size, >= 1.
    max_grad_norm : float
        DP-SGD per-sample clipping norm, > 0.
    """

    RECORD = message_keys.CONFIG

    run_name: str
    schema_hash: str = Field(min_length=1)
    test_fraction: float = Field(gt=0, lt=1)
    validation_fraction: float = Field(default=0.0, ge=0, lt=1)
    seed: int
    planned_rounds: int = Field(ge=1)
    planned_evaluations: int = Field(ge=1)
    local_epochs: int = Field(ge=0)
    local_steps: int = Field(default=0, ge=0)
    batch_size: int = Field(ge=1)
    max_grad_norm: float = Field(gt=0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _epochs_or_steps(self) -> Self:
        if (self.local_epochs > 0) == (self.local_steps > 0):
            raise ValueError(
                "exactly one of local-epochs and local-steps must be > 0; got "
                f"local-epochs {self.local_epochs}, local-steps {self.local_steps}"
            )
        return self

    @classmethod
    def of_run(cls, config: RunConfig, schema_hash: str, *, planned_evaluations: int) -> Self:
        """The settings of a run with ``config`` that every message to a bank carries."""
        return cls(
            run_name=config.run_name,
            schema_hash=schema_hash,
            test_fraction=config.test_fraction,
            validation_fraction=config.validation_fraction,
            seed=config.seed,
            planned_rounds=config.announced_rounds,
            planned_evaluations=planned_evaluations,
            local_epochs=config.local_epochs,
            local_steps=config.round_steps,
            batch_size=config.batch_size,
            max_grad_norm=config.max_grad_norm,
        )

    def run_key(self, flower_run_id: int) -> str:
        """The name the bank files this run under: ``run_name``, else Flower's run id."""
        return self.run_name or str(flower_run_id)

    def run_settings(self) -> RunInstructions:
        """Only the run's settings (without what a subclass adds for a query or round)."""
        return RunInstructions.model_validate(
            self.model_dump(include=set(RunInstructions.model_fields))
        )

    def query(self, task: Task, *, grid_bins: int = 0, server_round: int = 0) -> QueryInstructions:
        """A query of this run for ``task``."""
        return QueryInstructions(
            **self.run_settings().model_dump(),
            task=task,
            grid_bins=grid_bins,
            server_round=server_round,
        )


class QueryInstructions(RunInstructions):
    """A query: the run's settings and the task.

    Parameters
    ----------
    task : Task
        What the bank is asked to do.
    grid_bins : int
        ``feature-stats`` only: bins of the public histogram grid, >= 2.
    server_round : int
        ``secagg-unmask`` only: the round whose sum is unmasked.
    """

    task: Annotated[Task, Field(strict=False)]
    grid_bins: int = Field(default=0, ge=0, le=MAX_GRID_BINS)
    server_round: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _task_fields(self) -> Self:
        if self.task == Task.FEATURE_STATS and self.grid_bins < 2:
            raise ValueError(f"a feature-stats query needs grid-bins >= 2; got {self.grid_bins}")
        return self


class RoundInstructions(RunInstructions):
    """A train or evaluate message: the run's settings and the round's.

    Parameters
    ----------
    server_round : int
        The round, >= 1.
    learning_rate : float
        Local SGD step size, > 0.
    score_bins : int
        Bins of the score histograms a bank releases for evaluation (even, >= 2).
    encoder : FeatureEncoder
        The run's feature encoder (JSON on the wire).
    model_spec : ModelSpec
        The model's architecture (JSON on the wire).
    proximal_mu : float, default 0.0
        FedProx's mu, >= 0 and finite: the bank adds ``proximal_mu / 2 * ||w -
        w_global||^2`` to its local loss (0: plain local training). A bank refuses a
        mu above its own bound (:class:`participant.guard.settings.TrainingPolicy`).
    """

    server_round: int = Field(ge=1)
    learning_rate: float = Field(gt=0, allow_inf_nan=False)
    proximal_mu: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    score_bins: int = Field(ge=2, le=MAX_SCORE_BINS)
    encoder: Annotated[FeatureEncoder, from_json(FeatureEncoder), AS_JSON]
    model_spec: Annotated[ModelSpec, from_json(ModelSpec), AS_JSON]

    @model_validator(mode="after")
    def _even_bins(self) -> Self:
        if self.score_bins % 2:
            raise ValueError(f"score-bins must be even; got {self.score_bins}")
        return self


class EvaluateRequest(ConfigPart):
    """Asks a bank to score the global model of a train message before it trains on it.

    That model is the result of the round before the train message's: round r's
    train message carries round r - 1's model, so its evaluation is round r - 1's
    metrics and costs no exchange of its own. The bank answers in its train reply (or
    its refusal) under the ``evaluation`` and ``evaluation-scores`` records.

    An evaluate message may carry one too, to name the rows it scores (without one:
    the held-out rows).

    Parameters
    ----------
    server_round : int
        The round whose model is scored (the train message's round - 1), >= 1.
    rows : EvaluationRows, default ``test``
        The rows scored: the bank's validation part, or its held-out rows.
    """

    RECORD = message_keys.EVALUATE

    server_round: int = Field(ge=1)
    rows: Annotated[EvaluationRows, Field(strict=False)] = EvaluationRows.TEST


class GovernanceRequest(ConfigPart):
    """Asks a bank, in the evaluate message of a run's last model, for its governance release.

    The bank adds to its evaluation its calibration sums and the fairness sums of
    every protected column of its schema (:mod:`credit.governance.release`); the
    groups and the score bins are the bank's schema's and the run's, never the
    message's. The bank refuses more calibration bins than its policy releases, a
    cut-off off the run's score-bin grid, and a second governance release of a run
    (under a privacy budget).

    Parameters
    ----------
    calibration_bins : int
        Equal-width probability bins of the calibration sums, >= 1.
    decision_cutoff : float
        Decline when the predicted default probability is >= this, in [0, 1].
    """

    RECORD = message_keys.GOVERNANCE

    calibration_bins: int = Field(ge=1, le=MAX_SCORE_BINS)
    decision_cutoff: float = Field(ge=0, le=1, allow_inf_nan=False)
