"""Flower's own SecAgg+ in Flower's Simulation Engine, with trivial local compute.

The reference for fedcredit's secure aggregation (:mod:`bench.secagg_fedcredit` has
the same command line and output). Run one measurement per process (Ray starts per
process)::

    python -m bench.secagg_flower --mode plain|secaggplus --banks N --params P --rounds R

and read one JSON line on stdout (everything else goes to stderr). Both modes use
Flower's legacy API as its SecAgg+ examples do: a ServerApp whose main function wraps
the context in ``LegacyContext`` (FedAvg, every bank every round, no federated
evaluation) and runs ``DefaultWorkflow``, and a ClientApp around a ``NumPyClient``
whose model is one float32 vector of P parameters and whose ``fit`` returns the
received vector plus 0.001 (``num_examples`` = 1):

* ``plain``: ``DefaultWorkflow()``, Flower's standard FedAvg fit (one round trip).
* ``secaggplus``: ``DefaultWorkflow(fit_workflow=SecAggPlusWorkflow(...))`` and the
  ClientApp with ``mods=[secaggplus_mod]``: setup, share keys, collect masked
  vectors, unmask (four round trips). ``num_shares`` = N (every bank shares its keys
  with every other, like fedcredit's complete graph) and ``reconstruction_threshold``
  = N // 2 + 1 (a strict majority must survive to unmask; needs N >= 3).
  ``clipping_range`` (8) and ``quantization_range`` (2**22) are Flower's defaults;
  ``max_weight`` is 1 (Flower's default is 1000) because each bank reports one
  example: with 1000 the weight factor 1/1000 would eat ten bits of the 22-bit
  quantisation and the aggregate would be off by ~1e-3. The protocol's cost does not
  depend on it.

Measured:

* ``round_seconds``: at the server, from the end of one round to the end of the next;
  the end of a round is the call of the strategy's centralised ``evaluate_fn``, which
  ``DefaultWorkflow`` makes after initialisation (round 0) and after each round's fit
  (``default_centralized_evaluation_workflow``). Round 1 starts after initialisation
  (initial parameters come from the strategy, no client is asked).
* ``seconds_per_round``: median of rounds 2..R (round 1 includes the actors' start).
* ``bytes_up_per_participant``: mean over rounds 1..R of the bytes all participants
  sent in the round divided by N, where a participant's bytes are the serialized
  size of each reply ``Message`` (Flower's protobuf ``Message``: metadata and
  content, ``message_to_proto(reply).SerializeToString()``), taken as the replies
  reach the ServerApp's ``Grid.send_and_receive``; for SecAgg+ the replies of all
  four stages. Messages from the server are not counted.
* ``peak_rss_mb``: peak of the summed RSS of this process and all its descendants
  (Ray's GCS, raylet and workers), sampled every 0.2 s from /proc by
  :class:`bench._memory.PeakMemory` (the same sampler as the fedcredit runner).

Each round's aggregate is also checked against 0.001 x round (within one SecAgg+
quantisation step per round); a wrong aggregate fails the run.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import numpy as np
from flwr.app import Context, Message, RecordDict
from flwr.client import Client, NumPyClient
from flwr.client.mod import secaggplus_mod
from flwr.clientapp import ClientApp
from flwr.clientapp.typing import Mod
from flwr.common import Config, NDArrays, Scalar, ndarrays_to_parameters
from flwr.common.serde import message_to_proto
from flwr.proto.node_pb2 import NodeInfo
from flwr.server import LegacyContext, ServerConfig
from flwr.server.strategy import FedAvg
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow
from flwr.serverapp import Grid, ServerApp
from flwr.supercore.run import Run

from bench._memory import PeakMemory
from deploy.flower_env import set_offline_defaults

MODES = ("plain", "secaggplus")
_STEP = np.float32(0.001)
_CLIPPING_RANGE = 8.0  # Flower's default
_QUANTIZATION_RANGE = 2**22  # Flower's default


class _TrivialClient(NumPyClient):
    """Local "training" is adding 0.001 to the received vector."""

    def fit(self, parameters: NDArrays, config: Config) -> tuple[NDArrays, int, dict[str, Scalar]]:
        return [parameters[0] + _STEP], 1, {}


def _client_app(mode: str) -> ClientApp:
    def client_fn(context: Context) -> Client:
        return _TrivialClient().to_client()

    mods: list[Mod] = [secaggplus_mod] if mode == "secaggplus" else []
    return ClientApp(client_fn=client_fn, mods=mods)


class _Recorder:
    """Round ends, reply bytes per (round, participant) and aggregate errors."""

    def __init__(self) -> None:
        self.round_ends: list[float] = []
        self.errors: list[float] = []
        self.bytes_by_round: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))

    @property
    def current_round(self) -> int:
        return len(self.round_ends)

    def count(self, replies: Iterable[Message]) -> list[Message]:
        replies = list(replies)
        for reply in replies:
            size = len(message_to_proto(reply).SerializeToString())
            self.bytes_by_round[self.current_round][reply.metadata.src_node_id] += size
        return replies

    def round_end(
        self, server_round: int, parameters: NDArrays, config: dict[str, Scalar]
    ) -> tuple[float, dict[str, Scalar]] | None:
        """The strategy's ``evaluate_fn``: time the round, check the aggregate."""
        self.round_ends.append(time.perf_counter())
        self.errors.append(float(np.max(np.abs(parameters[0] - float(_STEP) * server_round))))
        if server_round:
            seconds = self.round_ends[-1] - self.round_ends[-2]
            print(f"round {server_round}: {seconds:.2f} s", file=sys.stderr, flush=True)
        return None


class _CountingGrid(Grid):
    """The ServerApp's Grid, counting the bytes of every reply it hands back."""

    def __init__(self, grid: Grid, recorder: _Recorder) -> None:
        self._grid = grid
        self._recorder = recorder

    def set_run(self, run: Run) -> None:
        self._grid.set_run(run)

    @property
    def run(self) -> Run:
        return self._grid.run

    def create_message(
        self,
        content: RecordDict,
        message_type: str,
        dst_node_id: int,
        group_id: str,
        ttl: float | None = None,
    ) -> Message:
        return self._grid.create_message(content, message_type, dst_node_id, group_id, ttl)

    def get_node_ids(self) -> Iterable[int]:
        return self._grid.get_node_ids()

    def get_nodes(self) -> Iterable[NodeInfo]:
        return self._grid.get_nodes()

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        return self._grid.push_messages(messages)

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return self._recorder.count(self._grid.pull_messages(message_ids))

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        return self._recorder.count(self._grid.send_and_receive(messages, timeout=timeout))


def _server_app(mode: str, n_banks: int, n_params: int, rounds: int, out: _Recorder) -> ServerApp:
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        strategy = FedAvg(
            fraction_fit=1.0,
            fraction_evaluate=0.0,
            min_fit_clients=n_banks,
            min_evaluate_clients=0,
            min_available_clients=n_banks,
            initial_parameters=ndarrays_to_parameters([np.zeros(n_params, dtype=np.float32)]),
            evaluate_fn=out.round_end,
            fit_metrics_aggregation_fn=lambda metrics: {},
        )
        legacy = LegacyContext(context, config=ServerConfig(num_rounds=rounds), strategy=strategy)
        fit_workflow = None
        if mode == "secaggplus":
            fit_workflow = SecAggPlusWorkflow(
                num_shares=n_banks,
                reconstruction_threshold=n_banks // 2 + 1,
                max_weight=1.0,
                clipping_range=_CLIPPING_RANGE,
                quantization_range=_QUANTIZATION_RANGE,
            )
        DefaultWorkflow(fit_workflow=fit_workflow)(_CountingGrid(grid, out), legacy)

    return app


@contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Send file descriptor 1 (ours and Ray's children's) to stderr for a while."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _simulate(mode: str, n_banks: int, n_params: int, rounds: int, out: _Recorder) -> float:
    """Run the simulation; return the peak RSS of the process tree in MiB."""
    from flwr.simulation import run_simulation

    with _stdout_to_stderr(), PeakMemory() as memory:
        run_simulation(
            server_app=_server_app(mode, n_banks, n_params, rounds, out),
            client_app=_client_app(mode),
            num_supernodes=n_banks,
            backend_config={
                "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
                "init_args": {
                    "num_cpus": os.cpu_count() or 1,
                    "num_gpus": 0,
                    "include_dashboard": False,
                    "log_to_driver": False,
                    "_node_ip_address": "127.0.0.1",
                },
            },
        )
    return memory.peak_mb


def measure(mode: str, n_banks: int, n_params: int, rounds: int) -> dict[str, object]:
    """Run one simulation; the figures of the module docstring."""
    if mode not in MODES:
        raise ValueError(f"`mode` must be one of {MODES}; got {mode!r}")
    if mode == "secaggplus" and n_banks < 3:
        raise ValueError(f"`banks` must be >= 3 for SecAgg+ (num_shares > 2); got {n_banks}")
    set_offline_defaults(simulation=True)
    logging.getLogger("flwr").setLevel(logging.WARNING)
    recorder = _Recorder()
    peak_mb = _simulate(mode, n_banks, n_params, rounds, recorder)
    ends = recorder.round_ends
    if len(ends) != rounds + 1:
        raise RuntimeError(f"the run did not finish: {len(ends) - 1} of {rounds} rounds")
    tolerance = 1e-6 + rounds * 2 * _CLIPPING_RANGE / _QUANTIZATION_RANGE
    if max(recorder.errors) > tolerance:
        raise RuntimeError(f"aggregate is wrong: errors by round {recorder.errors}")
    print(f"largest aggregate error: {max(recorder.errors):.2e}", file=sys.stderr)
    seconds = [b - a for a, b in itertools.pairwise(ends)]
    per_round = [sum(recorder.bytes_by_round[r].values()) / n_banks for r in range(1, rounds + 1)]
    return {
        "system": "flower",
        "mode": mode,
        "banks": n_banks,
        "params": n_params,
        "rounds": rounds,
        "round_seconds": seconds,
        "seconds_per_round": statistics.median(seconds[1:] if rounds > 1 else seconds),
        "bytes_up_per_participant": int(statistics.fmean(per_round)),
        "peak_rss_mb": peak_mb,
    }


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point: one measurement, one JSON line on stdout."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=MODES, required=True)
    parser.add_argument("--banks", type=int, required=True)
    parser.add_argument("--params", type=int, required=True)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args(argv)
    result = measure(args.mode, args.banks, args.params, args.rounds)
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
