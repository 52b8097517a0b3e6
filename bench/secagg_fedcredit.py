"""fedcredit's secure aggregation in Flower's Simulation Engine, with trivial local compute.

Run one measurement per process (Ray starts per process)::

    python -m bench.secagg_fedcredit --mode plain|secure --banks N --params P --rounds R

and read one JSON line on stdout. Both modes run fedcredit's own message flow
with the credit model replaced by one float32 vector of P parameters, and local
training replaced by "add 0.001", so that only the aggregation's cost shows:

* ``plain``: train (weights out, weights back; mean), evaluate (a tiny metric);
  two round trips per round, like fedcredit without secure aggregation.
* ``secure``: the same rounds through :mod:`coordinator.app.secagg_server` and
  :mod:`participant.app.secagg_client` exactly as the credit apps use them: train with the
  relayed keys and shares (masked vector back), unmask, and evaluate carrying the
  next round's keys; three round trips per round, plus two at set-up.

Measured: ``round_seconds`` (from the end of one round to the end of the next at
the coordinator, round 1 from the start of round 1, set-up excluded),
``seconds_per_round`` (median of rounds 2..R, round 1 includes the actors'
start), ``bytes_up_per_participant`` (mean over participants and rounds of the
serialized size of everything a participant sends in a round, as Flower's
protobuf ``Message``), and ``peak_rss_mb`` (see :mod:`bench._memory`).
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

import numpy as np
from flwr.app import (
    Array,
    ArrayRecord,
    ConfigRecord,
    Context,
    Message,
    MessageType,
    MetricRecord,
    RecordDict,
)
from flwr.clientapp import ClientApp
from flwr.common.serde import message_to_proto
from flwr.serverapp import Grid, ServerApp

from bench._memory import PeakMemory
from coordinator.app.exchange import send_and_receive
from coordinator.app.secagg_server import SecureAggregation
from credit import message_keys as keys
from credit.records import array_record, config_int, config_record, config_str, flatten
from deploy.flower_env import set_offline_defaults
from participant.app.secagg_client import (
    advertise,
    answer_unmask,
    enrollment,
    mask_update,
    wants_secure,
)

_TASK_ENROLL = "enroll"
_STEP = np.float32(0.001)


def _client_app() -> ClientApp:
    app = ClientApp()

    @app.query()
    def query(message: Message, context: Context) -> Message:
        config = config_record(message.content, keys.CONFIG)
        task = config_str(config, keys.TASK)
        run = message.metadata.run_id
        secagg = config_record(message.content, keys.SECAGG)
        if task == _TASK_ENROLL:
            record = enrollment(context, run)
        elif task == keys.TASK_SECAGG_ADVERTISE:
            answer = advertise(context, run, secagg)
            assert answer is not None
            record = answer
        else:
            record = answer_unmask(context, message)
        return Message(RecordDict({keys.SECAGG: record}), reply_to=message)

    @app.train()
    def train(message: Message, context: Context) -> Message:
        arrays = array_record(message.content, keys.ARRAYS)
        if not wants_secure(message):
            vector = arrays["w"].numpy() + _STEP
            content = RecordDict(
                {
                    keys.ARRAYS: ArrayRecord({"w": Array(vector)}),
                    keys.METRICS: MetricRecord({keys.NUM_EXAMPLES: 1}),
                }
            )
            return Message(content, reply_to=message)
        server_round = config_int(config_record(message.content, keys.CONFIG), keys.SERVER_ROUND)
        delta = np.full(flatten(arrays).size, float(_STEP))
        values = np.append(delta, [0.0, 0.0])  # no loss reported
        masked = mask_update(context, message, server_round, values, 1.0)
        return Message(RecordDict({keys.ARRAYS: masked}), reply_to=message)

    @app.evaluate()
    def evaluate(message: Message, context: Context) -> Message:
        content = RecordDict({keys.METRICS: MetricRecord({"score": 0.5})})
        if wants_secure(message):
            secagg = config_record(message.content, keys.SECAGG)
            answer = advertise(context, message.metadata.run_id, secagg)
            if answer is not None:
                content[keys.SECAGG] = answer
        return Message(content, reply_to=message)

    return app


class _Recorder:
    """Round ends and bytes sent per participant, seen at the coordinator."""

    def __init__(self) -> None:
        self.round_ends: list[float] = []
        self.bytes_by_round: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))

    def count(self, server_round: int, replies: list[Message]) -> list[Message]:
        for reply in replies:
            size = len(message_to_proto(reply).SerializeToString())
            self.bytes_by_round[server_round][reply.metadata.src_node_id] += size
        return replies


def _server_app(mode: str, n_banks: int, n_params: int, rounds: int, out: _Recorder) -> ServerApp:
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        while len(list(grid.get_node_ids())) < n_banks:
            time.sleep(0.1)
        nodes = sorted(grid.get_node_ids())
        arrays = ArrayRecord({"w": Array(np.zeros(n_params, dtype=np.float32))})

        def exchange(messages: list[Message], stage: str, server_round: int) -> list[Message]:
            arrived = send_and_receive(grid, messages, timeout=600)
            replies = [r for r in arrived if not r.has_error()]
            if len(replies) < len(messages):
                raise RuntimeError(f"round {server_round}: {stage} lost replies")
            return out.count(server_round, replies)

        def query(task: str, secagg: ConfigRecord) -> list[Message]:
            config = ConfigRecord({keys.TASK: task})
            return [
                Message(
                    RecordDict({keys.CONFIG: config, keys.SECAGG: secagg}), n, MessageType.QUERY
                )
                for n in nodes
            ]

        secure: SecureAggregation | None = None
        if mode == "secure":
            secure = SecureAggregation(run=grid.run.run_id, clip=1.0)
            enrolled = exchange(query(_TASK_ENROLL, ConfigRecord()), "enroll", 0)
            secure.enroll(enrolled, dict.fromkeys(nodes, 1), min_banks=n_banks)
            secure.open_round(1, n_params)
            advertised = exchange(
                query(keys.TASK_SECAGG_ADVERTISE, secure.record(advertise_round=1)), "adv", 0
            )
            secure.collect_advertisements(1, advertised)
        out.round_ends.append(time.perf_counter())
        for server_round in range(1, rounds + 1):
            config = ConfigRecord({keys.SERVER_ROUND: server_round})
            if secure is None:
                messages = [
                    Message(
                        RecordDict({keys.ARRAYS: arrays, keys.CONFIG: config}),
                        n,
                        MessageType.TRAIN,
                    )
                    for n in nodes
                ]
                replies = exchange(messages, "train", server_round)
                stacked = np.stack(
                    [array_record(r.content, keys.ARRAYS)["w"].numpy() for r in replies]
                )
                arrays = ArrayRecord({"w": Array(stacked.mean(axis=0))})
            else:
                messages = secure.train_messages(server_round, arrays, config)
                replies = exchange(messages, "train", server_round)
                arrays = secure.aggregate(server_round, replies, arrays, config, exchange).arrays
            evaluate = [
                Message(
                    RecordDict({keys.ARRAYS: arrays, keys.CONFIG: config}),
                    n,
                    MessageType.EVALUATE,
                )
                for n in nodes
            ]
            if secure is not None and server_round < rounds:
                secure.open_round(server_round + 1, n_params)
                for message in evaluate:
                    message.content[keys.SECAGG] = secure.record(advertise_round=server_round + 1)
            evaluated = exchange(evaluate, "evaluate", server_round)
            if secure is not None and server_round < rounds:
                secure.collect_advertisements(server_round + 1, evaluated)
            out.round_ends.append(time.perf_counter())
        expected = float(_STEP) * rounds
        final = float(arrays["w"].numpy()[0])
        if abs(final - expected) > 1e-4:
            raise RuntimeError(f"aggregate is wrong: {final} != {expected}")

    return app


def measure(mode: str, n_banks: int, n_params: int, rounds: int) -> dict[str, object]:
    """Run one simulation; the figures of the module docstring."""
    from flwr.simulation import run_simulation

    set_offline_defaults(simulation=True)
    logging.getLogger("flwr").setLevel(logging.ERROR)
    recorder = _Recorder()
    with PeakMemory() as memory:
        run_simulation(
            server_app=_server_app(mode, n_banks, n_params, rounds, recorder),
            client_app=_client_app(),
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
    ends = recorder.round_ends
    if len(ends) != rounds + 1:
        raise RuntimeError(f"the run did not finish: {len(ends) - 1} of {rounds} rounds")
    seconds = [b - a for a, b in itertools.pairwise(ends)]
    per_round = [sum(sizes.values()) / n_banks for r, sizes in recorder.bytes_by_round.items() if r]
    return {
        "system": "fedcredit",
        "mode": mode,
        "banks": n_banks,
        "params": n_params,
        "rounds": rounds,
        "round_seconds": seconds,
        "seconds_per_round": statistics.median(seconds[1:] if rounds > 1 else seconds),
        "bytes_up_per_participant": int(statistics.fmean(per_round)),
        "peak_rss_mb": memory.peak_mb,
    }


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point: one measurement, one JSON line on stdout."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["plain", "secure"], required=True)
    parser.add_argument("--banks", type=int, required=True)
    parser.add_argument("--params", type=int, required=True)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args(argv)
    result = measure(args.mode, args.banks, args.params, args.rounds)
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
