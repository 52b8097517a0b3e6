"""Server optimisers: the coordinator's step from the securely aggregated mean.

FedAdam, FedYogi (Reddi et al., "Adaptive Federated Optimization", ICLR 2021) and
FedAvgM (Hsu et al., "Measuring the Effects of Non-Identical Data Distribution for
Federated Visual Classification", 2019) treat the difference between the global
model sent and the banks' aggregated mean as a gradient and take an optimiser's step
with it. The coordinator only ever sees the mean (with secure aggregation, only the
unmasked sum of the masked updates: :mod:`coordinator.app.aggregation`), and that is
all these steps need, so they compose with secure aggregation unchanged.

The equations are Flower's (``flwr.serverapp.strategy``: ``fedopt.py``,
``fedadam.py``, ``fedyogi.py``, ``fedavgm.py``), written again on arrays because
Flower's strategies read them from reply messages inside their own Grid loop; a test
checks that :meth:`ServerOptimizer.step` gives what Flower's ``aggregate_train``
gives on the same replies, over one round and several. With ``x`` the global model
sent in round ``t`` and ``a`` the aggregated mean:

* FedAdam: ``d = a - x``; ``m = b1 m + (1 - b1) d``; ``v = b2 v + (1 - b2) d^2``;
  ``x' = x + eta sqrt(1 - b2^(t+1)) / (1 - b1^(t+1)) m / (sqrt(v) + tau)``
  (Flower's bias correction uses ``t + 1``).
* FedYogi: as FedAdam, but ``v = v - (1 - b2) d^2 sign(v - d^2)`` and no bias
  correction.
* FedAvgM: ``g = x - a``; ``u = g`` in the first step, then ``u = beta u + g``
  (momentum > 0); ``x' = x - lr u``.

``m``, ``v`` and ``u`` start at zero (FedAvgM's at the first pseudo-gradient) and are
the optimiser's state: the coordinator's checkpoint keeps them
(:mod:`coordinator.app.checkpoint`), so a resumed run takes the steps the
uninterrupted run would. A round whose update was aborted takes no step (Flower's
``aggregate_train`` returns nothing then either), and the state stays as it was.

Notes
-----
The new model keeps the global model's dtypes (float32 for the models fedcredit
builds): Flower's FedAdam returns float64 arrays (its bias-corrected step size is a
NumPy float64), which the banks' updates would then no longer match.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from flwr.app import Array, ArrayRecord
from numpy.typing import NDArray

from credit.run_config import RunConfig
from credit.strategy import Strategy

__all__ = ["OptimizerState", "ServerOptimizer", "ServerStep"]

Arrays = dict[str, NDArray[np.floating]]


@dataclass(frozen=True)
class OptimizerState:
    """A server optimiser's moments after its last step.

    Attributes
    ----------
    moments : dict of str to dict of str to ndarray
        Moment name (``m`` and ``v`` for FedAdam and FedYogi, ``momentum`` for FedAvgM)
        -> the model's array name -> its value. Empty before the first step.
    """

    moments: dict[str, Arrays] = field(default_factory=dict)

    def flat(self) -> dict[str, NDArray[np.floating]]:
        """Every array as ``"<moment>/<array name>"`` -> value (the checkpoint's form)."""
        return {
            f"{moment}/{name}": value
            for moment, arrays in self.moments.items()
            for name, value in arrays.items()
        }

    @classmethod
    def from_flat(cls, flat: Mapping[str, NDArray[np.floating]]) -> OptimizerState:
        """Inverse of :meth:`flat`.

        Raises
        ------
        ValueError
            A key without a ``"<moment>/"`` prefix.
        """
        moments: dict[str, Arrays] = {}
        for key, value in flat.items():
            moment, separator, name = key.partition("/")
            if not separator or not name:
                raise ValueError(f"optimizer state key '{key}' is not '<moment>/<array name>'")
            moments.setdefault(moment, {})[name] = value
        return cls(moments)


@dataclass(frozen=True)
class ServerStep:
    """A server step's result: the new global model and the optimiser's new state."""

    arrays: ArrayRecord
    state: OptimizerState


@dataclass(frozen=True, kw_only=True)
class ServerOptimizer:
    """The server step of a FedAdam, FedYogi or FedAvgM run.

    Parameters
    ----------
    strategy : Strategy
        ``fedadam``, ``fedyogi`` or ``fedavgm``.
    learning_rate : float
        Server step size (Flower's ``eta`` or ``server_learning_rate``), > 0.
    momentum : float, default 0.0
        FedAvgM's server momentum, in [0, 1).
    beta1, beta2 : float, default 0.9, 0.99
        FedAdam's and FedYogi's moment decays, in [0, 1).
    tau : float, default 1e-3
        FedAdam's and FedYogi's adaptivity floor, > 0.
    """

    strategy: Strategy
    learning_rate: float
    momentum: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.99
    tau: float = 1e-3

    def __post_init__(self) -> None:
        if not self.strategy.server_optimiser:
            raise ValueError(f"strategy '{self.strategy}' takes no server step")
        if not (self.learning_rate > 0 and np.isfinite(self.learning_rate)):
            raise ValueError(f"learning_rate must be > 0 and finite; got {self.learning_rate}")
        for name in ("momentum", "beta1", "beta2"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1); got {getattr(self, name)}")
        if not self.tau > 0:
            raise ValueError(f"tau must be > 0; got {self.tau}")

    @classmethod
    def of_run(cls, config: RunConfig) -> ServerOptimizer | None:
        """The run's server optimiser (None: its strategy takes no server step)."""
        if not config.strategy.server_optimiser:
            return None
        return cls(
            strategy=config.strategy,
            learning_rate=config.effective_server_learning_rate,
            momentum=config.server_momentum,
            beta1=config.server_beta1,
            beta2=config.server_beta2,
            tau=config.server_tau,
        )

    def describe(self) -> str:
        """One line for the terminal at set-up."""
        if self.strategy is Strategy.FEDAVGM:
            return (
                f"strategy fedavgm: server learning rate {self.learning_rate:g}, "
                f"momentum {self.momentum:g}"
            )
        return (
            f"strategy {self.strategy}: server learning rate {self.learning_rate:g}, "
            f"beta1 {self.beta1:g}, beta2 {self.beta2:g}, tau {self.tau:g}"
        )

    def step(
        self,
        server_round: int,
        current: ArrayRecord,
        aggregated: ArrayRecord,
        state: OptimizerState | None,
    ) -> ServerStep:
        """The global model after round ``server_round``'s server step.

        Parameters
        ----------
        server_round : int
            The round (>= 1): FedAdam's bias correction depends on it.
        current : ArrayRecord
            The global model the round's train messages carried.
        aggregated : ArrayRecord
            The banks' aggregated mean model of the round (same arrays and shapes).
        state : OptimizerState or None
            The state after the last step (None: no step yet).

        Raises
        ------
        ValueError
            ``aggregated`` does not hold ``current``'s arrays and shapes.
        """
        x = _numpy(current)
        a = _numpy(aggregated)
        _check_like(a, x)
        moments = {} if state is None else state.moments
        if self.strategy is Strategy.FEDAVGM:
            new, moments = self._fedavgm(x, a, moments)
        else:
            new, moments = self._adaptive(server_round, x, a, moments)
        arrays = ArrayRecord(
            {name: Array(np.asarray(new[name], dtype=x[name].dtype)) for name in current}
        )
        return ServerStep(arrays=arrays, state=OptimizerState(moments))

    def _adaptive(
        self, server_round: int, x: Arrays, a: Arrays, moments: Mapping[str, Arrays]
    ) -> tuple[Arrays, dict[str, Arrays]]:
        """FedAdam's or FedYogi's step (``FedOpt._compute_deltat_and_mt`` and theirs)."""
        delta = {k: a[k] - x[k] for k in a}
        m = moments.get("m") or {k: np.zeros_like(value) for k, value in a.items()}
        m = {k: self.beta1 * value + (1 - self.beta1) * delta[k] for k, value in m.items()}
        v = moments.get("v") or {k: np.zeros_like(value) for k, value in a.items()}
        if self.strategy is Strategy.FEDADAM:
            v = {k: self.beta2 * w + (1 - self.beta2) * (delta[k] ** 2) for k, w in v.items()}
            eta = (
                self.learning_rate
                * np.sqrt(1 - np.power(self.beta2, server_round + 1.0))
                / (1 - np.power(self.beta1, server_round + 1.0))
            )
        else:
            v = {
                k: value - (1.0 - self.beta2) * (delta[k] ** 2) * np.sign(value - delta[k] ** 2)
                for k, value in v.items()
            }
            eta = self.learning_rate
        new = {k: value + eta * m[k] / (np.sqrt(v[k]) + self.tau) for k, value in x.items()}
        return new, {"m": m, "v": v}

    def _fedavgm(
        self, x: Arrays, a: Arrays, moments: Mapping[str, Arrays]
    ) -> tuple[Arrays, dict[str, Arrays]]:
        """FedAvgM's step (``FedAvgM.aggregate_train``: SGD with momentum, no Nesterov)."""
        gradient: Arrays = {k: x[k] - a[k] for k in x}
        if self.momentum == 0:
            return {k: x[k] - self.learning_rate * gradient[k] for k in x}, {}
        previous = moments.get("momentum")
        velocity: Arrays
        if previous is None:
            velocity = gradient
        else:
            velocity = {k: self.momentum * previous[k] + gradient[k] for k in x}
        new = {k: x[k] - self.learning_rate * velocity[k] for k in x}
        return new, {"momentum": velocity}


def _numpy(arrays: ArrayRecord) -> Arrays:
    return {name: arrays[name].numpy() for name in arrays}


def _check_like(aggregated: Arrays, current: Arrays) -> None:
    if list(aggregated) != list(current):
        raise ValueError(
            f"the aggregated model's arrays {list(aggregated)} are not the global model's "
            f"{list(current)}"
        )
    for name, value in aggregated.items():
        if value.shape != current[name].shape:
            raise ValueError(
                f"aggregated array '{name}' has shape {value.shape}, the global model's "
                f"{current[name].shape}"
            )
