"""The bank's side of federated boosting: its rows' node assignment and level histograms.

A bank answers one :class:`~credit.messages.gbdt.LevelOrders` per tree level with the
integer histograms of its own rows in the level's open nodes: per node, feature and
bin (the feature's regular bins, then the missing bin), the sum of the quantised
gradients, the sum of the quantised Hessians and the count
(:func:`credit.gbdt.histograms`). The rows, their labels, codes, margins and node
assignments never leave the bank.

The bank, not the coordinator, decides what it answers (:class:`GbdtBank`):

* the ensemble's size: the first request announces ``n_trees`` and ``max_depth``;
  the bank refuses more than its policy allows (:class:`GbdtPolicy`), and any later
  request that announces another ensemble;
* the order: the levels of a run come one after the other, ``(0, 0), (0, 1), ...``,
  a tree moving on to the next only at its depth 0; a level asked twice, skipped or
  out of order is refused (and the ledger refuses a second release of one level even
  after a restart);
* the rows: the bank derives the open nodes from the splits it was sent (each must
  split an open node of the previous level on a feature and bin that exist: the
  children of the splits are the new open nodes, the open nodes not split become
  leaves); the request may ask for the histograms of some of the open nodes only (the
  core asks for one child per split and derives its sibling as the parent's minus
  it), never of another set of rows. At the next tree the leaf values must cover
  exactly the finished tree's leaves;
* the tree's rows: with ``subsample < 1`` the bank samples its rows for each tree
  itself (Poisson, from a cryptographically secure source); every row still follows
  the splits, so the finished tree moves every row's margin. No privacy amplification
  is claimed for it: a level costs what a level over all rows costs;
* small nodes: a node where the bank holds at least one and fewer than
  ``min_node_rows`` rows, or whose sibling does (parent minus child is the sibling),
  is released as zeros, and so is every node below such a pair (the coordinator
  derives a sibling as the parent minus the zeroed child, which would put the small
  node's rows back into a difference one level down); the default 0 releases every
  node: federated training then equals central training exactly;
* privacy: with a ledger, each level is charged as one ``gbdt-histogram`` event
  before anything is released (:mod:`participant.guard.gbdt_budget`), at a noise
  multiplier the bank calibrates once per run on its own budget for the announced
  ``n_trees * max_depth`` levels; the ledger refuses more levels than that plan, and
  a level past the budget. A refused request leaves the bank's state unchanged.

A forged split or leaf value changes only which of the bank's rows share a node and
the model the gradients are taken at: each row still adds one bounded ``(g, h, 1)`` to
one bin per feature of one node, so the charged sensitivity holds whatever the
coordinator sends.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

from credit.gbdt import (
    GRADIENT_SCALE,
    MAX_DEPTH,
    MAX_TREES,
    LevelSplits,
    NodeSplit,
    apply_splits,
    histograms,
    quantise_gradients,
)
from credit.messages.gbdt import LevelOrders, SplitOrder
from participant.guard.gbdt_budget import BoostingLevel, charge_level
from participant.guard.gbdt_state import (
    BankState,
    TreeState,
    rows_digest,
    state_from_bytes,
    state_to_bytes,
)
from privacy.accounting import DpEvent
from privacy.gbdt_histogram import noisy_histogram
from privacy.ledger import PrivacyLedger
from privacy.noise import SecureGaussian, SecureRandom

__all__ = ["GbdtBank", "GbdtPolicy", "LevelRefused", "LevelRelease"]


class LevelRefused(ValueError):
    """A level request the bank does not answer (out of order, beyond its policy, forged)."""


class GbdtPolicy(BaseModel):
    """What a bank answers in federated boosting (its own limits, never the coordinator's).

    Parameters
    ----------
    max_trees : int, default 500
        Most trees of a run the bank computes histograms for.
    max_depth : int, default 6
        Most levels per tree.
    min_node_rows : int, default 0
        A node where the bank holds 1 to ``min_node_rows - 1`` rows is released as
        zeros (0: every node as it is).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_trees: int = Field(default=500, ge=1, le=MAX_TREES)
    max_depth: int = Field(default=6, ge=1, le=MAX_DEPTH)
    min_node_rows: int = Field(default=0, ge=0)


@dataclass(frozen=True)
class LevelRelease:
    """One level's answer: the nodes asked for (in the request's order) and their histograms.

    ``histograms`` is int64 ``(nodes, features, bins, 3)``; ``event`` the ledger event
    it was charged as (None: no privacy budget, no noise).
    """

    tree: int
    depth: int
    nodes: tuple[int, ...]
    histograms: NDArray[np.int64]
    event: DpEvent | None = None


def _bounded_gradients(
    margins: NDArray[np.float64], labels: NDArray[np.int64]
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """The rows' quantised gradients and Hessians, held to the bounds the sensitivity
    assumes (``|g| <= S``, ``0 <= h <= S/4``) whatever margins the coordinator's leaf
    values made (the loss keeps them there for finite margins; the clip makes it
    explicit)."""
    with np.errstate(over="ignore"):  # exp of a huge margin: p is then exactly 0 or 1
        quantised = quantise_gradients(margins, labels)
    gradients = np.clip(quantised.gradients, -GRADIENT_SCALE, GRADIENT_SCALE)
    hessians = np.clip(quantised.hessians, 0, GRADIENT_SCALE // 4)
    return gradients, hessians


class GbdtBank:
    """One bank's rows in a federated boosting run (module docstring).

    Parameters
    ----------
    codes : ndarray of uint8, shape (rows, features)
        The rows' bin codes on the consortium's shared edges (missing: ``n_bins - 1``).
    labels : ndarray of int
        0/1 targets.
    n_bins : int
        Histogram width (regular bins of the widest feature, plus the missing bin).
    run : str
        The run's name (the ledger's plan and events carry it).
    policy : GbdtPolicy, optional
        The bank's limits (defaults if omitted).
    ledger : PrivacyLedger, optional
        The bank's ledger: each level is charged and noised (None: no DP).
    noise : SecureGaussian, optional
        The noise source (a fresh OS-keyed one if omitted; drawn from only with a
        ledger).
    noise_for : callable, optional
        The noise source of a level's charged event (the guard's stream of that
        event: :meth:`~participant.guard.privacy_guard.PrivacyGuard.noise`); when
        given, it replaces ``noise``.
    """

    def __init__(
        self,
        *,
        codes: NDArray[np.uint8],
        labels: NDArray[np.integer],
        n_bins: int,
        run: str,
        policy: GbdtPolicy | None = None,
        ledger: PrivacyLedger | None = None,
        noise: SecureGaussian | None = None,
        noise_for: Callable[[DpEvent], SecureGaussian] | None = None,
    ) -> None:
        if codes.ndim != 2 or codes.shape[0] != labels.shape[0]:
            raise ValueError(f"codes {codes.shape} and labels {labels.shape} must share rows")
        if codes.size and int(codes.max()) >= n_bins:
            raise ValueError(f"codes must be < n_bins = {n_bins}; got {int(codes.max())}")
        self.codes = codes
        self.labels = np.asarray(labels, dtype=np.int64)
        self.n_bins = n_bins
        self.run = run
        self.policy = policy or GbdtPolicy()
        self.ledger = ledger
        self._noise = noise or SecureGaussian()
        self._noise_for = noise_for
        self._ensemble: tuple[int, int] | None = None  # announced (n_trees, max_depth)
        self._state: TreeState | None = None
        self._gradients: tuple[NDArray[np.int64], NDArray[np.int64]] | None = None

    @property
    def rows(self) -> int:
        """The bank's training rows."""
        return int(self.codes.shape[0])

    def state_bytes(self) -> bytes | None:
        """What the bank keeps between levels, as bytes (None: no level answered yet)."""
        if self._ensemble is None or self._state is None or self._gradients is None:
            return None
        kept = BankState(
            ensemble=self._ensemble,
            tree=self._state,
            gradients=self._gradients[0],
            hessians=self._gradients[1],
            rows=rows_digest(self.codes, self.labels),
        )
        return state_to_bytes(kept)

    def restore(self, data: bytes) -> None:
        """Take up the state :meth:`state_bytes` wrote (a new process, the same rows).

        Raises
        ------
        ValueError
            Not a state's bytes, or the state of other rows.
        """
        kept = state_from_bytes(data)
        if kept.rows != rows_digest(self.codes, self.labels):
            raise ValueError("the boosting state is of other rows than this bank's")
        self._ensemble, self._state = kept.ensemble, kept.tree
        self._gradients = (kept.gradients, kept.hessians)

    def level(self, orders: LevelOrders) -> LevelRelease:
        """The histograms of ``orders``' level, after applying its splits (or leaves).

        Raises
        ------
        LevelRefused
            The request is beyond the policy, out of order or forged; nothing changes.
        PrivacyBudgetExceeded
            The ledger refuses the level (past the budget or the plan); nothing changes.
        privacy.errors.LedgerError
            The ledger already holds this level's release (a restarted bank asked again).
        """
        ensemble = self._check_ensemble(orders)
        state = self._next_state(orders, ensemble)
        asked = self._asked_nodes(state, orders.nodes)
        gradients = self._gradients
        if orders.depth == 0 or gradients is None:
            gradients = _bounded_gradients(state.margins, self.labels)
        histograms = self._histograms(state, gradients, asked)
        event = self._charge(orders, ensemble) if self.ledger is not None else None
        if event is not None:
            histograms = noisy_histogram(
                histograms,
                scale=GRADIENT_SCALE,
                noise_multiplier=event.noise_multiplier,
                source=self._noise if self._noise_for is None else self._noise_for(event),
            )
        self._ensemble, self._state, self._gradients = ensemble, state, gradients
        return LevelRelease(
            tree=orders.tree,
            depth=orders.depth,
            nodes=asked,
            histograms=histograms,
            event=event,
        )

    # -- checks -------------------------------------------------------------------

    def _check_ensemble(self, orders: LevelOrders) -> tuple[int, int]:
        announced = (orders.n_trees, orders.max_depth)
        if self._ensemble is not None and announced != self._ensemble:
            raise LevelRefused(
                f"the run announced {self._ensemble[0]} trees of depth {self._ensemble[1]}; "
                f"this request announces {announced[0]} of depth {announced[1]}"
            )
        if orders.n_trees > self.policy.max_trees or orders.max_depth > self.policy.max_depth:
            raise LevelRefused(
                f"{orders.n_trees} trees of depth {orders.max_depth} exceed the bank's policy "
                f"(at most {self.policy.max_trees} trees of depth {self.policy.max_depth})"
            )
        if orders.tree >= orders.n_trees or orders.depth >= orders.max_depth:
            raise LevelRefused(
                f"level (tree {orders.tree}, depth {orders.depth}) is outside the announced "
                f"{orders.n_trees} trees of depth {orders.max_depth}"
            )
        return announced

    def _next_state(self, orders: LevelOrders, ensemble: tuple[int, int]) -> TreeState:
        """The rows' state at ``orders``' level (checked; not yet committed)."""
        state, asked = self._state, (orders.tree, orders.depth)
        if state is None:
            if asked != (0, 0) or orders.splits or orders.leaves:
                raise LevelRefused(f"a run starts at (tree 0, depth 0) with no splits; got {asked}")
            margins = np.full(self.rows, orders.base_margin, dtype=np.float64)
            nodes = np.zeros(self.rows, dtype=np.int64)
            return TreeState(0, 0, nodes, (0,), margins=margins, sampled=self._sample(orders))
        if asked == (state.tree, state.depth + 1):
            if orders.leaves:
                raise LevelRefused("leaf values come only at depth 0 of the next tree")
            grown = self._split(state, orders.splits, depth=state.depth + 1)
            if not grown.open_nodes:
                raise LevelRefused(f"no node of tree {state.tree} is open at depth {orders.depth}")
            return grown
        if asked == (state.tree + 1, 0):
            finished = self._split(state, orders.splits, depth=state.depth + 1)
            leaves = finished.leaves | frozenset(finished.open_nodes)
            if set(orders.leaves) != leaves:
                raise LevelRefused(
                    f"the leaf values of tree {state.tree} must cover its leaves "
                    f"{sorted(leaves)}; got nodes {sorted(orders.leaves)}"
                )
            values = np.array([orders.leaves[int(node)] for node in finished.nodes])
            with np.errstate(over="ignore"):  # an overflow is refused just below
                margins = state.margins + values
            if not np.all(np.isfinite(margins)):
                raise LevelRefused(
                    f"the leaf values of tree {state.tree} take margins past the finite range"
                )
            nodes = np.zeros(self.rows, dtype=np.int64)
            sampled = self._sample(orders)
            return TreeState(orders.tree, 0, nodes, (0,), margins=margins, sampled=sampled)
        raise LevelRefused(
            f"after (tree {state.tree}, depth {state.depth}) the bank answers (tree "
            f"{state.tree}, depth {state.depth + 1}) or (tree {state.tree + 1}, depth 0); "
            f"got {asked}"
        )

    def _split(self, state: TreeState, orders: tuple[SplitOrder, ...], *, depth: int) -> TreeState:
        """``state`` after the splits of its open nodes; unsplit open nodes become leaves."""
        splits = tuple(self._checked_split(state, order) for order in orders)
        split_nodes = frozenset(split.node for split in splits)
        if len(split_nodes) != len(splits):
            raise LevelRefused("a node is split twice in one level")
        nodes = apply_splits(self.codes, state.nodes, LevelSplits(splits), self.n_bins - 1)
        children = tuple(sorted(child for n in split_nodes for child in (2 * n + 1, 2 * n + 2)))
        leaves = state.leaves | (frozenset(state.open_nodes) - split_nodes)
        return TreeState(
            state.tree, depth, nodes, children, leaves, margins=state.margins, sampled=state.sampled
        )

    def _asked_nodes(self, state: TreeState, asked: tuple[int, ...]) -> tuple[int, ...]:
        """``asked`` if it names open nodes only (the root at depth 0), each once."""
        strangers = sorted(set(asked) - set(state.open_nodes))
        if strangers or len(set(asked)) != len(asked) or not asked:
            raise LevelRefused(
                f"a level's histograms are of open nodes, each once: at (tree {state.tree}, "
                f"depth {state.depth}) the open nodes are {list(state.open_nodes)}; the "
                f"request asks for {list(asked)}"
            )
        return asked

    def _sample(self, orders: LevelOrders) -> NDArray[np.bool_] | None:
        """The tree's rows: each kept with chance ``subsample`` (None: every row).

        The bank's own draw from a cryptographically secure source: no one else can
        tell which of its rows a tree used.
        """
        if orders.subsample >= 1.0:
            return None
        return SecureRandom().poisson_mask(self.rows, orders.subsample)

    def _checked_split(self, state: TreeState, order: SplitOrder) -> NodeSplit:
        """``order`` as a split, if it splits an open node on a feature and bin that exist."""
        if order.node not in state.open_nodes:
            raise LevelRefused(
                f"a split of node {order.node}, which is not open at (tree {state.tree}, "
                f"depth {state.depth}); open: {list(state.open_nodes)}"
            )
        if order.feature >= self.codes.shape[1] or order.split_bin > self.n_bins - 1:
            raise LevelRefused(
                f"split of node {order.node} on feature {order.feature}, bin "
                f"{order.split_bin}: the bank has {self.codes.shape[1]} features of at most "
                f"{self.n_bins - 1} regular bins"
            )
        return NodeSplit(
            node=order.node,
            feature=order.feature,
            split_bin=order.split_bin,
            default_left=order.default_left,
        )

    # -- the release --------------------------------------------------------------

    def _histograms(
        self,
        state: TreeState,
        gradients: tuple[NDArray[np.int64], NDArray[np.int64]],
        asked: tuple[int, ...],
    ) -> NDArray[np.int64]:
        """The asked nodes' histograms; zeros for a node on a path through a small node.

        A node is released as zeros when it, its sibling, one of its ancestors or an
        ancestor's sibling holds 1 to ``min_node_rows - 1`` of the tree's rows
        (:func:`_small_lineage`): the coordinator knows the parent's histogram, and the
        parent's minus one child's is the other child's, at every level down the tree.
        """
        nodes = state.nodes if state.sampled is None else np.where(state.sampled, state.nodes, -1)
        released = histograms(self.codes, *gradients, nodes, asked, self.n_bins)
        if self.policy.min_node_rows > 1:
            for position, node in enumerate(asked):
                if _small_lineage(nodes, node, self.policy.min_node_rows):
                    released[position] = 0
        return released

    def _charge(self, orders: LevelOrders, ensemble: tuple[int, int]) -> DpEvent:
        """Charge the level to the bank's ledger (:func:`charge_level`)."""
        if self.ledger is None:
            raise RuntimeError("no ledger to charge")
        level = BoostingLevel(
            run=self.run,
            tree=orders.tree,
            depth=orders.depth,
            n_trees=ensemble[0],
            max_depth=ensemble[1],
            features=int(self.codes.shape[1]),
            n_train=self.rows,
        )
        return charge_level(self.ledger, level)


def _small_lineage(nodes: NDArray[np.int64], node: int, minimum: int) -> bool:
    """Whether ``node``, an ancestor, or the sibling of either holds 1 to ``minimum - 1`` rows.

    ``nodes`` is each row's node in the tree (-1: not in the tree's sample); a node's
    rows are those in its subtree. Zeroing only a small node and its sibling would not
    do: the coordinator derives the larger child as the parent's histogram minus the
    zeroed one, so that derived node still holds the small node's rows, and a split of
    it that leaves one side empty at this bank hands it the small node's histogram as
    a difference at the next level. So everything under a small pair is zeros too.
    """
    held = nodes[nodes >= 0]
    deepest = max(int(held.max()) if held.size else 0, node + 1)
    counts = np.bincount(held, minlength=deepest + 1).astype(np.int64)
    for child in range(deepest, 0, -1):  # subtree counts, deepest node ids first
        counts[(child - 1) // 2] += counts[child]
    path = [node]
    while path[-1] > 0:
        path.append((path[-1] - 1) // 2)
    pairs = {0} | {member for v in path if v > 0 for member in (v, v + 1 if v % 2 else v - 1)}
    return any(0 < int(counts[member]) < minimum for member in pairs)
