"""The boosted-trees sections of the model report: the trees and the feature importance.

What a ``model = "gbdt"`` run (:mod:`coordinator.app.boosting_run`) leaves: in
``metrics.json`` one record per tree level (``levels``: tree, depth, open nodes,
splits chosen, seconds), the banks that answered every level, the training rows and
the held-out evaluation's bank count; in ``model/model_card.json`` each feature's
importance (``feature_importance``: splits, total gain, total cover over the
ensemble, :func:`credit.gbdt.feature_importance`).

A tree's leaves are its splits plus one (every split turns one leaf into two); the
levels are the exchanges the tree took (its depth, or fewer when no node could split).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "BoostingSection",
    "FeatureImportance",
    "TreeRow",
    "read_boosting",
    "read_feature_importance",
]


@dataclass(frozen=True)
class TreeRow:
    """One tree of the ensemble: its levels, splits, leaves and seconds.

    ``tree`` counts from 1; ``level_seconds[d]`` is the seconds of its level at depth
    ``d`` (the summed exchange and the split choice).
    """

    tree: int
    levels: int
    splits: int
    leaves: int
    level_seconds: tuple[float, ...]

    @property
    def seconds(self) -> float:
        """The tree's seconds: its levels' sum."""
        return sum(self.level_seconds)


@dataclass(frozen=True)
class BoostingSection:
    """A boosting run's trees and who grew them.

    ``final_banks``: how many banks' held-out evaluations were summed (None: the run
    did not say).
    """

    trees: tuple[TreeRow, ...]
    banks: tuple[str, ...]
    training_rows: int
    base_score: float
    final_banks: int | None

    @property
    def seconds(self) -> float:
        """Every level's seconds."""
        return sum(row.seconds for row in self.trees)


@dataclass(frozen=True)
class FeatureImportance:
    """One feature's importance over the ensemble (``gain_share``: of every split's gain)."""

    feature: str
    splits: int
    total_gain: float
    total_cover: float
    gain_share: float


def read_boosting(document: Mapping[str, Any]) -> BoostingSection | None:
    """The trees of a boosting run's ``metrics.json`` (None: not a boosting run).

    Raises
    ------
    KeyError, TypeError, ValueError
        A level record lacks a field or holds a wrong type (the caller names the file).
    """
    if document.get("model") != "gbdt":
        return None
    levels = document.get("levels") or []
    count = int(document.get("trees") or 0)
    final_banks = document.get("final_banks")
    return BoostingSection(
        trees=tuple(_tree(number, levels) for number in range(count)),
        banks=tuple(str(bank) for bank in document.get("banks") or ()),
        training_rows=int(document.get("training_rows") or 0),
        base_score=float(document["base_score"]),
        final_banks=None if final_banks is None else int(final_banks),
    )


def _tree(number: int, levels: Sequence[Mapping[str, Any]]) -> TreeRow:
    own = sorted(
        (level for level in levels if int(level["tree"]) == number),
        key=lambda level: int(level["depth"]),
    )
    splits = sum(int(level["splits"]) for level in own)
    return TreeRow(
        tree=number + 1,
        levels=len(own),
        splits=splits,
        leaves=splits + 1,
        level_seconds=tuple(float(level["seconds"]) for level in own),
    )


def read_feature_importance(card: Path) -> tuple[FeatureImportance, ...]:
    """Each feature's importance from a boosting run's model card, most total gain first.

    Features of equal gain keep the card's order (the model's input order). A card
    without ``feature_importance`` (a logistic regression's, an MLP's) gives ``()``.

    Raises
    ------
    ValueError
        The card is not JSON or its importance is not of the form the run writes; the
        message names the file.
    """
    try:
        importance = json.loads(card.read_text(encoding="utf-8")).get("feature_importance")
        if not importance:
            return ()
        gains = {name: float(entry["total_gain"]) for name, entry in importance.items()}
        total = sum(gains.values())
        rows = [
            FeatureImportance(
                feature=str(name),
                splits=int(entry["splits"]),
                total_gain=gains[name],
                total_cover=float(entry["total_cover"]),
                gain_share=gains[name] / total if total > 0 else 0.0,
            )
            for name, entry in importance.items()
        ]
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{card}: unexpected content ({type(exc).__name__}: {exc})") from exc
    return tuple(sorted(rows, key=lambda row: -row.total_gain))
