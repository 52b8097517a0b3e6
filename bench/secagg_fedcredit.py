"""fedcredit's secure aggregation in Flower's Simulation Engine, with trivial local compute.

Run one measurement per process (Ray starts per process)::

    python -m bench.secagg_fedcredit --mode plain|secure --banks N --params P --rounds R

and read one JSON line on stdout. Both modes run fedcredit's own message flow
with the credit model replaced by one float32 vector of P parameters, and local
training replaced by "add 0.001", so that only the aggregation's cost shows:

* ``plain``: train (weights out, weights back; mean; from round 2 the train message
  also asks for the evaluation of the model it carries, answered with a tiny metric);
  one round trip per round, like fedcredit without secure aggregation, and one
  evaluate after the last round.
* ``secure``: the same rounds through :mod:`coordinator.app.secagg_server` and
  :mod:`participant.guard.secagg_client` exactly as the credit apps use them: train with the
  relayed keys and shares (masked vector back), then unmask carrying the next round's
  keys; two round trips per round, plus two at set-up and the final evaluate.

Measured: ``round_seconds`` (from the end of one round to the end of the next at
the coordinator, round 1 from the start of round 1, set-up excluded, the last round
with the final evaluate),
``seconds_per_round`` (median of rounds 2..R, round 1 includes the actors'
start), ``bytes_up_per_participant`` (mean over participants and rounds of the
serialized size of everything a participant sends in a round, as Flower's
protobuf ``Message``), ``peak_rss_mb`` (see :mod:`bench._memory`),
``exchange_seconds`` (per exchange stage, push to last reply at the coordinator, median
of rounds 2..R; the rest of a round is the coordinator's own work) and, in secure
mode, what signing costs a bank: ``signature_ms_per_bank_per_round`` (wall time
inside the bank's Ed25519 signing and verification calls, set-up included, over
banks x rounds) and ``signatures_per_bank_per_round`` (calls, by kind). The banks
record those calls through a timed :class:`~privacy.secagg.signed.Identity` and
write them, after each message, to a directory the driver reads at the end.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flwr.app import (
    Array,
    ArrayRecord,
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
from coordinator.app.bank_replies import train_reply
from coordinator.app.exchange import send_and_receive
from coordinator.app.secagg_server import SecureAggregation
from credit import message_keys as keys
from credit.encoding import StatsSource, fit_encoder
from credit.messages import (
    EvaluateRequest,
    QueryInstructions,
    RoundInstructions,
    RunInstructions,
    Task,
    secagg,
)
from credit.metrics import evaluation_vector
from credit.model_spec import ModelKind, ModelSpec
from credit.records import flatten, record_of
from credit.schema import load_schema
from deploy.flower_env import set_offline_defaults
from participant.guard.secagg_client import (
    SecAggSession,
    advertise,
    enrollment,
    mask_update,
    receive_keys,
    reveal,
    sign_survivors,
)
from participant.guard.settings import SecAggPolicy
from privacy.secagg.members import Member, MemberList
from privacy.secagg.signed import Enrollment, Identity, check_enrollments

_STEP = np.float32(0.001)
_MAX_BANKS = 64
_SCORE_BINS = 2
_SIGNATURE_LOG = "FEDCREDIT_BENCH_SIGNATURE_LOG"  # the driver's directory for the banks' timings
_timings: list[tuple[str, float]] = []  # (sign|verify, seconds) since the last flush


def _bench_key(partition: int) -> Ed25519PrivateKey:
    """Bank ``partition``'s signing key, the same in every Ray worker (a benchmark only)."""
    seed = hashlib.sha256(f"fedcredit-bench-bank-{partition}".encode()).digest()
    return Ed25519PrivateKey.from_private_bytes(seed)


_MEMBERS = MemberList(
    consortium="bench",
    members=tuple(
        Member(name=f"bank-{i}", signing_key=_bench_key(i).public_key().public_bytes_raw())
        for i in range(_MAX_BANKS)
    ),
)


@dataclass(frozen=True)
class _TimedIdentity(Identity):
    """A bank's identity that records how long each signature and verification takes."""

    def sign(self, statement: bytes) -> bytes:
        started = time.perf_counter()
        signature = super().sign(statement)
        _timings.append(("sign", time.perf_counter() - started))
        return signature

    def verifies(self, member: str, signature: bytes, statement: bytes) -> bool:
        started = time.perf_counter()
        verified = super().verifies(member, signature, statement)
        _timings.append(("verify", time.perf_counter() - started))
        return verified

    def unsigned_enrollment(self, run: int, entries: tuple[Enrollment, ...]) -> str | None:
        # A deployed bank's cost: it checks every enrollment itself, not once per process.
        return check_enrollments(self.consortium, run, entries, self.verifies)


def _flush_timings() -> None:
    """Append this process's recorded timings to the driver's directory."""
    directory = os.environ.get(_SIGNATURE_LOG)
    if directory and _timings:
        lines = "".join(f"{kind} {seconds:.9f}\n" for kind, seconds in _timings)
        with open(Path(directory) / f"{os.getpid()}.log", "a") as log:
            log.write(lines)
    _timings.clear()


def _signature_cost(directory: Path, n_banks: int, rounds: int) -> dict[str, object]:
    """Per bank and round: milliseconds inside signing and verification, and the calls."""
    seconds = 0.0
    calls: dict[str, int] = defaultdict(int)
    for log in directory.glob("*.log"):
        for line in log.read_text().splitlines():
            kind, value = line.split()
            calls[kind] += 1
            seconds += float(value)
    if not calls:
        raise RuntimeError(f"no signature timings arrived in {directory}")
    per = n_banks * rounds
    return {
        "signature_ms_per_bank_per_round": 1000 * seconds / per,
        "signatures_per_bank_per_round": {kind: n / per for kind, n in sorted(calls.items())},
    }


def _session(context: Context, run: int) -> SecAggSession:
    """The bench bank's session: it signs and checks as a deployed bank does."""
    partition = int(context.node_config["partition-id"])
    identity = _TimedIdentity(
        members=_MEMBERS,
        member=f"bank-{partition}",
        signing_key=_bench_key(partition),
        policy=SecAggPolicy(),
    )
    return SecAggSession.in_context(context, run, identity)


def _client_app() -> ClientApp:
    app = ClientApp()

    @app.query()
    def query(message: Message, context: Context) -> Message:
        task = QueryInstructions.take(message.content).task
        session = _session(context, message.metadata.run_id)
        content = RecordDict()
        if task == Task.ENROLL:
            enrollment(session).put(content)
        elif task == Task.SECAGG_ADVERTISE:
            asked = secagg.AdvertiseRequest.take(message.content)
            answer = advertise(session, asked)
            if answer is None:
                raise RuntimeError("not in the roster")
            answer.put(content)
        elif task == Task.SECAGG_CONSISTENCY:
            sign_survivors(session, secagg.ConsistencyRequest.take(message.content)).put(content)
        else:
            reveal(session, secagg.UnmaskRequest.take(message.content)).put(content)
            asked = secagg.AdvertiseRequest.take_optional(message.content)
            answer = None if asked is None else advertise(session, asked)
            if answer is not None:
                answer.put(content)
        _flush_timings()
        return Message(content, reply_to=message)

    @app.train()
    def train(message: Message, context: Context) -> Message:
        arrays = record_of(message.content, keys.ARRAYS, ArrayRecord)
        inputs = secagg.TrainInputs.take_optional(message.content)
        evaluation = RecordDict()
        if EvaluateRequest.present(message.content):  # the model received, scored
            evaluation[keys.EVALUATION] = MetricRecord({"score": 0.5})
        if inputs is None:
            vector = arrays["w"].numpy() + _STEP
            content = RecordDict(
                {
                    keys.ARRAYS: ArrayRecord({"w": Array(vector)}),
                    keys.METRICS: MetricRecord({keys.NUM_EXAMPLES: 1}),
                    **evaluation,
                }
            )
            return Message(content, reply_to=message)
        delta = np.full(flatten(arrays).size, float(_STEP))
        values = np.append(delta, [0.0, 0.0])  # no loss reported
        run = message.metadata.run_id
        session = _session(context, run)
        code = receive_keys(session, inputs)
        masked = mask_update(
            session,
            server_round=inputs.server_round,
            values=values,
            weight=1.0,
            code=code,
            totals=evaluation_vector(None, _SCORE_BINS),  # the evaluation's place, zeros
        )
        content = RecordDict({keys.ARRAYS: masked, keys.METRICS: MetricRecord(), **evaluation})
        _flush_timings()
        return Message(content, reply_to=message)

    @app.evaluate()
    def evaluate(message: Message, context: Context) -> Message:
        content = RecordDict({keys.METRICS: MetricRecord({"score": 0.5})})
        return Message(content, reply_to=message)

    return app


def _instructions(rounds: int) -> tuple[RunInstructions, RoundInstructions]:
    """The run's settings and a round's (the encoder and spec only fill the contract).

    The spec is the credit model's for the embedded schema; the bench's model is the
    vector of P parameters in the messages, which is what secure aggregation sums.
    """
    schema = load_schema()
    encoder = fit_encoder(schema, source=StatsSource.PUBLIC)
    run = RunInstructions(
        run_name="bench",
        schema_hash=schema.schema_hash(),
        test_fraction=0.2,
        seed=0,
        planned_rounds=rounds,
        planned_evaluations=rounds,
        local_epochs=1,
        batch_size=64,
        max_grad_norm=1.0,
    )
    round_ = RoundInstructions(
        **run.model_dump(),
        server_round=1,
        learning_rate=0.01,
        score_bins=_SCORE_BINS,
        encoder=encoder,
        model_spec=ModelSpec(kind=ModelKind.LOGREG, n_inputs=encoder.n_inputs),
    )
    return run, round_


class _Recorder:
    """Round ends and bytes sent per participant, seen at the coordinator."""

    def __init__(self) -> None:
        self.round_ends: list[float] = []
        self.bytes_by_round: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        self.stage_seconds: dict[str, dict[int, float]] = defaultdict(lambda: defaultdict(float))

    def stages(self) -> dict[str, float]:
        """Median seconds per round of each exchange stage, rounds 2..R (all if one)."""
        medians = {}
        for stage, by_round in self.stage_seconds.items():
            seconds = [t for r, t in sorted(by_round.items()) if r >= 2] or list(by_round.values())
            medians[stage] = statistics.median(seconds)
        return medians

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
            started = time.perf_counter()
            arrived = send_and_receive(grid, messages, timeout=600)
            out.stage_seconds[str(stage)][server_round] += time.perf_counter() - started
            replies = [r for r in arrived if not r.has_error()]
            if len(replies) < len(messages):
                raise RuntimeError(f"round {server_round}: {stage} lost replies")
            return out.count(server_round, replies)

        run, round_template = _instructions(rounds)
        secure: SecureAggregation | None = None
        if mode == "secure":
            enroll = run.query(Task.ENROLL)
            messages = []
            for node in nodes:
                content = RecordDict()
                enroll.put(content)
                secagg.KeyRequest().put(content)
                messages.append(Message(content, node, MessageType.QUERY))
            enrolled = exchange(messages, "enroll", 0)
            secure = SecureAggregation.enroll(
                run=grid.run.run_id,
                clip=1.0,
                enrollments={
                    r.metadata.src_node_id: secagg.Enrollment.take(r.content) for r in enrolled
                },
                weights=dict.fromkeys(nodes, 1),
                score_bins=_SCORE_BINS,
                exchange=exchange,
            )
            secure.prepare(1, arrays, run)
        out.round_ends.append(time.perf_counter())
        for server_round in range(1, rounds + 1):
            instructions = round_template.model_copy(update={"server_round": server_round})
            if secure is None:
                messages = []
                for node in nodes:
                    content = RecordDict({keys.ARRAYS: arrays})
                    instructions.put(content)
                    messages.append(Message(content, node, MessageType.TRAIN))
            else:
                messages = secure.train_messages(arrays, instructions, nodes)
            if server_round > 1:  # the previous round's model, scored with this round
                for message in messages:
                    EvaluateRequest(server_round=server_round - 1).put(message.content)
            replies = exchange(messages, "train", server_round)
            if secure is None:
                stacked = np.stack([r.content[keys.ARRAYS]["w"].numpy() for r in replies])
                arrays = ArrayRecord({"w": Array(stacked.mean(axis=0))})
            else:
                updates = [train_reply(reply) for reply in replies]
                next_round = server_round + 1 if server_round < rounds else 0
                aggregated = secure.aggregate(
                    updates, arrays, instructions, next_round=next_round, members=nodes
                )
                arrays = aggregated.arrays
            if server_round == rounds:  # the last model's evaluation
                evaluate = []
                for node in nodes:
                    content = RecordDict({keys.ARRAYS: arrays})
                    instructions.put(content)
                    evaluate.append(Message(content, node, MessageType.EVALUATE))
                exchange(evaluate, "evaluate", server_round)
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
    timings = Path(tempfile.mkdtemp(prefix="fedcredit-bench-signatures-"))
    os.environ[_SIGNATURE_LOG] = str(timings)  # inherited by the Ray workers
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
    signing = _signature_cost(timings, n_banks, rounds) if mode == "secure" else {}
    shutil.rmtree(timings)
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
        "exchange_seconds": recorder.stages(),
        **signing,
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
