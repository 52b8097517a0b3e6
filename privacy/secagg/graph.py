"""Who shares keys and masks with whom: the complete graph, or SecAgg+'s sparse Harary graph.

Bell, Bonawitz, Gascón, Lepoint and Raykova, "Secure Single-Server Aggregation with
(Poly)Logarithmic Overhead", CCS 2020 (SecAgg+), replace the complete graph of
Bonawitz et al. (CCS 2017) by a random k-regular graph: each bank agrees masking
keys with, and Shamir-shares its secrets to, only its ``k = O(log N)`` neighbours,
with a threshold ``t`` per neighbourhood. The graph is a *random Harary graph*
H(N, k): the banks in a random cyclic order, each joined to the ``k/2`` banks on
either side of it.

Here no one chooses the graph: every bank computes it from the run's signed roster
(:func:`graph_seed` hashes every member's signed enrollment), so the coordinator,
which routes every message, can neither pick neighbours for a bank nor show two
banks two graphs (the graph's digest is bound into every signed masking key,
:func:`privacy.secagg.signed.advertisement_statement`).

A bank's *holders* are the banks that hold a share of its secrets: its neighbours
and itself. On the complete graph they are the whole roster, and every rule below
reduces to the complete graph's.

Notes
-----
The coordinator decides the roster (which enrolled banks take part), and every
roster gives another graph: it can *grind*, trying rosters until one gives a target
bank many colluding neighbours. :func:`harary_parameters` bounds the probability of a
bad graph by ``2^-s``; computed for ``s = security_bits + grinding_bits``, a
coordinator that evaluates ``2^grinding_bits`` rosters still finds one with
probability at most ``2^-security_bits``. Evaluating one roster costs one SHA-256
per bank.
"""

from __future__ import annotations

import functools
import hashlib
import math
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from numpy.typing import NDArray
from scipy.special import gammaln

__all__ = [
    "DEFAULT_CORRECTNESS_BITS",
    "DEFAULT_CORRUPTION_RATE",
    "DEFAULT_DROPOUT_RATE",
    "DEFAULT_GRINDING_BITS",
    "DEFAULT_SECURITY_BITS",
    "SPARSE_ABOVE",
    "CommunicationGraph",
    "GraphChoice",
    "GraphKind",
    "GraphPlan",
    "graph_seed",
    "harary_neighbours",
    "harary_parameters",
    "plan_graph",
]

SPARSE_ABOVE = 100
"""Banks above which ``GraphChoice.AUTO`` picks the sparse graph (at most: complete).

Up to 100 banks the complete graph costs a bank at most 99 key agreements, shares
and masks a round, and its guarantee is certain and the stronger one (any fewer
than ``2t - N`` colluders, about N/3; any dropouts leaving t); the sparse graph's
holds with probability ``1 - 2^-40`` and only for the configured rates (by default
5 % colluders, 10 % dropouts). Above it the complete graph's O(N) per bank and
O(N^2) at the coordinator dominate, while the sparse degree grows like log N (at
the default rates k = 56 at 300 banks, 96 at 1,000, 122 at 10,000).
"""

DEFAULT_CORRUPTION_RATE = 0.05
"""Fraction of the roster assumed to collude with the coordinator (gamma)."""
DEFAULT_DROPOUT_RATE = 0.1
"""Fraction of the roster that may drop out of a round, or be claimed to (delta)."""
DEFAULT_SECURITY_BITS = 40
"""Statistical security sigma: a bad graph has probability at most 2^-sigma."""
DEFAULT_CORRECTNESS_BITS = 20
"""Statistical correctness eta: a round with dropouts within delta fails w.p. <= 2^-eta."""
DEFAULT_GRINDING_BITS = 40
"""log2 of the rosters a coordinator is assumed able to try (see the module's notes)."""

_SEED_LABEL = b"fedcredit/secagg/graph-seed/v1"
_POSITION_LABEL = b"fedcredit/secagg/graph-position/v1"
_DIGEST_LABEL = b"fedcredit/secagg/graph/v1"
_EPSILON = 1e-12  # keeps floor(rate * n) from rounding down at exact products


class GraphChoice(StrEnum):
    """A bank's (or a run's) setting: which graph to use."""

    AUTO = "auto"
    COMPLETE = "complete"
    SPARSE = "sparse"


class GraphKind(StrEnum):
    """The graph a round uses."""

    COMPLETE = "complete"
    SPARSE = "sparse"


@dataclass(frozen=True)
class GraphPlan:
    """The graph's kind and size, and the thresholds a bank checks, for one roster.

    Attributes
    ----------
    kind : GraphKind
        Complete or sparse.
    banks : int
        Roster size N.
    degree : int
        Neighbours per bank k (N - 1 on the complete graph; even on the sparse one).
    threshold : int
        Shares of a bank's secret needed to open it, among its ``degree + 1`` holders.
    min_survivors : int
        The fewest roster members a survivor set may hold: ``threshold`` on the
        complete graph, ``N - floor(dropout_rate * N)`` on the sparse one (more
        claimed dropouts are outside what the parameters were computed for).
    """

    kind: GraphKind
    banks: int
    degree: int
    threshold: int
    min_survivors: int

    @classmethod
    def complete(cls, banks: int, threshold: int) -> GraphPlan:
        """The complete graph of ``banks`` with ``threshold``."""
        return cls(GraphKind.COMPLETE, banks, banks - 1, threshold, threshold)


class _Neighbours(Mapping[int, frozenset[int]]):
    """Each member's neighbours, computed on first use from the cyclic order.

    A bank needs only its own and its holders' neighbourhoods (O(k^2) of the O(N k)
    edges), so nothing is built until asked for.
    """

    def __init__(self, plan: GraphPlan, order: tuple[int, ...]) -> None:
        self._plan = plan
        self._order = order
        self._index = {node: index for index, node in enumerate(order)}
        self._known: dict[int, frozenset[int]] = {}

    def __getitem__(self, node: int) -> frozenset[int]:
        known = self._known.get(node)
        if known is None:
            index = self._index[node]  # KeyError: not a member
            if self._plan.kind is GraphKind.COMPLETE:
                known = frozenset(self._order[:index] + self._order[index + 1 :])
            else:
                half, size = self._plan.degree // 2, len(self._order)
                known = frozenset(
                    self._order[(index + offset) % size]
                    for offset in range(-half, half + 1)
                    if offset
                )
            self._known[node] = known
        return known

    def __iter__(self) -> Iterator[int]:
        return iter(sorted(self._index))

    def __len__(self) -> int:
        return len(self._order)


@dataclass(frozen=True)
class CommunicationGraph:
    """A round's graph: each roster member's neighbours, and the plan it was built by.

    Build it with :meth:`build`; both the banks and the coordinator do, from the
    same roster, and arrive at the same graph.
    """

    plan: GraphPlan
    neighbours: Mapping[int, frozenset[int]]
    digest: bytes

    @classmethod
    def build(cls, plan: GraphPlan, ids: list[int], seed: bytes) -> CommunicationGraph:
        """The graph of ``plan`` over ``ids`` (sparse: ordered by ``seed``).

        Raises
        ------
        ValueError
            ``ids`` is not of ``plan.banks`` distinct members, or the sparse degree is
            odd or not below their number.
        """
        members = sorted(set(ids))
        if len(members) != plan.banks or len(ids) != plan.banks:
            raise ValueError(
                f"the plan is for {plan.banks} banks; got {len(ids)} ids ({len(members)} distinct)"
            )
        if plan.kind is GraphKind.COMPLETE:
            order = tuple(members)
        else:
            order = _cyclic_order(tuple(members), plan.degree, seed)
        return cls(plan=plan, neighbours=_Neighbours(plan, order), digest=_digest(plan, seed))

    def holders(self, owner: int) -> frozenset[int]:
        """Who holds a share of ``owner``'s secrets: its neighbours and itself."""
        return self.neighbours[owner] | {owner}


def plan_graph(
    banks: int,
    *,
    choice: GraphChoice,
    complete_threshold: int,
    corruption_rate: float = DEFAULT_CORRUPTION_RATE,
    dropout_rate: float = DEFAULT_DROPOUT_RATE,
    security_bits: float = DEFAULT_SECURITY_BITS + DEFAULT_GRINDING_BITS,
    correctness_bits: float = DEFAULT_CORRECTNESS_BITS,
) -> GraphPlan:
    """The graph a roster of ``banks`` uses under ``choice``.

    ``AUTO`` is the sparse graph above :data:`SPARSE_ABOVE` banks when one meets
    the bounds (:func:`harary_parameters`), else the complete graph (whose guarantee
    is the stronger one) with ``complete_threshold``. Banks and coordinator call
    this with the same settings; a bank refuses a roster whose proposed plan differs.

    Raises
    ------
    ValueError
        ``choice`` is ``SPARSE`` and no sparse graph meets the bounds.
    """
    if choice is GraphChoice.SPARSE:
        return harary_parameters(
            banks,
            corruption_rate=corruption_rate,
            dropout_rate=dropout_rate,
            security_bits=security_bits,
            correctness_bits=correctness_bits,
        )
    if choice is GraphChoice.AUTO and banks > SPARSE_ABOVE:
        try:
            return harary_parameters(
                banks,
                corruption_rate=corruption_rate,
                dropout_rate=dropout_rate,
                security_bits=security_bits,
                correctness_bits=correctness_bits,
            )
        except ValueError:  # rates too high for a sparse graph: the complete one holds
            pass
    return GraphPlan.complete(banks, complete_threshold)


def graph_seed(*, run: int, enrollments: Mapping[int, bytes]) -> bytes:
    """The graph's seed: SHA-256 of the run and every roster member's signed enrollment.

    ``enrollments`` maps node id to the bytes of its enrollment (member name,
    per-run encryption key and its signature, which binds the consortium and run;
    each bank's fresh random key makes the seed unpredictable before every bank has
    enrolled). Every bank computes it from the roster it checked; a roster with one
    member more or less gives another seed.
    """
    digest = hashlib.sha256(_field(_SEED_LABEL))
    digest.update(struct.pack(">QQ", run, len(enrollments)))
    for node in sorted(enrollments):
        digest.update(struct.pack(">Q", node) + _field(enrollments[node]))
    return digest.digest()


def harary_neighbours(ids: list[int], degree: int, seed: bytes) -> dict[int, frozenset[int]]:
    """The random Harary graph H(N, degree) over ``ids``, ordered by ``seed``.

    The cyclic order sorts the banks by SHA-256 of ``seed`` and their id (a random
    permutation no party chooses); each bank is joined to the ``degree / 2`` banks
    before and after it (Bell et al. 2020, §3: the Harary graph). ``degree`` must be
    even and below N.

    Raises
    ------
    ValueError
        ``degree`` is odd, below 2 or not below the number of ids.
    """
    order = _cyclic_order(tuple(ids), degree, seed)
    plan = GraphPlan(GraphKind.SPARSE, len(ids), degree, 2, len(ids))
    return dict(_Neighbours(plan, order))


@functools.lru_cache(maxsize=64)
def _cyclic_order(ids: tuple[int, ...], degree: int, seed: bytes) -> tuple[int, ...]:
    """``ids`` in the order ``seed`` gives them (remembered per process: a pure function
    of its arguments, computed by every simulated bank of a worker for one round)."""
    if degree % 2 or not 2 <= degree < len(ids):
        raise ValueError(f"degree must be even and in [2, {len(ids) - 1}]; got {degree}")
    return tuple(sorted(ids, key=lambda node: _position(seed, node)))


def _position(seed: bytes, node: int) -> bytes:
    return hashlib.sha256(_field(_POSITION_LABEL) + seed + struct.pack(">Q", node)).digest()


def _digest(plan: GraphPlan, seed: bytes) -> bytes:
    fields = struct.pack(">QQQQ", plan.banks, plan.degree, plan.threshold, plan.min_survivors)
    return hashlib.sha256(
        _field(_DIGEST_LABEL) + _field(plan.kind.value.encode()) + fields + seed
    ).digest()


def _field(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


@functools.lru_cache(maxsize=64)
def harary_parameters(
    banks: int,
    *,
    corruption_rate: float = DEFAULT_CORRUPTION_RATE,
    dropout_rate: float = DEFAULT_DROPOUT_RATE,
    security_bits: float = DEFAULT_SECURITY_BITS + DEFAULT_GRINDING_BITS,
    correctness_bits: float = DEFAULT_CORRECTNESS_BITS,
    owner_holds_share: bool = True,
) -> GraphPlan:
    """The smallest even degree k and its threshold t that meet SecAgg+'s bounds.

    Bell et al., CCS 2020, §4 (the Harary-graph instantiation and its parameter
    analysis; the same computation as the authors' parameter finder in Google's
    federated-compute, ``graph_parameter_finder.cc``). With ``C = floor(gamma N)``
    corrupt banks and ``D = floor(delta N)`` dropouts, k is the smallest even degree
    for which there is a t with all of:

    1. *Connectivity* (security): removing ``C + D`` banks disconnects H(N, k) only
       if two disjoint runs of k/2 consecutive banks are all removed; by a union bound
       over the ``N (N - k - 1) / 2`` pairs of runs, the probability is at most
       ``N (N-k-1)/2 * (C+D)!/(C+D-k)! * (N-k)!/N!``, which must be below
       ``2^-(sigma+1)``.
    2. *No bank has too many corrupt holders* (security): a bank's corrupt neighbours
       are hypergeometric ``X ~ H(N, C, k)``; ``c`` is the least value with
       ``P[X > c] <= 2^-(sigma+1) / N`` (union bound over the banks). Two different
       survivor sets each signed by t of a bank's ``k + 1`` holders share at least
       ``2t - k - 1`` signers, all corrupt (an honest bank signs one set), so
       ``2t - k - 1 > c`` (the malicious-server rule; it implies ``t > c``).
    3. *Recovery* (correctness): a dropped bank's surviving neighbours are
       ``S ~ H(N, N - D, k)``; ``P[S < t] <= 2^-eta / N``.

    t is the least value of rule 2 (cheapest to reconstruct, most dropouts survived).
    A pure function of its arguments, memoized: every bank of a simulation computes
    the same plan each round.

    Parameters
    ----------
    banks : int
        Roster size N, >= 4.
    corruption_rate : float, default 0.05
        gamma in [0, 1): banks colluding with the coordinator (a bank that withholds
        its reveals counts as a dropout, within ``dropout_rate``).
    dropout_rate : float, default 0.1
        delta in [0, 1): dropouts (or claimed dropouts) per round.
    security_bits : float, default 80
        sigma: 40 statistical bits plus 40 against roster grinding (module notes).
    correctness_bits : float, default 20
        eta.
    owner_holds_share : bool, default True
        A bank keeps a share of its own secrets (fedcredit's protocol: ``k + 1``
        holders, so rule 2 reads ``2t - k - 1 > c``). False: shares go to the ``k``
        neighbours only, as in the paper (``2t - k > c``); the authors' reference
        values are reproduced with False.

    Raises
    ------
    ValueError
        A parameter is out of range, or no degree below N meets the bounds (too
        few banks for the rates: use the complete graph).

    Notes
    -----
    The hypergeometric tails are summed in log space from the exact pmf (log-gamma). The bounds
    take the corrupt banks as fixed before the graph is drawn, which the roster
    seed ensures; dropouts a coordinator claims after seeing the graph are bounded
    by ``min_survivors`` and by each bank's own neighbourhood check (``t`` of its
    holders must survive), see the README's "Secure aggregation at scale".
    """
    if banks < 4:
        raise ValueError(f"banks must be >= 4 for a sparse graph; got {banks}")
    for name, rate in (("corruption_rate", corruption_rate), ("dropout_rate", dropout_rate)):
        if not 0 <= rate < 1:
            raise ValueError(f"{name} must be in [0, 1); got {rate}")
    if security_bits <= 0 or correctness_bits <= 0:
        raise ValueError(
            f"security_bits and correctness_bits must be > 0; got {security_bits}, "
            f"{correctness_bits}"
        )
    corrupt = math.floor(corruption_rate * banks + _EPSILON)
    dropped = math.floor(dropout_rate * banks + _EPSILON)
    for degree in range(2, banks - 1, 2):
        holders = degree + 1 if owner_holds_share else degree
        threshold = _threshold_for(
            banks, degree, holders, corrupt, dropped, security_bits, correctness_bits
        )
        if threshold is not None:
            return GraphPlan(GraphKind.SPARSE, banks, degree, threshold, banks - dropped)
    raise ValueError(
        f"no sparse graph of {banks} banks meets the bounds for corruption_rate "
        f"{corruption_rate}, dropout_rate {dropout_rate}, {security_bits} security bits: "
        "use the complete graph"
    )


def _threshold_for(
    banks: int,
    degree: int,
    holders: int,
    corrupt: int,
    dropped: int,
    security: float,
    correctness: float,
) -> int | None:
    """The least threshold meeting rules 1-3 of :func:`harary_parameters` (None: none)."""
    security_log = -(security + 1) * math.log(2)
    if _log_disconnected(banks, degree, corrupt + dropped) >= security_log:
        return None
    bound_log = security_log - math.log(banks)
    # the least c with P[X > c] <= 2^-(sigma+1) / N; X = corrupt neighbours
    above = _log_tails(_log_pmf(banks, corrupt, degree))  # above[c] = log P[X >= c]
    bound = int(np.argmax(np.append(above[1:], -np.inf) <= bound_log))
    threshold = max(2, (holders + bound) // 2 + 1)  # least t with 2t - holders > bound
    if threshold > holders:
        return None
    # P[S < t] for S = a dropped bank's surviving neighbours
    below = np.logaddexp.accumulate(_log_pmf(banks, banks - dropped, degree))
    if below[threshold - 1] > -correctness * math.log(2) - math.log(banks):
        return None
    return threshold


def _log_pmf(total: int, marked: int, draws: int) -> NDArray[np.float64]:
    """log P[X = x], x = 0..draws, X ~ hypergeometric (``draws`` of ``total``, ``marked``)."""
    x = np.arange(draws + 1, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        log_pmf = (
            _log_choose(marked, x)
            + _log_choose(total - marked, draws - x)
            - _log_choose(total, np.float64(draws))
        )
    impossible = (x > marked) | (draws - x > total - marked)
    return np.where(impossible, -np.inf, log_pmf)


def _log_choose(n: float, k: NDArray[np.float64] | np.float64) -> NDArray[np.float64]:
    result: NDArray[np.float64] = gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)
    return result


def _log_tails(log_pmf: NDArray[np.float64]) -> NDArray[np.float64]:
    """log P[X >= x] for each x, from the log pmf."""
    tails: NDArray[np.float64] = np.logaddexp.accumulate(log_pmf[::-1])[::-1]
    return tails


def _log_disconnected(banks: int, degree: int, removed: int) -> float:
    """Natural log of the union bound on H(N, k) losing connectivity with ``removed`` gone."""
    if degree > removed:
        return -math.inf
    pairs = math.log(banks) + math.log(banks - degree - 1) - math.log(2)
    all_removed = (
        math.lgamma(removed + 1)
        - math.lgamma(removed - degree + 1)
        + math.lgamma(banks - degree + 1)
        - math.lgamma(banks + 1)
    )
    return pairs + all_removed
