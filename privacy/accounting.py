"""Epsilon from a ledger of DP events, and noise calibration (pure functions).

Every privacy-relevant release at a bank is a sub-sampled Gaussian mechanism: DP-SGD
steps (Abadi et al., CCS 2016, "Deep learning with differential privacy") with
Poisson sampling rate ``q`` and noise multiplier ``sigma``, run for ``steps`` steps;
a one-off Gaussian release of aggregates is the same mechanism with ``q = 1`` and
``steps = 1``. Privacy loss is composed in Rényi DP (Mironov, CSF 2017) with the
sub-sampled Gaussian bound of Mironov, Talwar and Zhang (2019) as implemented by
Opacus's RDP accountant, then converted to (epsilon, delta).

Parallel composition over a fixed split. A bank splits its rows once into training
and held-out (test) rows by a per-record rule (a keyed hash of the record), so adding
or removing one record changes exactly one side. Every release is about one side
only (:attr:`DpEvent.rows`): DP-SGD and the set-up feature statistics are about the
training rows, evaluation releases about the test rows. Stability monitoring
releases counts of the records of a *later* file (applications made after the
development sample: other records than the development file's), a third row set
(``later``) whose releases compose with each other (every later file is counted
against one budget, whatever months they cover), in parallel with the two others.
Releases about disjoint row sets compose in parallel (McSherry, SIGMOD 2009,
"Privacy integrated queries", Theorem 4): the neighbouring data set differs on one
side only, so the privacy loss is that of the events of that side. Each side is
composed in RDP on its own and the bank's epsilon is the largest of the sides'
(:func:`epsilon_spent`); each side must stay within ``max_epsilon``.

Notes
-----
Parallel composition holds only while the split is fixed: a record that moved from
the test side to the training side would be covered by both sides' events. The
ledger therefore binds itself to one split (``PrivacyLedger.bind_split``).

RDP composition is tight for many Gaussian steps but its conversion to (epsilon,
delta) is slightly conservative: a privacy-loss-distribution (PLD) accountant gives a
smaller epsilon for the same events. fedcredit reports the RDP value, so the reported
epsilon is an upper bound; ``tests/privacy`` cross-checks it against Google's
``dp_accounting`` (RDP and PLD).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from opacus.accountants.analysis import rdp as privacy_analysis

__all__ = [
    "ACCOUNTANT",
    "EVENT_ROWS",
    "MAX_NOISE_MULTIPLIER",
    "RDP_ORDERS",
    "ROW_SETS",
    "DpEvent",
    "Rows",
    "calibrate_noise_multiplier",
    "epsilon_by_rows",
    "epsilon_spent",
    "one_release_noise_multiplier",
]

ACCOUNTANT = "rdp"
# Opacus's default RDP orders (1.1 ... 63) extended upwards: large noise multipliers
# have their optimal order beyond 63, and a missing order only loosens the bound.
RDP_ORDERS: tuple[float, ...] = (
    *(1 + x / 10.0 for x in range(1, 100)),
    *range(12, 64),
    *(2**k for k in range(6, 11)),
)
Rows = Literal["train", "test", "later"]
"""Which of the bank's row sets a release is about: its development file's two fixed
sets, or the records of its later files (stability monitoring)."""
ROW_SETS: tuple[Rows, ...] = ("train", "test", "later")
EVENT_ROWS: dict[str, Rows] = {
    "dp-sgd": "train",
    "gaussian-release": "train",
    "evaluation-release": "test",
    "stability-release": "later",
    "gbdt-histogram": "train",
}
"""Each event kind and the row set its releases are about."""
MAX_NOISE_MULTIPLIER = 1e3
"""The largest noise multiplier a calibration tries before it refuses."""
_SEARCH_ITERATIONS = 60


@dataclass(frozen=True, kw_only=True)
class DpEvent:
    """One privacy-relevant release: ``steps`` sub-sampled Gaussian steps.

    Attributes
    ----------
    round : int
        Federated round (0 for set-up releases such as feature statistics).
    noise_multiplier : float
        Noise standard deviation divided by the L2 sensitivity (``max_grad_norm``).
    sample_rate : float
        Poisson sampling probability per step, in (0, 1].
    steps : int
        Number of steps.
    max_grad_norm : float
        L2 clipping norm (the sensitivity) of each step.
    kind : str
        ``dp-sgd`` (training steps), ``gaussian-release`` (the set-up feature
        statistics), ``evaluation-release`` (noisy evaluation sums of the test rows)
        ``stability-release`` (noisy bin counts of a later file's records) or
        ``gbdt-histogram`` (one tree level's noisy gradient histograms of the training
        rows, :mod:`privacy.gbdt_histogram`).
    run : str
        The run the release belongs to ("" in ledgers written before runs were
        recorded); ``fedcredit privacy verify`` matches it with the run's plan.
    rows : {"train", "test", "later"}
        The row set the release is about; must be the kind's (:data:`EVENT_ROWS`).
        Events about different row sets compose in parallel (module docstring).
    """

    round: int
    noise_multiplier: float
    sample_rate: float
    steps: int
    max_grad_norm: float
    kind: str = "dp-sgd"
    run: str = ""
    rows: Rows = "train"

    def __post_init__(self) -> None:
        if self.kind not in EVENT_ROWS:
            raise ValueError(f"kind must be one of {sorted(EVENT_ROWS)}; got {self.kind!r}")
        if self.rows != EVENT_ROWS[self.kind]:
            raise ValueError(
                f"rows of a {self.kind} event must be {EVENT_ROWS[self.kind]!r}; got {self.rows!r}"
            )
        if not self.noise_multiplier > 0:
            raise ValueError(f"noise_multiplier must be > 0; got {self.noise_multiplier}")
        if not 0 < self.sample_rate <= 1:
            raise ValueError(f"sample_rate must be in (0, 1]; got {self.sample_rate}")
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1; got {self.steps}")
        if not self.max_grad_norm > 0:
            raise ValueError(f"max_grad_norm must be > 0; got {self.max_grad_norm}")


def epsilon_spent(events: Sequence[DpEvent], delta: float) -> float:
    """The bank's epsilon at ``delta``: the largest of its row sets' (0 for no events).

    Events about the training rows, the test rows and later files compose in parallel
    (module docstring), so the bank's epsilon is the maximum over the row sets of the
    RDP composition of that set's events (:func:`epsilon_by_rows`).

    Parameters
    ----------
    events : sequence of DpEvent
        Every release about the bank's records.
    delta : float
        Target delta, in (0, 1); the same for both row sets.
    """
    return max(epsilon_by_rows(events, delta).values())


def epsilon_by_rows(events: Sequence[DpEvent], delta: float) -> dict[str, float]:
    """Epsilon at ``delta`` of each row set's events: ``{"train": ..., "test": ..., "later": ...}``.

    Each row set's events are composed sequentially (RDP adds up); the sets
    are not composed with each other (parallel composition, module docstring). A
    row set without events has spent 0.

    Parameters
    ----------
    events : sequence of DpEvent
        Every release about the bank's records.
    delta : float
        Target delta, in (0, 1).
    """
    if not 0 < delta < 1:
        raise ValueError(f"delta must be in (0, 1); got {delta}")
    spent: dict[str, float] = {}
    for rows in ROW_SETS:
        side = [event for event in events if event.rows == rows]
        spent[rows] = _epsilon_from_rdp(_rdp(side), delta) if side else 0.0
    return spent


def _rdp(events: Sequence[DpEvent]) -> NDArray[np.float64]:
    """RDP of the composition at every order in :data:`RDP_ORDERS` (RDP adds up)."""
    total = np.zeros(len(RDP_ORDERS))
    for event in events:
        total += _rdp_of(event.noise_multiplier, event.sample_rate, event.steps)
    return total


def _rdp_of(noise_multiplier: float, sample_rate: float, steps: int) -> NDArray[np.float64]:
    """RDP of ``steps`` sub-sampled Gaussian steps: ``steps`` times that of one step."""
    return steps * np.asarray(_rdp_per_step(noise_multiplier, sample_rate), dtype=np.float64)


@functools.lru_cache(maxsize=8192)
def _rdp_per_step(noise_multiplier: float, sample_rate: float) -> tuple[float, ...]:
    """One step's RDP at every order (cached: a run repeats the same few events)."""
    rdp = privacy_analysis.compute_rdp(
        q=sample_rate, noise_multiplier=noise_multiplier, steps=1, orders=list(RDP_ORDERS)
    )
    return tuple(float(value) for value in np.atleast_1d(rdp))


def _epsilon_from_rdp(rdp: NDArray[np.float64], delta: float) -> float:
    with warnings.catch_warnings():
        # Opacus warns when the best order is the largest one tried: the bound is then
        # valid but could be tighter. Reported epsilons stay on the safe side.
        warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
        epsilon, _ = privacy_analysis.get_privacy_spent(
            orders=list(RDP_ORDERS), rdp=rdp, delta=delta
        )
    return float(epsilon)


def one_release_noise_multiplier(max_epsilon: float, delta: float, rows: Rows = "train") -> float:
    """The noise multiplier of one Gaussian release (q = 1, one step) costing ``max_epsilon``.

    :func:`calibrate_noise_multiplier` for a single release with nothing spent before
    it: a bank's share of its budget for a one-off release (the set-up aggregates, a
    later file's counts).

    Raises
    ------
    ValueError
        Not even the largest noise multiplier makes the release cost that little.
    """
    return calibrate_noise_multiplier(
        spent=[],
        planned_rounds=1,
        sample_rate=1.0,
        steps_per_round=1,
        max_epsilon=max_epsilon,
        delta=delta,
        rows=rows,
    )


def calibrate_noise_multiplier(
    *,
    spent: Sequence[DpEvent],
    planned_rounds: int,
    sample_rate: float,
    steps_per_round: int,
    max_epsilon: float,
    delta: float,
    rows: Rows = "train",
) -> float:
    """The smallest noise multiplier whose planned rounds keep epsilon <= ``max_epsilon``.

    The plan is ``planned_rounds`` rounds of ``steps_per_round`` sub-sampled Gaussian
    steps each about the row set ``rows``, composed with the releases already
    ``spent`` about the same row set (releases about the other set compose in
    parallel and do not count). Bisection on the noise multiplier (epsilon decreases
    monotonically in it); the returned value is on the safe side.

    Parameters
    ----------
    spent : sequence of DpEvent
        The bank's releases so far (any row set; only ``rows``'s are composed).
    planned_rounds : int
        Rounds (or releases) planned, >= 1.
    sample_rate : float
        Poisson sampling rate of each planned step, in (0, 1].
    steps_per_round : int
        Steps per planned round, >= 1.
    max_epsilon : float
        The bank's maximum epsilon, > 0.
    delta : float
        Target delta, in (0, 1).
    rows : {"train", "test"}, default "train"
        The row set the planned releases are about: ``train`` for DP-SGD, ``test``
        for evaluation releases.

    Raises
    ------
    ValueError
        No noise multiplier up to 1000 fits the remaining budget.
    """
    if planned_rounds < 1:
        raise ValueError(f"planned_rounds must be >= 1; got {planned_rounds}")
    if not 0 < delta < 1:
        raise ValueError(f"delta must be in (0, 1); got {delta}")
    if steps_per_round < 1:
        raise ValueError(f"steps_per_round must be >= 1; got {steps_per_round}")
    if rows not in ROW_SETS:
        raise ValueError(f"rows must be one of {ROW_SETS}; got {rows!r}")
    composed = tuple(
        (event.noise_multiplier, event.sample_rate, event.steps)
        for event in spent
        if event.rows == rows
    )
    return _calibrated(composed, planned_rounds, steps_per_round, sample_rate, max_epsilon, delta)


@functools.lru_cache(maxsize=4096)
def _calibrated(
    composed: tuple[tuple[float, float, int], ...],
    planned_rounds: int,
    steps_per_round: int,
    sample_rate: float,
    max_epsilon: float,
    delta: float,
) -> float:
    """:func:`calibrate_noise_multiplier` of what the composition depends on.

    A pure function of its arguments, remembered per process: the simulated banks of
    one worker with the same budget and training rows calibrate alike.

    Raises
    ------
    ValueError
        No noise multiplier up to 1000 fits the remaining budget.
    """
    already = np.zeros(len(RDP_ORDERS))
    for noise_multiplier, rate, steps in composed:
        already += _rdp_of(noise_multiplier, rate, steps)
    total_steps = planned_rounds * steps_per_round

    def epsilon_at(noise_multiplier: float) -> float:
        return _epsilon_from_rdp(
            already + _rdp_of(noise_multiplier, sample_rate, total_steps), delta
        )

    low, high = 0.0, 1.0
    while epsilon_at(high) > max_epsilon:
        if high >= MAX_NOISE_MULTIPLIER:
            raise ValueError(
                f"max_epsilon {max_epsilon} cannot cover {planned_rounds} rounds of "
                f"{steps_per_round} steps at sampling rate {sample_rate:.4g} after what is "
                "already spent, even with noise multiplier 1000"
            )
        low, high = high, high * 2
    for _ in range(_SEARCH_ITERATIONS):
        middle = (low + high) / 2
        if epsilon_at(middle) > max_epsilon:
            low = middle
        else:
            high = middle
        if high - low < 1e-4 * high:
            break
    return high
