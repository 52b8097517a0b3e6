"""Scorecard points, scores and reason codes from a logistic regression on WoE inputs.

The model is a logistic regression on WoE-encoded inputs: with intercept ``alpha``,
one coefficient ``beta_j`` per feature (characteristic) ``j`` and ``WoE_ij`` the WoE
of bin ``i`` of feature ``j`` (:mod:`credit.governance.woe`),
``ln(p_default / (1 - p_default)) = alpha + sum_j beta_j * WoE_j(bin)``.

Points follow the conventional scaling (Siddiqi, *Credit Risk Scorecards*, 2006,
ch. 10): a score of ``base_score`` means odds (good:bad) of ``base_odds``, and every
``pdo`` points double the odds. With ``factor = pdo / ln 2``,
``offset = base_score - factor * ln(base_odds)`` and ``n`` features::

    points_ij = -(beta_j * WoE_ij + alpha / n) * factor + offset / n

so an applicant's unrounded score (the sum of their bins' points) is
``offset + factor * ln((1 - p_default) / p_default)``, exactly the model's
probability on the log-odds scale; a higher score means a lower risk. The scorecard
shows integer points (each bin's points rounded to the nearest integer, halves to
even); an integer score is the sum of integer points and differs from the unrounded
score by at most ``n / 2``.

Reason codes follow PMML's scorecard (``reasonCodeAlgorithm="pointsBelow"`` with
``baselineMethod="max"``, DMG PMML 4.4): a characteristic's baseline is its largest
integer points, an applicant loses ``baseline - points`` on it, and the reasons are
the characteristics with the largest losses.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from credit.errors import ConfigError
from credit.governance.woe import WoeTable

__all__ = [
    "SCORECARD_COLUMNS",
    "Characteristic",
    "ReasonCode",
    "ScoreScaling",
    "Scorecard",
    "build_scorecard",
    "reason_codes",
    "write_scorecard_csv",
]

SCORECARD_COLUMNS = ("feature", "bin", "woe", "coefficient", "points")
"""Columns of ``scorecard.csv``, in order."""


def _positive(name: str, value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"{name} must be a finite number > 0; got {value}")


@dataclass(frozen=True)
class ScoreScaling:
    """How log-odds become points.

    Attributes
    ----------
    pdo : float, default 20
        Points to double the odds; finite, > 0.
    base_score : float, default 600
        The score at which the odds (good:bad) equal ``base_odds``; finite.
    base_odds : float, default 50
        Odds of not defaulting at ``base_score`` (50 means 50:1); finite, > 0.
    """

    pdo: float = 20.0
    base_score: float = 600.0
    base_odds: float = 50.0

    def __post_init__(self) -> None:
        _positive("pdo", self.pdo)
        _positive("base_odds", self.base_odds)
        if not math.isfinite(self.base_score):
            raise ConfigError(f"base_score must be a finite number; got {self.base_score}")

    @property
    def factor(self) -> float:
        """Points per unit of log-odds: ``pdo / ln 2``."""
        return self.pdo / math.log(2.0)

    @property
    def offset(self) -> float:
        """The score at even odds: ``base_score - factor * ln(base_odds)``."""
        return self.base_score - self.factor * math.log(self.base_odds)

    def score_from_probability(self, probability_of_default: ArrayLike) -> NDArray[np.float64]:
        """``offset + factor * ln((1 - p) / p)`` for probabilities of default in (0, 1)."""
        p = np.asarray(probability_of_default, dtype=np.float64)
        score: NDArray[np.float64] = self.offset + self.factor * np.log((1.0 - p) / p)
        return score


@dataclass(frozen=True, eq=False)  # holds arrays: compared by identity
class Characteristic:
    """One feature's rows of the scorecard.

    Attributes
    ----------
    table : WoeTable
        The feature's WoE table (bins, labels, WoE).
    coefficient : float
        The feature's coefficient ``beta_j`` on its WoE.
    raw_points : numpy.ndarray of float64
        Unrounded points per bin.
    points : numpy.ndarray of int64
        Integer points per bin (``raw_points`` rounded, halves to even).
    """

    table: WoeTable
    coefficient: float
    raw_points: NDArray[np.float64]
    points: NDArray[np.int64]

    @property
    def feature(self) -> str:
        """The feature name."""
        return self.table.feature


@dataclass(frozen=True, eq=False)  # holds arrays: compared by identity
class Scorecard:
    """Points per bin for every characteristic, and scoring by bin indices.

    Build it with :func:`build_scorecard`. Methods that score take ``bin_indices`` of
    shape ``(n_applicants, n_characteristics)``: column ``j`` holds each applicant's
    bin (in layout order) of characteristic ``j``.
    """

    intercept: float
    scaling: ScoreScaling
    characteristics: tuple[Characteristic, ...]

    @property
    def features(self) -> tuple[str, ...]:
        """The characteristics' feature names, in order."""
        return tuple(item.feature for item in self.characteristics)

    def to_frame(self) -> pd.DataFrame:
        """The scorecard table: one row per bin, columns :data:`SCORECARD_COLUMNS`."""
        parts = [
            pd.DataFrame(
                {
                    "feature": item.feature,
                    "bin": list(item.table.labels),
                    "woe": item.table.woe,
                    "coefficient": item.coefficient,
                    "points": item.points,
                }
            )
            for item in self.characteristics
        ]
        return pd.concat(parts, ignore_index=True)[list(SCORECARD_COLUMNS)]

    def log_odds(self, bin_indices: ArrayLike) -> NDArray[np.float64]:
        """The model's log-odds of default, ``alpha + sum_j beta_j * WoE_j``."""
        indices = self._checked(bin_indices)
        total = np.full(indices.shape[0], self.intercept)
        for j, item in enumerate(self.characteristics):
            total += item.coefficient * item.table.woe[indices[:, j]]
        return total

    def probability_of_default(self, bin_indices: ArrayLike) -> NDArray[np.float64]:
        """The model's probability of default."""
        # 1 / (1 + exp(-log_odds)), computed without overflow.
        probability: NDArray[np.float64] = np.exp(-np.logaddexp(0.0, -self.log_odds(bin_indices)))
        return probability

    def score(self, bin_indices: ArrayLike) -> NDArray[np.float64]:
        """Unrounded scores: sums of unrounded points (the model's log-odds, rescaled)."""
        indices = self._checked(bin_indices)
        total: NDArray[np.float64] = np.column_stack(
            [item.raw_points[indices[:, j]] for j, item in enumerate(self.characteristics)]
        ).sum(axis=1)
        return total

    def integer_score(self, bin_indices: ArrayLike) -> NDArray[np.int64]:
        """Integer scores: sums of integer points (within ``n / 2`` of :meth:`score`)."""
        total: NDArray[np.int64] = self.points_matrix(bin_indices).sum(axis=1)
        return total

    def points_matrix(self, bin_indices: ArrayLike) -> NDArray[np.int64]:
        """Integer points per applicant (row) and characteristic (column)."""
        indices = self._checked(bin_indices)
        return np.column_stack(
            [item.points[indices[:, j]] for j, item in enumerate(self.characteristics)]
        ).astype(np.int64)

    def _checked(self, bin_indices: ArrayLike) -> NDArray[np.int64]:
        indices = np.asarray(bin_indices)
        n = len(self.characteristics)
        if indices.ndim != 2 or indices.shape[1] != n:
            raise ValueError(
                f"bin indices must have shape (n_applicants, {n}), one column per "
                f"characteristic ({', '.join(self.features)}); got shape {indices.shape}"
            )
        if indices.size and not np.issubdtype(indices.dtype, np.integer):
            raise ValueError(f"bin indices must be integers; got dtype {indices.dtype}")
        for j, item in enumerate(self.characteristics):
            n_bins = item.table.counts.layout.n_bins
            outside = np.flatnonzero((indices[:, j] < 0) | (indices[:, j] >= n_bins))
            if outside.size:
                raise ValueError(
                    f"feature '{item.feature}': bin index {indices[outside[0], j]} of "
                    f"applicant {outside[0]} is outside 0..{n_bins - 1}"
                )
        return indices.astype(np.int64)


def build_scorecard(
    tables: Sequence[WoeTable],
    *,
    coefficients: Mapping[str, float],
    intercept: float,
    scaling: ScoreScaling | None = None,
) -> Scorecard:
    """Points per bin from a logistic regression on WoE inputs.

    Parameters
    ----------
    tables : sequence of WoeTable
        One per characteristic, in the order of the scorecard (and of the columns of
        the bin indices it scores).
    coefficients : mapping of str to float
        ``beta_j`` per feature name: exactly the tables' features.
    intercept : float
        ``alpha``, the model's intercept.
    scaling : ScoreScaling, optional
        ``pdo``, ``base_score`` and ``base_odds``; the defaults 20, 600 and 50.

    Raises
    ------
    ValueError
        No tables, a feature twice, coefficients that do not match the tables'
        features, or a non-finite coefficient or intercept.
    """
    chosen = scaling if scaling is not None else ScoreScaling()
    features = [table.feature for table in tables]
    if not features or len(set(features)) != len(features):
        raise ValueError(f"a scorecard needs one WoE table per distinct feature; got {features}")
    missing = [name for name in features if name not in coefficients]
    extra = [name for name in coefficients if name not in features]
    if missing or extra:
        raise ValueError(
            f"coefficients must name exactly the tables' features; missing {missing}, "
            f"unexpected {extra}"
        )
    values = {"intercept": intercept} | {f"coefficient of '{n}'": coefficients[n] for n in features}
    for name, value in values.items():
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite; got {value}")
    share = intercept / len(tables)
    characteristics = []
    for table in tables:
        beta = float(coefficients[table.feature])
        raw = -(beta * table.woe + share) * chosen.factor + chosen.offset / len(tables)
        characteristics.append(
            Characteristic(
                table=table, coefficient=beta, raw_points=raw, points=np.rint(raw).astype(np.int64)
            )
        )
    return Scorecard(
        intercept=float(intercept), scaling=chosen, characteristics=tuple(characteristics)
    )


def write_scorecard_csv(scorecard: Scorecard, path: Path | str) -> Path:
    """Write ``scorecard.csv`` (columns :data:`SCORECARD_COLUMNS`); return its path."""
    target = Path(path)
    scorecard.to_frame().to_csv(target, index=False)
    return target


@dataclass(frozen=True)
class ReasonCode:
    """One reason an applicant scored lower than the best possible.

    Attributes
    ----------
    code : str
        The characteristic's feature name (stable across runs and scorecards).
    points_lost : int
        The characteristic's largest integer points minus the applicant's (> 0).
    text : str
        ``"<description>: <bin label>"``, for an adverse-action notice.
    """

    code: str
    points_lost: int
    text: str


def reason_codes(
    scorecard: Scorecard,
    bin_indices: ArrayLike,
    *,
    top_k: int = 4,
    descriptions: Mapping[str, str] | None = None,
) -> tuple[tuple[ReasonCode, ...], ...]:
    """Each applicant's top reasons: the characteristics that cost the most points.

    Parameters
    ----------
    scorecard : Scorecard
        The scorecard the applicants were scored with.
    bin_indices : array-like of int, shape (n_applicants, n_characteristics)
        Each applicant's bins, as for :meth:`Scorecard.score`.
    top_k : int, default 4
        Most reasons per applicant (>= 1); four is the usual number an
        adverse-action notice gives.
    descriptions : mapping of str to str, optional
        A readable description per feature (e.g. the schema's ``description``); the
        feature name where none is given.

    Returns
    -------
    tuple of tuple of ReasonCode
        Per applicant, up to ``top_k`` reasons ordered by points lost (largest
        first; ties in the scorecard's characteristic order). A characteristic on
        which the applicant loses nothing is never a reason.
    """
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ConfigError(f"top_k must be an integer >= 1; got {top_k!r}")
    points = scorecard.points_matrix(bin_indices)
    indices = scorecard._checked(bin_indices)
    baseline = np.array([item.points.max() for item in scorecard.characteristics])
    lost = baseline[np.newaxis, :] - points
    order = np.argsort(-lost, axis=1, kind="stable")[:, :top_k]
    names = descriptions or {}
    texts = [
        [f"{names.get(item.feature, item.feature)}: {label}" for label in item.table.labels]
        for item in scorecard.characteristics
    ]
    return tuple(
        tuple(
            ReasonCode(
                code=scorecard.features[j],
                points_lost=int(lost[row, j]),
                text=texts[j][indices[row, j]],
            )
            for j in order[row]
            if lost[row, j] > 0
        )
        for row in range(points.shape[0])
    )
