"""Local training and scoring at one bank."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from credit.proximal import attach_proximal_term

__all__ = ["TrainSettings", "predict_proba", "train_locally"]


@dataclass(frozen=True, kw_only=True)
class TrainSettings:
    """Local optimisation settings for one round.

    Parameters
    ----------
    epochs : int
        Passes over the bank's training rows per round, >= 0 (ignored with ``steps``).
    steps : int, default 0
        SGD steps per round whatever the number of rows, >= 0 (0: ``epochs``); the
        steps run through one shuffle of the rows after another.
    batch_size : int
        Rows per SGD step, >= 1.
    learning_rate : float
        SGD step size, > 0.
    seed : int
        Seeds the shuffling of rows (not privacy-relevant).
    proximal_mu : float, default 0.0
        FedProx's mu, >= 0: ``mu / 2 * ||w - w_start||^2`` is added to the local
        objective, ``w_start`` the model the round starts from
        (:func:`credit.proximal.attach_proximal_term`); 0: plain SGD.
    """

    epochs: int
    batch_size: int
    learning_rate: float
    seed: int
    steps: int = 0
    proximal_mu: float = 0.0

    def __post_init__(self) -> None:
        if self.steps < 0:
            raise ValueError(f"steps must be >= 0; got {self.steps}")
        if self.epochs < 1 and self.steps < 1:
            raise ValueError(f"epochs or steps must be >= 1; got {self.epochs} and {self.steps}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1; got {self.batch_size}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0; got {self.learning_rate}")
        if not (self.proximal_mu >= 0 and self.proximal_mu < float("inf")):
            raise ValueError(f"proximal_mu must be >= 0 and finite; got {self.proximal_mu}")


def train_locally(
    model: nn.Module,
    features: NDArray[np.float32],
    labels: NDArray[np.integer],
    settings: TrainSettings,
) -> float:
    """Run SGD with momentum on binary cross-entropy (plus FedProx's term if asked); return
    the mean training loss (of the data, without the proximal term).

    Parameters
    ----------
    model : torch.nn.Module
        Updated in place.
    features : numpy.ndarray
        Encoded ``(n_rows, n_inputs)`` matrix.
    labels : numpy.ndarray
        Labels in {0, 1}.
    settings : TrainSettings
        Epochs or steps, batch size, learning rate, shuffling seed and FedProx's mu.
    """
    inputs = torch.from_numpy(np.ascontiguousarray(features))
    targets = torch.from_numpy(np.asarray(labels, dtype=np.float32))
    generator = torch.Generator().manual_seed(settings.seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=settings.learning_rate, momentum=0.9)
    if settings.proximal_mu > 0:
        attach_proximal_term(optimizer, settings.proximal_mu)
    loss_fn = nn.BCEWithLogitsLoss()
    model.train()
    total_loss, total_rows = 0.0, 0
    for batch in _batches(len(inputs), settings, generator):
        optimizer.zero_grad()
        loss = loss_fn(model(inputs[batch]).squeeze(-1), targets[batch])
        loss.backward()
        optimizer.step()
        total_loss += float(loss.detach()) * len(batch)
        total_rows += len(batch)
    return total_loss / max(total_rows, 1)


def _batches(
    n_rows: int, settings: TrainSettings, generator: torch.Generator
) -> Iterator[torch.Tensor]:
    """The round's minibatches: ``epochs`` shuffles, or ``steps`` batches across shuffles."""
    remaining = settings.steps if settings.steps else None
    for _ in itertools.count() if remaining is not None else range(settings.epochs):
        order = torch.randperm(n_rows, generator=generator)
        for start in range(0, n_rows, settings.batch_size):
            if remaining is not None and remaining == 0:
                return
            yield order[start : start + settings.batch_size]
            if remaining is not None:
                remaining -= 1


def predict_proba(model: nn.Module, features: NDArray[np.float32]) -> NDArray[np.float64]:
    """Predicted default probabilities for encoded rows."""
    model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(np.ascontiguousarray(features))).squeeze(-1)
    return torch.sigmoid(logits).double().numpy()
