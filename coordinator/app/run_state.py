"""What a run produced, as the coordinator keeps it: banks, round results, the state."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flwr.app import ArrayRecord

from credit.encoding import FeatureEncoder
from credit.metrics import CreditMetrics
from credit.models import ModelSpec
from credit.run_config import RunConfig
from credit.schema import DatasetSchema

__all__ = ["BankInfo", "RoundResult", "RunState"]


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
    dropped: tuple[str, ...] = ()
    aborted: str | None = None


@dataclass
class RunState:
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
    secure_aggregation: dict[str, Any] | None = None
