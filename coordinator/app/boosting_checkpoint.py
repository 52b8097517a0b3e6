"""A federated boosting run's checkpoint: the finished trees, written after every tree.

``OUT/boosting-checkpoint.json`` holds the run's hyperparameters, shared bins, base
score, finished trees and level records (never a histogram: the coordinator holds
none after a level). :func:`~coordinator.app.boosting.train_federated` resumes from it
at the next tree: the banks, which kept their rows' state, are sent the last tree's
final splits and leaf values as the next tree's first orders, as if nothing had
happened. A checkpoint written with other hyperparameters or bins is refused.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from coordinator.app.boosting import BoostingRun, LevelRecord
from credit.durable import write_durably
from credit.errors import ConfigError
from credit.gbdt import BoostingParams, FeatureBins, Tree
from credit.messages.gbdt import SplitOrder

__all__ = ["CHECKPOINT_FILE", "load_boosting_checkpoint", "save_boosting_checkpoint"]

CHECKPOINT_FILE = "boosting-checkpoint.json"
_FORMAT = 1


def _bins_document(bins: FeatureBins) -> dict[str, Any]:
    return {"names": list(bins.names), "edges": [list(edges) for edges in bins.edges]}


def save_boosting_checkpoint(path: Path, run: BoostingRun) -> None:
    """Write ``run`` (whole, atomically) to ``path``."""
    document = {
        "format": _FORMAT,
        "params": run.params.model_dump(),
        "bins": _bins_document(run.bins),
        "base_score": run.base_score,
        "trees": [asdict(tree) for tree in run.trees],
        "levels": [_level_document(level) for level in run.levels],
    }
    write_durably(path, json.dumps(document, indent=1).encode("utf-8"))


def load_boosting_checkpoint(
    path: Path, *, params: BoostingParams, bins: FeatureBins
) -> BoostingRun:
    """The run saved at ``path``, if it was trained with ``params`` on ``bins``.

    Raises
    ------
    ConfigError
        The file does not parse as a checkpoint, or records other hyperparameters or
        bins (the field named).
    """
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        if document.get("format") != _FORMAT:
            raise ValueError(f"format {document.get('format')!r}, expected {_FORMAT}")
        saved = BoostingParams.model_validate(document["params"])
        trees = [_tree(entry) for entry in document["trees"]]
        levels = [_level(entry) for entry in document["levels"]]
        base_score = float(document["base_score"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"not a boosting checkpoint ({exc})", source=str(path)) from exc
    if saved != params:
        raise ConfigError(
            f"the checkpoint was trained with {saved.model_dump()}; this run asks for "
            f"{params.model_dump()} (resume with the same hyperparameters)",
            source=str(path),
        )
    if document["bins"] != _bins_document(bins):
        raise ConfigError(
            "the checkpoint's bins differ from this run's (resume on the same bins)",
            source=str(path),
        )
    return BoostingRun(params=params, bins=bins, base_score=base_score, trees=trees, levels=levels)


def _level_document(level: LevelRecord) -> dict[str, Any]:
    return {
        "tree": level.tree,
        "depth": level.depth,
        "nodes": list(level.nodes),
        "splits": [split.model_dump() for split in level.splits],
        "seconds": level.seconds,
    }


def _tree(entry: dict[str, Any]) -> Tree:
    return Tree(**{name: tuple(values) for name, values in entry.items()})


def _level(entry: dict[str, Any]) -> LevelRecord:
    return LevelRecord(
        tree=int(entry["tree"]),
        depth=int(entry["depth"]),
        nodes=tuple(int(node) for node in entry["nodes"]),
        splits=tuple(SplitOrder.model_validate(split) for split in entry["splits"]),
        seconds=float(entry["seconds"]),
    )
