"""The federated strategies a run may use, their options and Flower's defaults.

Shared by both sides: the coordinator applies a server optimiser to the securely
aggregated mean (:mod:`coordinator.app.server_optimizer`), a bank adds FedProx's
proximal term to its local objective (:mod:`credit.proximal`). Which option belongs
to which strategy, and what each defaults to, is decided here once.

================  ==========================================  =====================
strategy          what changes                                options
================  ==========================================  =====================
``fedavg``        nothing: the aggregated mean is the model   none
``fedprox``       the banks' local objective (+ mu/2 ||w -    ``proximal-mu``
                  w_global||^2; Li et al., MLSys 2020)
``fedadam``       the server step (Adam on the pseudo-        ``server-learning-rate``,
                  gradient; Reddi et al., ICLR 2021)          ``server-beta1``,
                                                              ``server-beta2``,
                                                              ``server-tau``
``fedyogi``       the server step (Yogi; Reddi et al.)        as ``fedadam``
``fedavgm``       the server step (SGD with momentum; Hsu     ``server-learning-rate``,
                  et al. 2019)                                ``server-momentum``
================  ==========================================  =====================

Defaults are those of Flower's strategies (``flwr.serverapp.strategy``, Flower 1.41):
``FedAdam`` eta 0.1, ``FedYogi`` eta 0.01, ``FedAvgM`` server learning rate 1.0 and
momentum 0.0; beta1 0.9, beta2 0.99, tau 1e-3 for both adaptive ones; ``FedProx``
mu 0.0.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "DEFAULT_BETA1",
    "DEFAULT_BETA2",
    "DEFAULT_PROXIMAL_MU",
    "DEFAULT_SERVER_MOMENTUM",
    "DEFAULT_TAU",
    "STRATEGY_DEFAULT",
    "Strategy",
    "flower_server_learning_rate",
    "misplaced_option",
    "plain_fedavg_problem",
    "server_learning_rate_of",
]


class Strategy(StrEnum):
    """How the consortium turns the banks' updates into the next global model."""

    FEDAVG = "fedavg"
    FEDPROX = "fedprox"
    FEDADAM = "fedadam"
    FEDYOGI = "fedyogi"
    FEDAVGM = "fedavgm"

    @property
    def adaptive(self) -> bool:
        """Whether the server step is adaptive (FedAdam, FedYogi: beta1, beta2, tau)."""
        return self in (Strategy.FEDADAM, Strategy.FEDYOGI)

    @property
    def server_optimiser(self) -> bool:
        """Whether the coordinator steps from the aggregated mean (FedAdam, FedYogi, FedAvgM)."""
        return self.adaptive or self is Strategy.FEDAVGM

    def options(self) -> frozenset[str]:
        """The run-config fields (snake case) this strategy reads."""
        if self is Strategy.FEDPROX:
            return frozenset({"proximal_mu"})
        if self.adaptive:
            return frozenset({"server_learning_rate", "server_beta1", "server_beta2", "server_tau"})
        if self is Strategy.FEDAVGM:
            return frozenset({"server_learning_rate", "server_momentum"})
        return frozenset()


STRATEGY_DEFAULT = 0.0
"""``server-learning-rate``'s default: the chosen strategy's own (Flower's) rate."""
DEFAULT_BETA1 = 0.9
"""``FedAdam``'s and ``FedYogi``'s ``beta_1`` in Flower."""
DEFAULT_BETA2 = 0.99
"""``FedAdam``'s and ``FedYogi``'s ``beta_2`` in Flower."""
DEFAULT_TAU = 1e-3
"""``FedAdam``'s and ``FedYogi``'s ``tau`` in Flower."""
DEFAULT_SERVER_MOMENTUM = 0.0
"""``FedAvgM``'s ``server_momentum`` in Flower."""
DEFAULT_PROXIMAL_MU = 0.0
"""``FedProx``'s ``proximal_mu`` in Flower."""

_FLOWER_SERVER_LEARNING_RATE = {
    Strategy.FEDADAM: 0.1,
    Strategy.FEDYOGI: 1e-2,
    Strategy.FEDAVGM: 1.0,
}


def flower_server_learning_rate(strategy: Strategy) -> float:
    """Flower's default server learning rate (``eta``) of a server-optimiser strategy.

    Raises
    ------
    ValueError
        ``strategy`` has no server step (``fedavg``, ``fedprox``).
    """
    if strategy not in _FLOWER_SERVER_LEARNING_RATE:
        raise ValueError(f"strategy '{strategy}' has no server learning rate")
    return _FLOWER_SERVER_LEARNING_RATE[strategy]


def server_learning_rate_of(strategy: Strategy, server_learning_rate: float) -> float:
    """The server step size a run uses: its own, or (:data:`STRATEGY_DEFAULT`) Flower's.

    0.0 for a strategy without a server step (``fedavg``, ``fedprox``).
    """
    if not strategy.server_optimiser:
        return 0.0
    if server_learning_rate != STRATEGY_DEFAULT:
        return server_learning_rate
    return flower_server_learning_rate(strategy)


def misplaced_option(strategy: Strategy, name: str, value: float, default: float) -> str | None:
    """Why option ``name`` (snake case) set to ``value`` does not fit ``strategy`` (None: it does).

    An option of another strategy may only keep its default.
    """
    if value == default or name in strategy.options():
        return None
    users = ", ".join(s.value for s in Strategy if name in s.options())
    return (
        f"is an option of strategy {users} only; the run's strategy is '{strategy}' "
        f"(leave it at its default {default:g}, or choose the strategy)"
    )


def plain_fedavg_problem(
    strategy: Strategy, *, proximal_mu: float, server_momentum: float, server_learning_rate: float
) -> str | None:
    """Why these settings make ``strategy`` plain FedAvg (None: they do not).

    ``server_learning_rate`` is the one the run uses (:func:`server_learning_rate_of`).
    """
    if strategy is Strategy.FEDPROX and proximal_mu == 0:
        return (
            "strategy fedprox with proximal-mu 0 is plain FedAvg: set proximal-mu > 0 "
            "(e.g. 0.01), or choose strategy fedavg"
        )
    if strategy is Strategy.FEDAVGM and server_momentum == 0 and server_learning_rate == 1:
        return (
            "strategy fedavgm with server-momentum 0 and server-learning-rate 1 (Flower's "
            "defaults) is plain FedAvg: set server-momentum (e.g. 0.9), or choose "
            "strategy fedavg"
        )
    return None
