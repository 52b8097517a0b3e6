"""Boosting hyperparameters, validated once (both sides share them)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["MAX_BINS", "MAX_DEPTH", "MAX_TREES", "BoostingParams"]

MAX_BINS = 255
"""Most regular bins per feature (one more code marks a missing value: codes fit uint8)."""
MAX_DEPTH = 12
"""Deepest tree (a level's histograms hold ``2**depth`` nodes)."""
MAX_TREES = 10_000
"""Most trees in an ensemble."""


class BoostingParams(BaseModel):
    """Second-order boosting of the logistic loss, grown level-wise (XGBoost's names).

    An invalid value raises :class:`pydantic.ValidationError` naming the parameter, the
    rule and the value (``n_trees: Input should be greater than or equal to 1``).

    Parameters
    ----------
    n_trees : int, default 100
        Boosting rounds, in [1, :data:`MAX_TREES`].
    max_depth : int, default 6
        Levels of splits per tree, in [1, :data:`MAX_DEPTH`]; one histogram exchange per
        level in federated training.
    learning_rate : float, default 0.1
        Shrinkage of every leaf value (XGBoost's ``eta``), in (0, 1].
    reg_lambda : float, default 1.0
        L2 penalty on leaf weights (``lambda``), >= 0.
    gamma : float, default 0.0
        Least gain a split must exceed (``min_split_loss``), >= 0.
    min_child_weight : float, default 1.0
        Least Hessian sum in each child of a split, >= 0.
    subsample : float, default 1.0
        Share of rows each bank samples for each tree, in (0, 1]; federated training
        equals central training bit for bit only at 1 (each bank draws its own rows).
    colsample_bytree : float, default 1.0
        Share of features each tree may split on, in (0, 1]; at least one feature.
    max_bins : int, default 255
        Regular bins per feature, in [2, :data:`MAX_BINS`]; the quantile edges come
        from the federated feature statistics (:func:`credit.gbdt.bins_from_encoder`).
    base_score : float or None, default None
        The ensemble's starting probability, in (0, 1); None: the training rows'
        default rate (federated: from the summed class counts).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    n_trees: int = Field(default=100, ge=1, le=MAX_TREES)
    max_depth: int = Field(default=6, ge=1, le=MAX_DEPTH)
    learning_rate: float = Field(default=0.1, gt=0.0, le=1.0)
    reg_lambda: float = Field(default=1.0, ge=0.0, allow_inf_nan=False)
    gamma: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)
    min_child_weight: float = Field(default=1.0, ge=0.0, allow_inf_nan=False)
    subsample: float = Field(default=1.0, gt=0.0, le=1.0)
    colsample_bytree: float = Field(default=1.0, gt=0.0, le=1.0)
    max_bins: int = Field(default=MAX_BINS, ge=2, le=MAX_BINS)
    base_score: float | None = Field(default=None, gt=0.0, lt=1.0)
