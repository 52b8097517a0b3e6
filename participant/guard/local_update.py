"""One round of local training at a bank: from the global model to the bank's new weights.

:func:`local_update` is the whole of a bank's training step and returns one shape,
:class:`LocalUpdate`; how the update leaves the bank (in the clear, or masked for
secure aggregation) is the handler's business (:mod:`participant.guard.handlers`).

* Without a privacy budget: SGD with momentum on the bank's training rows
  (:func:`participant.guard.training.train_locally`), reporting the mean training loss.
* With a budget: the round is charged to the bank's ledger *before* training (an
  over-budget round raises :class:`~privacy.errors.PrivacyBudgetExceeded` and nothing
  runs), then DP-SGD with Opacus at the noise the bank's plan fixed; no loss is
  reported (it is a statistic of the rows). The noised result is kept beside the
  ledger, so a round asked for again after a coordinator crash is answered with the
  same result and charged nothing (:mod:`participant.guard.replay`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from flwr.app import Array, ArrayRecord

from credit.audit import arrays_sha256
from credit.messages import RoundInstructions
from participant.guard.bank import EncodedSplit, PreparedBank, encoded_split
from participant.guard.replay import ReplayStore

if TYPE_CHECKING:
    from torch import nn

    from participant.guard.privacy_guard import PrivacyGuard

# torch and Opacus are imported inside the functions that train: secure aggregation's
# queries and a guard that has not trained yet need neither.

__all__ = ["LocalUpdate", "build_global_model", "local_update", "model_sha256"]


@dataclass(frozen=True)
class LocalUpdate:
    """A bank's result of one round.

    Attributes
    ----------
    arrays : ArrayRecord
        The bank's model after local training (a DP-SGD output under a budget).
    num_examples : int
        Training rows: the update's weight.
    train_loss : float or None
        Mean training loss; None under differential privacy.
    epsilon : float or None
        Epsilon spent per the bank's ledger after the round; None without a budget.
    replayed : bool
        The round was asked for again and the kept result was sent, uncharged.
    """

    arrays: ArrayRecord
    num_examples: int
    train_loss: float | None
    epsilon: float | None
    replayed: bool = False


def model_sha256(arrays: ArrayRecord) -> str:
    """SHA-256 of a model's arrays as sent on the wire (what audit logs record)."""
    return arrays_sha256({name: arrays[name].numpy() for name in arrays})


def build_global_model(instructions: RoundInstructions, arrays: ArrayRecord) -> nn.Module:
    """The global model of a train or evaluate message, rebuilt from its spec and weights."""
    from credit.models import build_model

    model = build_model(instructions.model_spec)
    model.load_state_dict(arrays.to_torch_state_dict())
    return model


def local_update(
    bank: PreparedBank,
    instructions: RoundInstructions,
    global_arrays: ArrayRecord,
    *,
    guard: PrivacyGuard | None,
    run: str,
    members: frozenset[str] | None = None,
) -> LocalUpdate:
    """Train the global model on the bank's rows for one round.

    Parameters
    ----------
    bank : PreparedBank
        The bank's validated rows, split into train and test.
    instructions : RoundInstructions
        The round's settings, encoder and model spec.
    global_arrays : ArrayRecord
        The global model's weights.
    guard : PrivacyGuard or None
        The bank's budget enforcement; None trains without differential privacy.
    run : str
        The run's name as the bank files it (privacy plan, replay store).
    members : frozenset of str, optional
        The member names of the round's U1 under secure aggregation (None: in the
        clear); a kept result is replayed only for the same members.

    Raises
    ------
    PrivacyBudgetExceeded
        The round would take the bank past its maximum epsilon (nothing trained).
    ReplayRefused
        The round was answered before, for other secure-aggregation members.
    """
    model = build_global_model(instructions, global_arrays)
    split = encoded_split(bank, instructions.encoder)
    if guard is None:
        loss = _train_plain(model, split, instructions)
        return LocalUpdate(_arrays(model), len(split.train_y), train_loss=loss, epsilon=None)
    return _train_private(
        model, split, instructions, global_arrays, guard=guard, run=run, members=members
    )


def _train_plain(model: nn.Module, split: EncodedSplit, instructions: RoundInstructions) -> float:
    """Non-private local SGD (a bank without a privacy budget); the mean training loss."""
    from participant.guard.training import TrainSettings, train_locally

    settings = TrainSettings(
        epochs=instructions.local_epochs,
        steps=instructions.local_steps,
        batch_size=instructions.batch_size,
        learning_rate=instructions.learning_rate,
        seed=instructions.seed * 100_003 + instructions.server_round,
    )
    return train_locally(model, split.train_x, split.train_y, settings)


def _train_private(
    model: nn.Module,
    split: EncodedSplit,
    instructions: RoundInstructions,
    global_arrays: ArrayRecord,
    *,
    guard: PrivacyGuard,
    run: str,
    members: frozenset[str] | None,
) -> LocalUpdate:
    """Charge, then DP-SGD; or the kept result of the same run, round, model and members."""
    from participant.guard.privacy_guard import training_request
    from privacy.dp_sgd import DpSgdSettings, train_dp_sgd
    from privacy.errors import PrivacyError
    from privacy.noise_keys import NoisePurpose

    replays = ReplayStore.beside(guard.ledger.path)
    received = model_sha256(global_arrays)
    kept = replays.load(run, instructions.server_round, received, members)
    if kept is not None:  # asked again after a coordinator crash: already paid for
        arrays = ArrayRecord({name: Array(value) for name, value in kept.items()})
        return LocalUpdate(arrays, len(split.train_y), None, guard.ledger.epsilon, replayed=True)
    request = training_request(instructions, run=run, server_round=instructions.server_round)
    event = guard.charge_round(request)  # before training: refuse, or commit
    settings = DpSgdSettings(
        noise_multiplier=event.noise_multiplier,
        max_grad_norm=event.max_grad_norm,
        batch_size=instructions.batch_size,
        epochs=instructions.local_epochs,
        learning_rate=instructions.learning_rate,
        local_steps=instructions.local_steps,
    )
    result = train_dp_sgd(
        model,
        split.train_x,
        split.train_y,
        settings,
        noise=guard.noise(event, NoisePurpose.DP_SGD_NOISE),
        sampler=guard.sampler(event),
    )
    if (result.steps, result.sample_rate) != (event.steps, event.sample_rate):
        raise PrivacyError(  # the ledger must record the mechanism that ran
            f"round {instructions.server_round} of run '{run}' ran {result.steps} DP-SGD "
            f"steps at sampling rate {result.sample_rate} but the ledger charged "
            f"{event.steps} at {event.sample_rate}; the update is not sent"
        )
    arrays = _arrays(model)
    replays.save(run, instructions.server_round, received, _numpy(arrays), members)
    return LocalUpdate(arrays, len(split.train_y), None, guard.ledger.epsilon)


def _arrays(model: nn.Module) -> ArrayRecord:
    return ArrayRecord(model.state_dict())


def _numpy(arrays: ArrayRecord) -> dict[str, np.ndarray]:
    return {name: arrays[name].numpy() for name in arrays}
