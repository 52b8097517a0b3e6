"""``scoring.json``: what scoring needs beyond the model card.

The score scaling (``pdo``, ``base_score``, ``base_odds``: the run's for a scorecard
run, else :class:`~credit.governance.scorecard.ScoreScaling`'s defaults), the default
decision cut-off (the run's ``decision-cutoff``) and number of reason codes, the
reason texts (feature -> the schema's ``description``), the scorecard when the run
built one (its characteristics' WoE tables as ``metrics.json``'s ``woe_iv`` holds
them, and the integer points per bin), and the development sample's bins for drift
monitoring: the counts the run released already (:func:`development_bins`), or null
with the reason. Under privacy budgets those counts carry the banks' DP noise: each
bin stores its noise variance beside its count
(:func:`~credit.stability_noise.development_noise`, from the run's ledger
summaries; null for exact counts), which the drift flag allows for as
``fedcredit monitor --run`` does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Final, Literal, Self

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from credit.encoding import FeatureEncoder
from credit.feature_stats import DEFAULT_GRID_BINS
from credit.governance.scorecard import Scorecard, ScoreScaling
from credit.governance.stability import PopulationCounts
from credit.governance.stability_release import (
    SCORE,
    NoiseVariances,
    StabilityCounts,
    StabilityLayout,
    development_counts,
)
from credit.schema import DatasetSchema
from credit.stability_noise import development_noise

__all__ = [
    "DEFAULT_TOP_K",
    "SCORING_FORMAT",
    "DevelopmentBins",
    "FeatureBins",
    "ScalingSettings",
    "ScorecardSettings",
    "ScoringSettings",
    "development_bins",
    "scoring_settings",
]

SCORING_FORMAT: Final = "fedcredit-scoring/1"
DEFAULT_TOP_K = 4
"""Reason codes per applicant: the usual number an adverse-action notice gives."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ScalingSettings(_Frozen):
    """How log-odds become points (:class:`~credit.governance.scorecard.ScoreScaling`)."""

    pdo: float = Field(gt=0, allow_inf_nan=False)
    base_score: float = Field(allow_inf_nan=False)
    base_odds: float = Field(gt=0, allow_inf_nan=False)

    def scaling(self) -> ScoreScaling:
        """The :class:`ScoreScaling` these settings describe."""
        return ScoreScaling(pdo=self.pdo, base_score=self.base_score, base_odds=self.base_odds)


class ScorecardSettings(_Frozen):
    """The scorecard of a logistic regression on WoE inputs.

    Attributes
    ----------
    tables : dict
        Each characteristic's WoE table (``metrics.json`` ``woe_iv`` form: bins with
        events and non-events), in the encoder's feature order.
    points : dict of str to tuple of int
        Each characteristic's integer points per bin (``scorecard.csv``'s), checked
        against the weights when the package loads.
    """

    tables: dict[str, Any]
    points: dict[str, tuple[int, ...]]


Variance = Annotated[float, Field(ge=0, allow_inf_nan=False)]
"""A count's DP noise variance (rows squared)."""


class FeatureBins(_Frozen):
    """One characteristic's development bins: labels, rows per bin and their noise.

    Attributes
    ----------
    labels : tuple of str
        The bins' labels.
    counts : tuple of float
        The released rows per bin.
    noise_variance : tuple of float or None
        Each count's DP noise variance (None: exact counts).
    """

    labels: tuple[str, ...]
    counts: tuple[float, ...]
    noise_variance: tuple[Variance, ...] | None = None

    @model_validator(mode="after")
    def _one_variance_per_bin(self) -> Self:
        _check_variance(self.noise_variance, len(self.counts), "noise_variance")
        return self


def _check_variance(variance: tuple[float, ...] | None, bins: int, field: str) -> None:
    if variance is not None and len(variance) != bins:
        raise ValueError(f"{field} must give one variance per bin ({bins}); got {len(variance)}")


class DevelopmentBins(_Frozen):
    """The development sample's bins, as released by the run (module docstring).

    Attributes
    ----------
    features : dict of str to FeatureBins
        Per characteristic, in the encoder's order: the summed set-up release over
        the banks' training rows.
    score_bins : int
        Equal-width score bins on [0, 1] (the run's ``score-bins``).
    score_counts : tuple of float
        The final model's summed score histogram over the banks' held-out rows.
    score_noise_variance : tuple of float or None
        Each score count's DP noise variance (None: exact counts; then no
        characteristic's counts carry noise either).
    """

    features: dict[str, FeatureBins]
    score_bins: int = Field(ge=2)
    score_counts: tuple[float, ...]
    score_noise_variance: tuple[Variance, ...] | None = None

    @model_validator(mode="after")
    def _noise_everywhere_or_nowhere(self) -> Self:
        _check_variance(self.score_noise_variance, len(self.score_counts), "score_noise_variance")
        exact = [name for name, bins in self.features.items() if bins.noise_variance is None]
        if self.score_noise_variance is not None and exact:
            raise ValueError(f"noise_variance is missing for {', '.join(exact)}")
        if self.score_noise_variance is None and len(exact) < len(self.features):
            raise ValueError("score_noise_variance is missing while characteristics have one")
        return self

    def layout(self) -> StabilityLayout:
        """The :class:`StabilityLayout` of these bins."""
        return StabilityLayout(
            characteristics=tuple((name, bins.labels) for name, bins in self.features.items()),
            score_bins=self.score_bins,
        )

    def counts(self) -> StabilityCounts:
        """The development counts, in :meth:`layout` order."""
        populations = {
            name: PopulationCounts(np.asarray(bins.counts, dtype=np.float64))
            for name, bins in self.features.items()
        }
        populations[SCORE] = PopulationCounts(np.asarray(self.score_counts, dtype=np.float64))
        return StabilityCounts(populations)

    def noise(self) -> NoiseVariances | None:
        """The development counts' DP noise variance per bin (None: exact counts)."""
        if self.score_noise_variance is None:
            return None
        noise = {
            name: np.asarray(bins.noise_variance, dtype=np.float64)
            for name, bins in self.features.items()
        }
        noise[SCORE] = np.asarray(self.score_noise_variance, dtype=np.float64)
        return noise


class ScoringSettings(_Frozen):
    """``scoring.json`` (module docstring).

    Attributes
    ----------
    format : str
        :data:`SCORING_FORMAT`.
    scaling : ScalingSettings
        Points per log-odds.
    cutoff : float
        Default decision cut-off: decline when the probability of default >= it.
    top_k : int
        Default number of reason codes per applicant.
    descriptions : dict of str to str
        Reason text per model input feature (the schema's description, else its name).
    scorecard : ScorecardSettings or None
        The scorecard (woe + logreg runs only).
    development : DevelopmentBins or None
        The development sample's bins; None when the run released none.
    development_missing : str or None
        Why ``development`` is None.
    """

    format: Literal["fedcredit-scoring/1"] = SCORING_FORMAT
    scaling: ScalingSettings
    cutoff: float = Field(ge=0, le=1)
    top_k: int = Field(default=DEFAULT_TOP_K, ge=1)
    descriptions: dict[str, str]
    scorecard: ScorecardSettings | None = None
    development: DevelopmentBins | None = None
    development_missing: str | None = None


def development_bins(
    encoder: FeatureEncoder,
    schema: DatasetSchema,
    *,
    score_bins: int,
    woe_iv: Mapping[str, Any] | None,
    score_histograms: Mapping[str, Any] | None,
    privacy: Mapping[str, Any] | None = None,
    grid_bins: int = DEFAULT_GRID_BINS,
) -> tuple[DevelopmentBins | None, str | None]:
    """The development bins a run released (with their noise variance), or None and why not.

    Parameters
    ----------
    encoder : FeatureEncoder
        The model's encoder (its bins are the layout's).
    schema : DatasetSchema
        The run's schema.
    score_bins : int
        The run's ``score-bins``.
    woe_iv, score_histograms : mapping or None
        ``metrics.json``'s sections of the same names.
    privacy : mapping or None, default None
        ``metrics.json``'s ``privacy`` section (the banks' ledger summaries), from which
        the counts' noise variance follows
        (:func:`~credit.stability_noise.development_noise`); None or empty:
        no bank had a budget, the counts are exact.
    grid_bins : int, default 1024
        The run's ``grid-bins`` (where the set-up release's noise lies; used only when
        a bank added noise).
    """
    try:
        layout = StabilityLayout.of(encoder, score_bins)
    except ValueError as exc:
        return None, str(exc)
    if not isinstance(woe_iv, Mapping):
        return None, "the run released no per-bin counts (woe_iv: feature-stats federated)"
    if not isinstance(score_histograms, Mapping):
        return None, "the run's final model was not scored (no score_histograms)"
    try:
        counts = development_counts(woe_iv, score_histograms, layout)
    except (ValueError, KeyError, TypeError) as exc:
        return None, f"the run's released counts do not fit its model ({exc})"
    noise = development_noise(privacy or {}, layout, encoder, schema, grid_bins)
    features = {
        name: FeatureBins(
            labels=labels,
            counts=tuple(counts.populations[name].counts.tolist()),
            noise_variance=_variance(noise, name),
        )
        for name, labels in layout.characteristics
    }
    return DevelopmentBins(
        features=features,
        score_bins=score_bins,
        score_counts=tuple(counts.populations[SCORE].counts.tolist()),
        score_noise_variance=_variance(noise, SCORE),
    ), None


def _variance(noise: NoiseVariances | None, name: str) -> tuple[float, ...] | None:
    return None if noise is None else tuple(float(v) for v in noise[name])


def scoring_settings(
    encoder: FeatureEncoder,
    schema: DatasetSchema,
    *,
    scaling: ScoreScaling,
    cutoff: float,
    top_k: int = DEFAULT_TOP_K,
    scorecard: Scorecard | None = None,
    woe_iv: Mapping[str, Any] | None = None,
    score_histograms: Mapping[str, Any] | None = None,
    score_bins: int,
    privacy: Mapping[str, Any] | None = None,
    grid_bins: int = DEFAULT_GRID_BINS,
) -> ScoringSettings:
    """``scoring.json`` of a run's model (module docstring); see :class:`ScoringSettings`.

    ``woe_iv``, ``score_histograms``, ``score_bins``, ``privacy`` and ``grid_bins``
    give the development bins and their noise (:func:`development_bins`).
    """
    descriptions = {}
    for name in encoder.features:
        description = schema.feature(name).description
        descriptions[name] = description if description else name
    card = None
    if scorecard is not None:
        card = ScorecardSettings(
            tables={item.feature: item.table.to_dict() for item in scorecard.characteristics},
            points={
                item.feature: tuple(item.points.tolist()) for item in scorecard.characteristics
            },
        )
    development, missing = development_bins(
        encoder,
        schema,
        score_bins=score_bins,
        woe_iv=woe_iv,
        score_histograms=score_histograms,
        privacy=privacy,
        grid_bins=grid_bins,
    )
    return ScoringSettings(
        scaling=ScalingSettings(
            pdo=scaling.pdo, base_score=scaling.base_score, base_odds=scaling.base_odds
        ),
        cutoff=cutoff,
        top_k=top_k,
        descriptions=descriptions,
        scorecard=card,
        development=development,
        development_missing=missing,
    )
