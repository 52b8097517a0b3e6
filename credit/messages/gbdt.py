"""The boosting level exchange's records: the coordinator's orders, a bank's histograms.

One exchange per tree level (:mod:`participant.guard.gbdt_bank` has the bank's side)::

    coordinator                                          bank
    query  gbdt-level=GbdtLevelRequest(tree t, depth d,
           gbdt-encoder=GbdtEncoding (the shared edges),
           the splits of level d - 1 of tree t, or at
           d = 0 the leaf values of tree t - 1,
           the nodes to histogram)               ──────▶  apply the splits to its own rows'
                                                          node assignment (or add the
                                                          finished tree to its margins),
                                                          gradients, histograms of the
                                                          asked open nodes
                                                 ◀──────  gbdt-histograms arrays (int64,
                                                          in the clear), or the masked
                                                          histograms under secure aggregation

Nodes are numbered as in a heap: the root is 0, the children of node ``i`` are
``2 i + 1`` (left) and ``2 i + 2`` (right). The bank derives the open nodes from the
splits it was sent (every open node of the previous level is split or becomes a
leaf); the request names which open nodes to histogram (one child per split: the
coordinator derives the sibling as the parent's minus it), and the bank refuses any
other node, so a coordinator cannot ask for an arbitrary set of rows.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

import numpy as np
from flwr.app import Array, ArrayRecord, RecordDict
from pydantic import BaseModel, ConfigDict, Field, field_validator

from credit import message_keys
from credit.encoding import EncodingKind, FeatureEncoder
from credit.errors import MalformedMessage
from credit.messages._parts import AS_JSON, ConfigPart, from_json
from credit.records import array_of, record_of

__all__ = [
    "EnsembleDocument",
    "GbdtEncoding",
    "GbdtEnsemble",
    "GbdtLevelRequest",
    "LevelOrders",
    "SplitOrder",
    "histograms_from_content",
    "histograms_to_record",
]

MAX_NODE = 2**13 - 2
"""The largest node number of a tree of depth 12 (the core's deepest)."""


class SplitOrder(BaseModel):
    """One node's split as sent to banks: ``code < split_bin`` goes left, missing by default."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    node: int = Field(ge=0, le=MAX_NODE)
    feature: int = Field(ge=0)
    split_bin: int = Field(ge=1)
    default_left: bool


class LevelOrders(BaseModel):
    """What a level request tells a bank (see :class:`GbdtLevelRequest`).

    Attributes
    ----------
    tree, depth : int
        The level asked for (both from 0).
    nodes : tuple of int
        The open nodes whose histograms the level asks for, in the order of the reply's
        first axis: the root at depth 0; below it, any of the children of the previous
        level's splits (the core asks for one child per split).
    n_trees, max_depth : int
        The run's announced ensemble: the bank plans its privacy budget on
        ``n_trees * max_depth`` levels and refuses more.
    base_margin : float
        Every row's margin before the first tree (the consortium's default rate's
        log-odds).
    subsample : float
        Share of its rows a bank samples for the tree (its own draw, at depth 0), in
        (0, 1]; 1: every row (federated equals central training only then).
    splits : list of SplitOrder
        At depth ``d >= 1``: the splits of level ``d - 1`` (open nodes not listed
        become leaves).
    leaves : dict of int to float
        At depth 0 of tree ``t >= 1``: the leaf values of tree ``t - 1``, learning rate
        applied, by node.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    tree: int = Field(ge=0)
    depth: int = Field(ge=0)
    nodes: tuple[Annotated[int, Field(ge=0, le=MAX_NODE)], ...] = Field(default=(0,), min_length=1)
    n_trees: int = Field(ge=1)
    max_depth: int = Field(ge=1)
    base_margin: float
    subsample: float = Field(default=1.0, gt=0.0, le=1.0)
    splits: tuple[SplitOrder, ...] = ()
    leaves: dict[int, float] = Field(default_factory=dict)

    @field_validator("base_margin")
    @classmethod
    def _finite_margin(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError(f"base_margin must be finite; got {value}")
        return value

    @field_validator("leaves")
    @classmethod
    def _finite_leaves(cls, value: dict[int, float]) -> dict[int, float]:
        bad = {node: leaf for node, leaf in value.items() if not math.isfinite(leaf)}
        if bad:
            raise ValueError(f"leaf values must be finite; got {bad}")
        return value


class GbdtLevelRequest(ConfigPart):
    """Asks a bank for one level's histograms (its orders travel as JSON text)."""

    RECORD = message_keys.GBDT_LEVEL

    orders: Annotated[LevelOrders, from_json(LevelOrders), AS_JSON]


class GbdtEncoding(ConfigPart):
    """The run's binned encoder, whose edges are the bins every bank codes its rows on.

    Sent with every level request (the bank keeps no encoder between messages; its
    boosting state is bound to the codes the edges give, so a level on other edges than
    the run's first is refused). The encoder is the one the logistic-regression path
    fits from the same federated (or public) statistics, with ``max_bins`` quantile
    bins per numeric column; the bank refuses one of another kind, or one whose
    features are not its schema's (:mod:`participant.guard.gbdt_level`).
    """

    RECORD = message_keys.GBDT_ENCODER

    encoder: Annotated[FeatureEncoder, from_json(FeatureEncoder), AS_JSON]

    @field_validator("encoder")
    @classmethod
    def _binned(cls, value: FeatureEncoder) -> FeatureEncoder:
        if value.kind is not EncodingKind.BINNED:
            raise ValueError(f"boosting bins come from a binned encoder; got '{value.kind}'")
        return value


class EnsembleDocument(BaseModel):
    """A finished ensemble as it travels: its trees (the fields of
    :class:`credit.gbdt.Tree`, breadth-first) and base score; the bins are the run's
    encoder's (:class:`GbdtEncoding`), so ``credit.gbdt.Ensemble`` checks every
    split's threshold against them when the bank rebuilds it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    trees: tuple[dict[str, list[Any]], ...] = Field(min_length=1)
    base_score: float = Field(gt=0.0, lt=1.0)


class GbdtEnsemble(ConfigPart):
    """Asks a bank to score the finished ensemble on its held-out rows.

    ``score_bins``: bins of the score histograms it releases (its policy caps them).
    """

    RECORD = message_keys.GBDT_ENSEMBLE

    ensemble: Annotated[EnsembleDocument, from_json(EnsembleDocument), AS_JSON]
    score_bins: int = Field(ge=2, le=10_000)


def histograms_to_record(histograms: np.ndarray) -> ArrayRecord:
    """A bank's level histograms in the clear: int64 ``(nodes, features, bins, 3)``."""
    return ArrayRecord({message_keys.SUMS: Array(np.asarray(histograms, dtype=np.int64))})


def histograms_from_content(content: RecordDict, *, shape: tuple[int, ...]) -> np.ndarray:
    """The level histograms a reply carries in the clear.

    Raises
    ------
    MalformedMessage
        No such record, or not int64 of ``shape`` (never cast).
    """
    record = record_of(content, message_keys.GBDT_HISTOGRAMS, ArrayRecord)
    values = array_of(record, message_keys.SUMS, record_key=message_keys.GBDT_HISTOGRAMS)
    if values.dtype != np.int64 or values.shape != shape:
        raise MalformedMessage(
            f"record '{message_keys.GBDT_HISTOGRAMS}/{message_keys.SUMS}' must be int64{shape}; "
            f"got {values.dtype}{values.shape}"
        )
    return values
