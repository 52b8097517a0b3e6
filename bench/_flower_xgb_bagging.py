"""Flower's XGBoost bagging on fedcredit's simulated banks, for ``bench/gbdt.py``.

The system fedcredit's federated boosting is compared with, run as Flower ships it:
``flwr.serverapp.strategy.FedXgbBagging`` in a ServerApp and a ClientApp in the
pattern of Flower's ``xgboost-quickstart`` example, on Flower's Simulation Engine
(:func:`simulations.engine.run_on_simulation_engine`, as ``fedcredit simulate`` runs).

Each round, every bank loads the global model, boosts **one** tree on its own rows
(``tree_method="hist"`` with its own quantile bins: the banks share no edges) and
returns that tree; the strategy appends every bank's tree to the global model. After
``R`` rounds over ``B`` banks the model holds ``R x B`` trees. The base score is the
pooled training default rate (what fedcredit's banks' summed statistics give), the same
for every bank, so the model does not depend on which bank answers first.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedXgbBagging
from numpy.typing import NDArray

from credit.gbdt import BoostingParams
from deploy.flower_env import set_offline_defaults

__all__ = [
    "BankRows",
    "bagged_model",
    "bagging_rounds",
    "local_tree",
    "make_client_app",
    "make_server_app",
    "run_bagging",
    "xgboost_params",
]

XgboostParams = Mapping[str, str | int | float]


@dataclass(frozen=True, eq=False)
class BankRows:
    """One bank's training rows: the raw matrix (NaN = missing) and 0/1 labels."""

    name: str
    features: NDArray[np.float32]
    labels: NDArray[np.int64]


def xgboost_params(params: BoostingParams, *, base_score: float) -> dict[str, str | int | float]:
    """XGBoost's parameters for ``params``: the same depth, learning rate, lambda, gamma and bins.

    One thread per bank (the engine runs one bank per CPU).
    """
    return {
        "objective": "binary:logistic",
        "tree_method": "hist",
        "max_bin": params.max_bins,
        "max_depth": params.max_depth,
        "eta": params.learning_rate,
        "lambda": params.reg_lambda,
        "gamma": params.gamma,
        "min_child_weight": params.min_child_weight,
        "subsample": params.subsample,
        "colsample_bytree": params.colsample_bytree,
        "base_score": base_score,
        "nthread": 1,
    }


def bagging_rounds(n_trees: int, n_banks: int) -> int:
    """Rounds that give ``n_trees`` trees in all (one tree per bank per round), at least 1.

    The model then holds ``rounds x n_banks`` trees: ``n_trees`` when the banks divide it.
    """
    return max(1, n_trees // n_banks)


def local_tree(global_model: bytes, bank: BankRows, params: XgboostParams) -> bytes:
    """A bank's reply: one new tree boosted on its rows on top of ``global_model``.

    ``global_model`` is XGBoost JSON (empty in the first round: the tree is boosted
    from the base score). Returns XGBoost JSON holding the new tree only.
    """
    import xgboost

    train = xgboost.DMatrix(bank.features, label=bank.labels, nthread=1)
    if not global_model:
        booster = xgboost.train(dict(params), train, num_boost_round=1)
        return bytes(booster.save_raw("json"))
    booster = xgboost.Booster(params=dict(params), model_file=bytearray(global_model))
    booster.update(train, booster.num_boosted_rounds())
    trees = booster.num_boosted_rounds()
    return bytes(booster[trees - 1 : trees].save_raw("json"))


def make_client_app(banks: Sequence[BankRows], params: XgboostParams) -> ClientApp:
    """The ClientApp of every simulated bank; Flower's ``partition-id`` picks the bank."""
    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        partition_id = context.node_config["partition-id"]
        if not isinstance(partition_id, int) or not 0 <= partition_id < len(banks):
            raise ValueError(f"partition-id {partition_id!r} outside the {len(banks)} banks")
        bank = banks[partition_id]
        global_model = msg.content.array_records["arrays"]["0"].numpy().tobytes()
        tree = local_tree(global_model, bank, params)
        content = RecordDict(
            {
                "arrays": ArrayRecord([np.frombuffer(tree, dtype=np.uint8)]),
                "metrics": MetricRecord({"num-examples": len(bank.labels)}),
            }
        )
        return Message(content=content, reply_to=msg)

    return app


def bagged_model(grid: Grid, *, rounds: int, n_banks: int) -> bytes:
    """Run ``FedXgbBagging`` over all ``n_banks`` nodes of ``grid``; the final XGBoost JSON.

    No federated evaluation: the benchmark scores the final model on the held-out
    customers.
    """
    strategy = FedXgbBagging(
        fraction_train=1.0,
        fraction_evaluate=0.0,
        min_train_nodes=n_banks,
        min_available_nodes=n_banks,
    )
    empty = ArrayRecord([np.frombuffer(b"", dtype=np.uint8)])
    result = strategy.start(grid=grid, initial_arrays=empty, num_rounds=rounds)
    model: bytes = result.arrays["0"].numpy().tobytes()
    return model


def make_server_app(*, rounds: int, n_banks: int, on_final: Callable[[bytes], None]) -> ServerApp:
    """The ServerApp: :func:`bagged_model`, handed to ``on_final``."""
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        on_final(bagged_model(grid, rounds=rounds, n_banks=n_banks))

    return app


def run_bagging(banks: Sequence[BankRows], params: XgboostParams, *, rounds: int) -> bytes:
    """Run Flower's XGBoost bagging over ``banks`` on the Simulation Engine.

    Returns the final model as XGBoost JSON.

    Raises
    ------
    RuntimeError
        The ServerApp ended without a final model (Flower logged why).
    """
    from simulations.engine import run_on_simulation_engine

    set_offline_defaults(simulation=True)
    final: list[bytes] = []
    server_app = make_server_app(rounds=rounds, n_banks=len(banks), on_final=final.append)
    run_on_simulation_engine(
        server_app, make_client_app(banks, params), supernodes=len(banks), cpus=None
    )
    if not final:
        raise RuntimeError(
            f"Flower's FedXgbBagging over {len(banks)} banks ended without a final model; "
            "run with Flower's log at INFO to see why"
        )
    return final[0]
