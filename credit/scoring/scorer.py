"""Score applicants with a verified model package: probability, score, decision, reasons.

* probability: the model's probability of default, computed row by row in float64
  (:mod:`credit.scoring.network`: a row gets the same value alone or in any batch;
  :meth:`credit.model_card.CreditModel.predict_proba`'s float32 values agree to
  float32 precision);
* score: a scorecard's integer score (the sum of its integer points), else the
  rounded ``offset - factor * log-odds`` of the package's scaling (a higher score
  means a lower risk);
* decision: decline when the probability >= the cut-off (the package's, or the one
  given);
* reasons: the top-k features by points lost (:mod:`credit.scoring.reasons`);
* bins: each row's bin per model input feature, for drift counts.

Rows must be validated first (:func:`credit.scoring.check_applicants`): the scorer
takes typed rows with NaN where the schema allows missing values.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from credit.encoding import EncodingKind, NumericEncoding
from credit.errors import ConfigError
from credit.model_spec import ModelKind
from credit.package import ModelPackage
from credit.scoring.applicants import check_applicants
from credit.scoring.network import RowwiseNetwork
from credit.scoring.reasons import (
    ReasonTable,
    feature_inputs,
    linear_losses,
    occlusion_losses,
    scorecard_losses,
    top_reasons,
)
from credit.validation import ValidationReport

__all__ = ["Reason", "ScoredRows", "Scorer"]


@dataclass(frozen=True)
class Reason:
    """One reason code.

    Attributes
    ----------
    feature : str
        The feature (stable across runs).
    text : str
        ``"<schema description or feature>: <the applicant's bin>"``.
    points_lost : float
        Points the applicant's value costs against the feature's best (> 0).
    """

    feature: str
    text: str
    points_lost: float


@dataclass(frozen=True, eq=False)  # holds arrays: compared by identity
class ScoredRows:
    """Scores of a batch of rows (module docstring).

    Attributes
    ----------
    probability : numpy.ndarray of float64
        Probability of default per row.
    score : numpy.ndarray of int64
        Integer score per row.
    decline : numpy.ndarray of bool
        ``probability >= cutoff``.
    reason_table : ReasonTable
        The top-k reasons as arrays (texts for a CSV file without per-row objects).
    bins : dict of str to numpy.ndarray of int64
        Each row's bin per model input feature.
    """

    probability: NDArray[np.float64]
    score: NDArray[np.int64]
    decline: NDArray[np.bool_]
    reason_table: ReasonTable
    bins: dict[str, NDArray[np.int64]]

    def __len__(self) -> int:
        return int(self.probability.size)

    @cached_property
    def reasons(self) -> tuple[tuple[Reason, ...], ...]:
        """Per row, its reasons, largest loss first."""
        table = self.reason_table
        features = table.features
        return tuple(
            tuple(
                Reason(features[j], str(text), float(points))
                for j, text, points in zip(index, texts, lost, strict=True)
                if j >= 0
            )
            for index, texts, lost in zip(
                table.index.tolist(), table.text.tolist(), table.points_lost.tolist(), strict=True
            )
        )


class Scorer:
    """Scores validated rows with a loaded package.

    Parameters
    ----------
    package : ModelPackage
        A package :func:`credit.package.load_package` verified and loaded.
    cutoff : float, optional
        Decline at probabilities >= this, in [0, 1]; default the package's.
    top_k : int, optional
        Reasons per row, >= 1; default the package's.

    Raises
    ------
    ConfigError
        ``cutoff`` or ``top_k`` out of range (the parameter and value named).
    """

    def __init__(
        self, package: ModelPackage, *, cutoff: float | None = None, top_k: int | None = None
    ) -> None:
        chosen_cutoff = package.scoring.cutoff if cutoff is None else cutoff
        if not (math.isfinite(chosen_cutoff) and 0.0 <= chosen_cutoff <= 1.0):
            raise ConfigError(f"must lie in [0, 1]; got {chosen_cutoff}", source="cutoff")
        chosen_top_k = package.scoring.top_k if top_k is None else top_k
        if isinstance(chosen_top_k, bool) or not isinstance(chosen_top_k, int) or chosen_top_k < 1:
            raise ConfigError(f"must be an integer >= 1; got {chosen_top_k!r}", source="top_k")
        self.package = package
        self.cutoff = float(chosen_cutoff)
        self.top_k = chosen_top_k
        model = package.model
        self._scaling = package.scoring.scaling.scaling()
        self._inputs = feature_inputs(model.encoder, package.schema)
        self._network = RowwiseNetwork(model.module, self._inputs)
        descriptions = package.scoring.descriptions
        self._label_texts = {
            name: np.array(
                [f"{descriptions.get(name, name)}: {label}" for label in self._labels(name)],
                dtype=object,
            )
            for name in self._reason_features()
        }
        self._weights: NDArray[np.float64] | None = None
        if model.spec.kind is ModelKind.LOGREG:
            weight = model.module.state_dict()["0.weight"]
            self._weights = weight.double().numpy().reshape(-1)
        model.module.eval()

    def validate(self, raw: pd.DataFrame, *, source: str = "applicants") -> ValidationReport:
        """Every violation of a frame of applicant cells (strings) against the schema."""
        return check_applicants(raw, self.package.schema, source=source).report

    def score(self, frame: pd.DataFrame) -> ScoredRows:
        """Score validated rows (schema dtypes, NaN where missing values are allowed).

        Raises
        ------
        ValueError
            A value the encoder has no bin for: the rows were not validated.
        """
        encoder = self.package.model.encoder
        bins = encoder.bin_indices(frame)
        encoded = encoder.transform(frame, bins=bins)
        log_odds = self._network.log_odds(encoded)
        probability: NDArray[np.float64] = np.exp(-np.logaddexp(0.0, -log_odds))
        scorecard = self.package.scorecard
        if scorecard is not None:
            matrix = np.column_stack([bins[name] for name in scorecard.features])
            score = scorecard.integer_score(matrix)
            losses = scorecard_losses(scorecard, matrix)
        else:
            score = np.rint(self._scaling.offset - self._scaling.factor * log_odds).astype(np.int64)
            losses = self._losses(encoded)
        reasons = top_reasons(
            losses,
            [self._texts(name, bins[name], frame) for name in self._reason_features()],
            features=self._reason_features(),
            top_k=self.top_k,
        )
        return ScoredRows(
            probability=probability,
            score=score,
            decline=probability >= self.cutoff,
            reason_table=reasons,
            bins=bins,
        )

    def _reason_features(self) -> tuple[str, ...]:
        scorecard = self.package.scorecard
        if scorecard is not None:
            return scorecard.features
        return tuple(item.name for item in self._inputs)

    def _losses(self, encoded: NDArray[np.float32]) -> NDArray[np.float64]:
        factor = self._scaling.factor
        if self._weights is not None:
            return linear_losses(encoded, self._weights, self._inputs, factor)
        return occlusion_losses(encoded, self.package.model.module, self._inputs, factor)

    def _texts(
        self, name: str, bins: NDArray[np.int64], frame: pd.DataFrame
    ) -> Callable[[NDArray[np.intp]], NDArray[np.object_]]:
        """A function of row indices giving those rows' reason texts for ``name``."""
        labels = self._label_texts[name]
        numeric = self._standardized(name)
        if numeric is None:

            def binned(rows: NDArray[np.intp]) -> NDArray[np.object_]:
                chosen: NDArray[np.object_] = labels[bins[rows]]
                return chosen

            return binned
        description = self.package.scoring.descriptions.get(name, name)
        values = frame[name].to_numpy(dtype=np.float64)

        def texts(rows: NDArray[np.intp]) -> NDArray[np.object_]:
            chosen = labels[bins[rows]]
            regular = bins[rows] < numeric.regular_bins
            chosen[regular] = [f"{description}: {value:g}" for value in values[rows][regular]]
            return chosen

        return texts

    def _labels(self, name: str) -> tuple[str, ...]:
        scorecard = self.package.scorecard
        if scorecard is not None:
            return scorecard.characteristics[scorecard.features.index(name)].table.labels
        return self.package.model.encoder.bin_labels(name)

    def _standardized(self, name: str) -> NumericEncoding | None:
        encoder = self.package.model.encoder
        if encoder.kind is not EncodingKind.STANDARDIZED:
            return None
        return next((e for e in encoder.numeric if e.name == name), None)
