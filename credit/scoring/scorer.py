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
* reasons: the top-k features by points lost (:mod:`credit.scoring.reasons`; boosted
  trees: their TreeSHAP contributions, :mod:`credit.scoring.trees`);
* bins: each row's bin per model input feature, for drift counts.

Rows must be validated first (:func:`credit.scoring.check_applicants`): the scorer
takes typed rows with NaN where the schema allows missing values.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from credit.encoding import EncodingKind
from credit.errors import ConfigError
from credit.gbdt import BoostedModel, contribution_tables
from credit.governance.scorecard import Scorecard
from credit.model_card import CreditModel
from credit.model_spec import ModelKind
from credit.package import ModelPackage
from credit.scoring.applicants import check_applicants
from credit.scoring.binning import FeatureBinner, bin_inputs
from credit.scoring.network import ROW_BLOCK, RowwiseNetwork
from credit.scoring.reasons import Occlusion, ReasonTable, feature_inputs, top_reasons
from credit.scoring.trees import tree_scores
from credit.validation import ValidationReport

__all__ = ["SCORING_THREADS", "Reason", "ScoredRows", "Scorer"]

SCORING_THREADS = min(4, os.cpu_count() or 1)
"""Threads that score an MLP's blocks of rows together (a call of more than one block)."""


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
        Points the applicant's value costs against the feature's best (> 0); for
        boosted trees, against the expected margin (its TreeSHAP contribution).
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

    Everything that depends on the package alone (each bin's first-layer
    contribution, the reason texts, the scorecard's points, each feature's lowest
    attainable contribution) is computed once here, so a call for a few rows costs
    little more than the arithmetic of those rows.

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
        encoder = model.encoder
        self._scaling = package.scoring.scaling.scaling()
        self._inputs = feature_inputs(encoder, package.schema)
        self._binner = FeatureBinner(encoder)
        standardized = encoder.kind is EncodingKind.STANDARDIZED
        self._trees = model if isinstance(model, BoostedModel) else None
        self._tables = None if self._trees is None else contribution_tables(self._trees.ensemble)
        self._network = (
            None
            if isinstance(model, BoostedModel)
            else RowwiseNetwork(
                model.module, self._inputs, bin_blocks=bin_inputs(encoder), z_scores=standardized
            )
        )
        self._features = tuple(item.name for item in self._inputs)
        self._numeric = {e.name: e for e in encoder.numeric} if standardized else {}
        self._reason_features = self._features
        self._scorecard_lost: tuple[NDArray[np.float64], ...] = ()
        self._scorecard_points: tuple[NDArray[np.int64], ...] = ()
        if package.scorecard is not None:
            self._use_scorecard(package.scorecard)
        descriptions = package.scoring.descriptions
        self._descriptions = {name: descriptions.get(name, name) for name in self._reason_features}
        self._label_texts = {
            name: np.array(
                [f"{self._descriptions[name]}: {label}" for label in self._labels(name)],
                dtype=object,
            )
            for name in self._reason_features
        }
        self._lowest: NDArray[np.float64] | None = None
        self._occlusion: Occlusion | None = None
        if isinstance(model, CreditModel) and self._network is not None:
            self._network_reasons(model, self._network)

    def _network_reasons(self, model: CreditModel, network: RowwiseNetwork) -> None:
        """An MLP's occlusion, or a logistic regression's lowest contributions."""
        if model.spec.kind is not ModelKind.LOGREG:
            self._occlusion = Occlusion(network.layers, self._inputs)
        elif self.package.scorecard is None:  # a scorecard's points lost are its own
            weights = model.module.state_dict()["0.weight"].double().numpy().reshape(-1)
            self._lowest = np.array(
                [(i.alternatives @ weights[i.start : i.stop]).min() for i in self._inputs]
            )
        model.module.eval()

    def _use_scorecard(self, scorecard: Scorecard) -> None:
        """The scorecard's integer points and points lost per bin, checked against the bins."""
        encoder = self.package.model.encoder
        widths = {e.name: e.width for e in encoder.numeric}
        widths.update({e.name: e.width for e in encoder.categorical})
        for item in scorecard.characteristics:
            if widths.get(item.feature) != item.points.size:
                raise ValueError(
                    f"scorecard characteristic '{item.feature}' has {item.points.size} bins; "
                    f"the encoder has {widths.get(item.feature)}: the package is inconsistent"
                )
        self._reason_features = scorecard.features
        self._scorecard_points = tuple(
            item.points.astype(np.int64) for item in scorecard.characteristics
        )
        self._scorecard_lost = tuple(
            (item.points.max() - item.points).astype(np.float64)
            for item in scorecard.characteristics
        )

    def validate(self, raw: pd.DataFrame, *, source: str = "applicants") -> ValidationReport:
        """Every violation of a frame of applicant cells (strings) against the schema."""
        return check_applicants(raw, self.package.schema, source=source).report

    def score(self, rows: pd.DataFrame | Mapping[str, ArrayLike]) -> ScoredRows:
        """Score validated rows (schema dtypes, NaN where missing values are allowed).

        Parameters
        ----------
        rows : pandas.DataFrame or mapping of str to array
            The validated rows: a frame (:func:`credit.scoring.check_applicants`), or
            one array per model input feature typed alike (a service's path without
            pandas); both give the same results, bit for bit.

        Raises
        ------
        ValueError
            A value the encoder has no bin for: the rows were not validated.
        """
        columns = self._binner.columns(rows)
        bins = self._binner.bins(columns)
        ordered = [bins[name] for name in self._features]
        z_scores = self._binner.z_scores(columns, bins)
        z_by_position = {self._features.index(name): z for name, z in z_scores.items()}
        if self._trees is not None:
            trees = tree_scores(
                self._trees, columns, factor=self._scaling.factor, tables=self._tables
            )
            log_odds, losses = trees.log_odds, trees.losses
        elif self._network is None:
            raise ValueError("the package holds neither a network nor trees")
        elif self._occlusion is not None:
            log_odds, losses = self._mlp(ordered, z_by_position, self._network, self._occlusion)
        else:
            contributions = self._network.contributions(ordered, z_by_position)
            log_odds = self._network.hidden_of(contributions)[:, 0]
            losses = self._linear_losses(contributions)
        probability: NDArray[np.float64] = np.exp(-np.logaddexp(0.0, -log_odds))
        if self._scorecard_points:
            score, losses = self._scorecard(bins)
        else:
            score = np.rint(self._scaling.offset - self._scaling.factor * log_odds).astype(np.int64)
        reasons = top_reasons(
            losses,
            [self._texts(name, bins[name], columns) for name in self._reason_features],
            features=self._reason_features,
            top_k=self.top_k,
        )
        return ScoredRows(
            probability=probability,
            score=score,
            decline=probability >= self.cutoff,
            reason_table=reasons,
            bins=bins,
        )

    def _mlp(
        self,
        bins: list[NDArray[np.int64]],
        z_scores: dict[int, NDArray[np.float32]],
        network: RowwiseNetwork,
        occlusion: Occlusion,
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """An MLP's log-odds and occlusion losses, :data:`ROW_BLOCK` rows at a time.

        Several blocks are worked on by :data:`SCORING_THREADS` threads (numpy's array
        work runs outside the GIL); a block's values do not depend on which thread
        computes it, nor on the other blocks.
        """
        rows = bins[0].size if bins else 0
        log_odds = np.empty(rows)
        losses = np.empty((rows, len(bins)))

        def block(start: int) -> None:
            part = slice(start, start + ROW_BLOCK)
            contributions = network.contributions(
                [b[part] for b in bins], {j: z[part] for j, z in z_scores.items()}
            )
            hidden = network.hidden_of(contributions)
            base = network.after_first(hidden)
            log_odds[part] = base
            losses[part] = occlusion.losses(
                hidden, np.stack(contributions, axis=1), base, self._scaling.factor
            )

        starts = range(0, rows, ROW_BLOCK)
        if len(starts) < 2 or SCORING_THREADS < 2:
            for start in starts:
                block(start)
        else:
            with ThreadPoolExecutor(SCORING_THREADS, thread_name_prefix="fedcredit-mlp") as pool:
                list(pool.map(block, starts))  # raises the first block's error, if any
        return log_odds, losses

    def _linear_losses(self, contributions: list[NDArray[np.float64]]) -> NDArray[np.float64]:
        """A logistic regression's points lost in closed form (:func:`linear_losses`).

        A scorecard's points lost are its own (:meth:`_scorecard`): none here.
        """
        if self._lowest is None:
            return np.zeros((contributions[0].shape[0] if contributions else 0, 0))
        rows = contributions[0].shape[0] if contributions else 0
        losses = np.hstack(contributions).reshape(rows, len(contributions)) - self._lowest
        return np.clip(self._scaling.factor * losses, 0.0, None)

    def _scorecard(
        self, bins: dict[str, NDArray[np.int64]]
    ) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        """The scorecard's integer scores and points lost (PMML pointsBelow, baseline max)."""
        rows = [bins[name] for name in self._reason_features]
        score = np.zeros(rows[0].size if rows else 0, dtype=np.int64)
        for points, index in zip(self._scorecard_points, rows, strict=True):
            score += points[index]
        lost = np.empty((score.size, len(rows)))
        for j, (table, index) in enumerate(zip(self._scorecard_lost, rows, strict=True)):
            lost[:, j] = table[index]
        return score, lost

    def _texts(
        self, name: str, bins: NDArray[np.int64], columns: Mapping[str, NDArray[Any]]
    ) -> Callable[[NDArray[np.intp]], NDArray[np.object_]]:
        """A function of row indices giving those rows' reason texts for ``name``."""
        labels = self._label_texts[name]
        numeric = self._numeric.get(name)
        if numeric is None:

            def binned(rows: NDArray[np.intp]) -> NDArray[np.object_]:
                chosen: NDArray[np.object_] = labels[bins[rows]]
                return chosen

            return binned
        description = self._descriptions[name]
        values = np.asarray(columns[name], dtype=np.float64)

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
