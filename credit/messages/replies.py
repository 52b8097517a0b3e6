"""What a bank sends back: who it is, what it releases, and why it refuses.

Every release a bank makes is one of these parts (and, for model weights, an
``arrays`` record): aggregates of its training rows (:func:`feature_stats_to_record`),
its training metrics, its evaluation histograms and sums (in an evaluate reply, or
beside the training metrics in a train reply), its privacy-ledger summary, or a
typed refusal. The coordinator reads replies only through the
``from_*`` functions and ``take`` methods here, so a reply that breaks the contract
raises :class:`~credit.errors.MalformedMessage` and the sender is dropped.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any, Literal, Self

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from flwr.app import Array, ArrayRecord, ConfigRecord, RecordDict
from pydantic import BaseModel, ConfigDict, Field

from credit import message_keys
from credit.audit import canonical_json
from credit.errors import MalformedMessage
from credit.feature_stats import ClassCells, FeatureStats, NumericStats, vector_length
from credit.messages._parts import ConfigPart, MetricPart
from credit.metrics import ScoreSummary
from credit.records import array_of, record_of
from credit.schema import DatasetSchema

__all__ = [
    "LEDGER_SUMMARY_TYPE",
    "MAX_REFUSAL_DETAIL",
    "BankIntro",
    "Dropped",
    "EvaluationDeclined",
    "EvaluationSums",
    "LedgerEvent",
    "LedgerPlan",
    "LedgerSummary",
    "ProtocolStage",
    "Refusal",
    "TrainMetrics",
    "feature_stats_from_record",
    "feature_stats_to_record",
    "governance_sums_from_content",
    "governance_sums_to_record",
    "ledger_summary_signed_bytes",
    "score_summary_from_content",
    "score_summary_to_content",
]


MAX_ROWS = 10**9
"""Most rows a bank may report (a count beyond it is a malformed reply)."""
MAX_REFUSAL_DETAIL = 500
"""Most characters of a refusal's explanation (:attr:`Refusal.detail`)."""
_ONE_PRINTABLE_LINE = r"^[^\x00-\x1f\x7f-\x9f]*$"
"""No control characters (no line breaks, no terminal escapes)."""


class BankIntro(ConfigPart):
    """A bank's name and training-row count (public: see the README's privacy model).

    The number of held-out rows is not sent: it leaves the bank only inside its
    (summed, and under a privacy budget noisy) evaluation histograms.
    """

    RECORD = message_keys.BANK

    name: str = Field(min_length=1, max_length=200)
    n_train: int = Field(ge=0, le=MAX_ROWS)


class Refusal(ConfigPart):
    """A bank refused a request: who, which round, and the privacy arithmetic.

    A malicious bank can put anything here; the coordinator only prints and records
    it, so every text field is bounded and the explanation is one printable line.

    Parameters
    ----------
    bank : str
        The refusing bank.
    reason : str
        The refusal's kind, e.g. ``PrivacyBudgetExceeded``.
    spent, requested, maximum : float
        Epsilon spent before, epsilon it would have reached (at least), the bank's maximum.
    server_round : int
        The refused round (0 for set-up).
    detail : str, optional
        The bank's explanation in one line (at most :data:`MAX_REFUSAL_DETAIL`
        printable characters), e.g. what the set-up release and one round would cost
        when no noise fits its budget.
    """

    RECORD = message_keys.REFUSAL

    bank: str = Field(min_length=1, max_length=200)
    reason: str = Field(min_length=1, max_length=100)
    spent: float = Field(ge=0)
    requested: float
    maximum: float = Field(gt=0)
    server_round: int = Field(ge=0)
    detail: str | None = Field(
        default=None, min_length=1, max_length=MAX_REFUSAL_DETAIL, pattern=_ONE_PRINTABLE_LINE
    )

    def text(self) -> str:
        """One line for the terminal: who refused which round and why."""
        if self.detail is not None:
            return (
                f"bank '{self.bank}' refused round {self.server_round} ({self.reason}): "
                f"{self.detail}"
            )
        return (
            f"bank '{self.bank}' refused round {self.server_round} ({self.reason}: spent "
            f"{self.spent:.4f}, would reach {self.requested:.4f}, maximum {self.maximum:.4f})"
        )

    def document(self) -> dict[str, Any]:
        """The refusal as written to ``metrics.json`` and the checkpoint."""
        return self.model_dump(by_alias=True, exclude_none=True)


class LedgerEvent(BaseModel):
    """One release in a bank's ledger (see :class:`privacy.accounting.DpEvent`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    round: int = Field(ge=0)
    noise_multiplier: float = Field(gt=0)
    sample_rate: float = Field(gt=0, le=1)
    steps: int = Field(ge=1)
    max_grad_norm: float = Field(gt=0)
    kind: str
    run: str = ""
    rows: Literal["train", "test", "later"] = "train"


class LedgerPlan(BaseModel):
    """One run's noise calibration in a bank's ledger (see :class:`privacy.ledger.RunPlan`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    run: str
    kind: Literal["dp-sgd", "evaluation", "gbdt"] = "dp-sgd"
    noise_multiplier: float = Field(gt=0)
    sample_rate: float = Field(gt=0, le=1)
    steps_per_round: int = Field(ge=1)
    planned_rounds: int = Field(ge=1)
    max_grad_norm: float = Field(gt=0)
    n_train: int = Field(ge=0, le=MAX_ROWS)
    batch_size: int = Field(ge=0)
    local_epochs: int = Field(ge=0)
    local_steps: int = Field(default=0, ge=0)


LEDGER_SUMMARY_TYPE = "ledger-summary"
"""The ``type`` added to a ledger summary's fields before signing (domain separation)."""


def ledger_summary_signed_bytes(fields: Mapping[str, Any]) -> bytes:
    """The bytes a bank signs: canonical JSON of every field but ``signature``, plus ``type``.

    ``fields`` is the summary as :meth:`LedgerSummary.document` keeps it, with its
    ``bank`` added (a verifier passes the document exactly as read from disk).
    """
    payload = {key: value for key, value in fields.items() if key != "signature"}
    payload["type"] = LEDGER_SUMMARY_TYPE
    return canonical_json(payload).encode("ascii")


class LedgerSummary(ConfigPart):
    """A bank's privacy ledger as it reports it: every release, plan and the epsilon spent.

    The events and plans travel as JSON entries (Flower records hold no nested
    tables); :meth:`document` is the form kept in ``metrics.json`` and
    ``ledgers/<bank>.json``, which ``fedcredit privacy verify`` re-checks.

    Attributes
    ----------
    n_train : int
        The bank's training rows (public: the sampling rate reveals them); 0 in a
        summary written before fedcredit reported it (verify then fails its plans).
    plans : tuple of LedgerPlan
        Every run's calibration, so a verifier can check q = B / n_train and steps.
    key : str or None
        The bank's Ed25519 audit key (base64 of its 32 raw bytes); None: unsigned.
    signature : str or None
        Base64 Ed25519 signature over :func:`ledger_summary_signed_bytes` of the
        other fields; None: the bank keeps no audit key (verify reports it).
    """

    RECORD = message_keys.PRIVACY

    bank: str = Field(min_length=1)
    epsilon: float = Field(ge=0)
    delta: float = Field(gt=0, lt=1)
    max_epsilon: float = Field(gt=0)
    accountant: str
    n_train: int = Field(default=0, ge=0, le=MAX_ROWS)
    events: Annotated[tuple[LedgerEvent, ...], Field(strict=False)] = ()
    plans: Annotated[tuple[LedgerPlan, ...], Field(strict=False)] = ()
    key: str | None = None
    signature: str | None = None

    def to_record(self) -> ConfigRecord:
        """The summary as a ConfigRecord, its events and plans as JSON entries."""
        entries = self.model_dump(by_alias=True, exclude={"events", "plans"}, exclude_none=True)
        entries["events"] = json.dumps([event.model_dump() for event in self.events])
        entries["plans"] = json.dumps([plan.model_dump() for plan in self.plans])
        return ConfigRecord(entries)

    @classmethod
    def from_record(cls, record: ConfigRecord) -> Self:
        """Validate a reported summary; :class:`MalformedMessage` otherwise."""
        entries: dict[str, Any] = {key: record[key] for key in record}
        for name in ("events", "plans"):
            try:
                entries[name] = json.loads(str(entries.get(name, "[]")))
            except ValueError:
                raise MalformedMessage(f"record '{cls.RECORD}': '{name}': not JSON") from None
        return cls._parse(entries)

    @classmethod
    def from_document(cls, bank: str, document: dict[str, Any]) -> Self:
        """Inverse of :meth:`document` (a checkpoint's or a ledger's summary)."""
        return cls.model_validate({**document, "bank": bank})

    def document(self) -> dict[str, Any]:
        """Every field but ``bank``, as ``metrics.json`` and ``ledgers/<bank>.json`` keep it."""
        return self.model_dump(exclude={"bank"}, mode="json")

    def signed_bytes(self) -> bytes:
        """What the bank signs (:func:`ledger_summary_signed_bytes` of every field)."""
        return ledger_summary_signed_bytes(self.model_dump(mode="json"))

    def signed_with(self, key: Ed25519PrivateKey) -> Self:
        """This summary with ``key``'s public key and its signature over the other fields."""
        public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        keyed = self.model_copy(update={"key": _b64(public), "signature": None})
        return keyed.model_copy(update={"signature": _b64(key.sign(keyed.signed_bytes()))})


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class TrainMetrics(MetricPart):
    """What a bank reports with its update (in the clear only without secure aggregation).

    Parameters
    ----------
    num_examples : int, optional
        Training rows: the update's weight in FedAvg (absent with secure
        aggregation, where the weight is masked together with the update).
    train_loss : float, optional
        Mean training loss (banks under DP report none: it is a statistic of rows).
    epsilon : float, optional
        Epsilon spent per the bank's ledger (banks with a budget).
    """

    RECORD = message_keys.METRICS

    num_examples: int | None = Field(default=None, ge=0)
    train_loss: float | None = None
    epsilon: float | None = Field(default=None, ge=0)


class EvaluationSums(MetricPart):
    """The sums beside a bank's score histograms: Brier and (bounded) log-loss sums.

    The number of rows scored is not sent: it is the histograms' total (noisy, for a
    bank under a privacy budget).
    """

    RECORD = message_keys.METRICS

    brier_sum: float = Field(allow_inf_nan=False)
    log_loss_sum: float = Field(allow_inf_nan=False)


class EvaluationDeclined(ConfigPart):
    """A bank releases no evaluation of the model it was asked to score, and why.

    Its policy's minimum of held-out rows, or its held-out rows' privacy budget.
    """

    RECORD = message_keys.EVALUATION_DECLINED

    reason: str = Field(min_length=1, max_length=1000)


class ProtocolStage(StrEnum):
    """Where in a round a (simulated) bank can drop out."""

    ADVERTISE = "advertise"
    TRAIN = "train"
    UNMASK = "unmask"


class Dropped(ConfigPart):
    """A bank left the round at ``stage`` (sent by simulated dropouts in research runs)."""

    RECORD = message_keys.DROPPED

    stage: Annotated[ProtocolStage, Field(strict=False)]


def score_summary_to_content(
    summary: ScoreSummary,
    *,
    scores_key: str = message_keys.SCORES,
    sums_key: str = message_keys.METRICS,
) -> RecordDict:
    """A bank's evaluation: histograms in ``scores_key``, sums in ``sums_key``.

    The defaults are an evaluate reply's records; a train reply answering an
    :class:`~credit.messages.requests.EvaluateRequest` uses ``evaluation-scores`` and
    ``evaluation``, as its own ``metrics`` are its training metrics.
    """
    content = RecordDict(
        {
            scores_key: ArrayRecord(
                {
                    message_keys.POSITIVES: Array(summary.positives.astype(np.float64)),
                    message_keys.NEGATIVES: Array(summary.negatives.astype(np.float64)),
                }
            )
        }
    )
    EvaluationSums(brier_sum=summary.brier_sum, log_loss_sum=summary.log_loss_sum).put(
        content, key=sums_key
    )
    return content


def score_summary_from_content(
    content: RecordDict,
    *,
    score_bins: int,
    scores_key: str = message_keys.SCORES,
    sums_key: str = message_keys.METRICS,
) -> ScoreSummary:
    """Inverse of :func:`score_summary_to_content`, checked against the run's ``score_bins``."""
    scores = record_of(content, scores_key, ArrayRecord)
    sums = EvaluationSums.take(content, key=sums_key)
    histograms = []
    for name in (message_keys.POSITIVES, message_keys.NEGATIVES):
        histogram = array_of(scores, name, record_key=scores_key)
        _check_reals(histogram, (score_bins,), f"{scores_key}/{name}")
        histograms.append(histogram.astype(np.float64))
    return ScoreSummary(
        positives=histograms[0],
        negatives=histograms[1],
        brier_sum=sums.brier_sum,
        log_loss_sum=sums.log_loss_sum,
    )


def governance_sums_to_record(vector: np.ndarray) -> ArrayRecord:
    """A bank's governance sums in the clear (:meth:`GovernanceSums.to_vector`)."""
    return ArrayRecord({message_keys.SUMS: Array(np.asarray(vector, dtype=np.float64))})


def governance_sums_from_content(content: RecordDict, *, length: int) -> np.ndarray | None:
    """The governance sums an evaluate reply carries (None: it carries none).

    Raises :class:`MalformedMessage` unless they are ``length`` finite numbers.
    """
    if message_keys.GOVERNANCE_SUMS not in content:
        return None
    record = record_of(content, message_keys.GOVERNANCE_SUMS, ArrayRecord)
    sums = array_of(record, message_keys.SUMS, record_key=message_keys.GOVERNANCE_SUMS)
    _check_reals(sums, (length,), f"{message_keys.GOVERNANCE_SUMS}/{message_keys.SUMS}")
    return sums.astype(np.float64)


def feature_stats_to_record(stats: FeatureStats) -> ArrayRecord:
    """Pack every input's per-class counts (and a numeric input's moments) into one record.

    ``NAME/moments`` (numeric inputs: count, sum, sum of squares), ``NAME/events`` and
    ``NAME/non-events`` (counts per cell, :mod:`credit.feature_stats`).
    """
    arrays: dict[str, Array] = {}
    cells: dict[str, ClassCells] = {}
    for name, numeric in stats.numeric.items():
        moments = np.array([numeric.count, numeric.total, numeric.total_squares], dtype=np.float64)
        arrays[name + message_keys.MOMENTS_SUFFIX] = Array(moments)
        cells[name] = numeric.cells
    cells.update(stats.categorical)
    for name, counts in cells.items():
        arrays[name + message_keys.EVENTS_SUFFIX] = Array(counts.events.astype(np.float64))
        arrays[name + message_keys.NON_EVENTS_SUFFIX] = Array(counts.non_events.astype(np.float64))
    return ArrayRecord(arrays)


def feature_stats_from_record(
    record: ArrayRecord, *, schema: DatasetSchema, grid_bins: int
) -> FeatureStats:
    """Inverse of :func:`feature_stats_to_record` for the schema's model inputs."""
    template = FeatureStats.from_vector(
        np.zeros(vector_length(schema, grid_bins)), schema=schema, grid_bins=grid_bins
    )
    class_keys = (message_keys.EVENTS_SUFFIX, message_keys.NON_EVENTS_SUFFIX)
    expected = {name + message_keys.MOMENTS_SUFFIX for name in template.numeric} | {
        name + suffix
        for name in [*template.numeric, *template.categorical]
        for suffix in class_keys
    }
    if set(record) != expected:
        unexpected = sorted(set(record) ^ expected)[:3]
        raise MalformedMessage(
            f"record '{message_keys.FEATURE_STATS}' does not hold the schema's features "
            f"(first differences: {', '.join(unexpected)})"
        )
    numeric: dict[str, NumericStats] = {}
    for name, shape in template.numeric.items():
        where = f"{message_keys.FEATURE_STATS}/{name}"
        moments = array_of(record, name + message_keys.MOMENTS_SUFFIX, record_key=where)
        if moments.shape != (3,) or not np.all(np.isfinite(moments)):
            raise MalformedMessage(f"array '{where}{message_keys.MOMENTS_SUFFIX}' is not 3 numbers")
        count, total, total_squares = (float(value) for value in moments)
        numeric[name] = NumericStats(
            count=int(count),
            total=total,
            total_squares=total_squares,
            cells=_class_cells(record, name, shape.cells),
        )
    categorical = {
        name: _class_cells(record, name, shape) for name, shape in template.categorical.items()
    }
    return FeatureStats(numeric=numeric, categorical=categorical, grid_bins=grid_bins)


def _class_cells(record: ArrayRecord, name: str, shape: ClassCells) -> ClassCells:
    """One feature's per-class counts, checked against the cells ``shape`` has."""
    where = f"{message_keys.FEATURE_STATS}/{name}"
    per_class = []
    for suffix in (message_keys.EVENTS_SUFFIX, message_keys.NON_EVENTS_SUFFIX):
        counts = array_of(record, name + suffix, record_key=where)
        _check_reals(counts, shape.events.shape, where + suffix)
        per_class.append(counts.astype(np.float64))
    return ClassCells(events=per_class[0], non_events=per_class[1], regular=shape.regular)


def _check_reals(array: np.ndarray, shape: tuple[int, ...], name: str) -> None:
    """Refuse an array that is not ``shape`` finite real numbers (noisy counts may be < 0)."""
    if array.shape != shape:
        raise MalformedMessage(f"array '{name}' has shape {array.shape}, expected {shape}")
    if not np.issubdtype(array.dtype, np.number) or not np.all(np.isfinite(array)):
        raise MalformedMessage(f"array '{name}' holds values that are not finite numbers")
