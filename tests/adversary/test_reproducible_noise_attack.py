"""A coordinator cannot switch a bank to noise it can predict (``--reproducible-noise``).

Reproducible noise (DP noise keyed from the simulation's seed) is chosen where the
simulation harness builds its banks' guards, and nowhere else. These tests play a
coordinator (and a careless operator) that asks for it through every door a deployed
bank has: the run config, the message content, the bank's own settings and its
SuperNode's node config. The run config and settings refuse the key; a bank whose guard
is built as the guard service builds it (:meth:`BankGuard.open`) ignores whatever the
messages carry and draws its noise from ``os.urandom``: two such banks with the same
data, ledger state and messages release different updates. The control shows the test
would see predictable noise: two guards built with the seed's keys release the same.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from flwr.app import ConfigRecord, Context, MessageType, RecordDict
from pydantic import ValidationError

from credit import message_keys as keys
from credit.errors import ConfigError
from credit.records import record_of
from credit.run_config import RunConfig
from credit.schema import DatasetSchema
from participant.guard.bank_guard import BankGuard
from participant.relay.node_config import RelayConfig
from privacy.noise_keys import FreshNoiseKeys, SeededNoiseKeys
from tests.participant.guard.bank_messages import (
    RUN_ID,
    RUN_NAME,
    JoinedBank,
    acme_settings,
    feature_stats_query,
    guarded_app,
    round_content,
)

ASKED = "reproducible-noise"


def _asking(content: RecordDict) -> RecordDict:
    """``content`` with a record asking for reproducible noise at seed 0."""
    content[ASKED] = ConfigRecord({ASKED: True, "seed": 0})
    return content


def _context_asking() -> Context:
    """The bank's context under a run config that asks for reproducible noise."""
    run_config = {**RunConfig(rounds=1, run_name=RUN_NAME).to_flower(), ASKED: True}
    return Context(
        run_id=RUN_ID, node_id=5, node_config={}, state=RecordDict(), run_config=run_config
    )


def _round_1_update(guard: BankGuard, schema: DatasetSchema) -> dict[str, np.ndarray]:
    """The bank's reply to a coordinator asking for reproducible noise: set-up, round 1."""
    bank = JoinedBank(app=guarded_app(guard), context=_context_asking(), guard=guard)
    bank.send(MessageType.QUERY, _asking(feature_stats_query(schema)))
    content, _ = round_content(schema, 1)
    reply = bank.send(MessageType.TRAIN, _asking(content))
    assert not reply.has_error(), reply.error
    arrays = record_of(reply.content, keys.ARRAYS, type(content[keys.ARRAYS]))
    return {name: arrays[name].numpy() for name in arrays}


def test_a_run_config_asking_for_reproducible_noise_is_refused() -> None:
    with pytest.raises(ConfigError, match="reproducible-noise"):
        RunConfig.from_flower({**RunConfig().to_flower(), ASKED: True})


def test_a_banks_settings_cannot_ask_for_reproducible_noise(tmp_path: Path) -> None:
    settings = acme_settings(tmp_path / "acme.csv", max_epsilon=1.0).model_dump()
    for key in ("reproducible_noise", "noise_keys", "noise_seed"):
        with pytest.raises(ValidationError, match=key):
            type(acme_settings(tmp_path / "acme.csv", max_epsilon=1.0)).model_validate(
                {**settings, key: True}
            )
    node_config = {"guard-socket": str(tmp_path / "guard.sock"), ASKED: True}
    context = Context(
        run_id=RUN_ID, node_id=5, node_config=node_config, state=RecordDict(), run_config={}
    )
    with pytest.raises(ConfigError, match=ASKED):
        RelayConfig.from_context(context)


def test_coordinator_asking_deployed_banks_for_reproducible_noise_gets_os_noise(
    tmp_path: Path, schema: DatasetSchema, write_bank_csv: Callable[..., Path]
) -> None:
    data = write_bank_csv(600, name="acme")

    def deployed(name: str) -> BankGuard:
        folder = tmp_path / name
        folder.mkdir()
        return BankGuard.open(
            acme_settings(data, max_epsilon=1.0, ledger_path=folder / "ledger.jsonl")
        )

    first, second = deployed("first"), deployed("second")
    assert isinstance(first.noise_keys, FreshNoiseKeys)
    mine, theirs = _round_1_update(first, schema), _round_1_update(second, schema)
    assert mine.keys() == theirs.keys()
    assert all(not np.array_equal(mine[name], theirs[name]) for name in mine)


def test_control_guards_keyed_from_a_seed_release_the_same_update(
    tmp_path: Path, schema: DatasetSchema, write_bank_csv: Callable[..., Path]
) -> None:
    """What the attack would get if a message could switch the keys: identical updates."""
    data = write_bank_csv(600, name="acme")

    def seeded(name: str) -> BankGuard:
        folder = tmp_path / name
        folder.mkdir()
        settings = acme_settings(data, max_epsilon=1.0, ledger_path=folder / "ledger.jsonl")
        return BankGuard(settings, noise_keys=SeededNoiseKeys(seed=0, bank="acme"))

    mine = _round_1_update(seeded("first"), schema)
    theirs = _round_1_update(seeded("second"), schema)
    assert all(np.array_equal(mine[name], theirs[name]) for name in mine)
