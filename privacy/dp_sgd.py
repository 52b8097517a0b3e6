"""DP-SGD with Opacus: per-sample clipping, Poisson sampling, secure Gaussian noise.

Opacus provides per-sample gradients (``GradSampleModule``), clipping and Poisson
sampling (``DPOptimizer``, ``DPDataLoader``); fedcredit replaces only where the noise
comes from (:class:`~privacy.noise.SecureGaussian` instead of torch's Mersenne
Twister) and does its own accounting from the ledger, so Opacus's accountant hooks
are not used.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray
from opacus import GradSampleModule
from opacus.data_loader import DPDataLoader
from opacus.optimizers import DPOptimizer
from opacus.optimizers.optimizer import _check_processed_flag, _mark_as_processed
from opacus.validators import ModuleValidator
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from privacy.errors import PrivacyError
from privacy.noise import SecureGaussian

__all__ = ["DpSgdSettings", "steps_per_epoch", "train_dp_sgd", "validate_for_dp"]


@dataclass(frozen=True, kw_only=True)
class DpSgdSettings:
    """DP-SGD settings for one round at one bank.

    Parameters
    ----------
    noise_multiplier : float
        Gaussian noise std divided by ``max_grad_norm``, > 0.
    max_grad_norm : float
        Per-sample L2 clipping norm, > 0.
    batch_size : int
        Expected batch size; the Poisson sampling rate is ``batch_size / n_train``.
    epochs : int
        Local epochs; each epoch is ``steps_per_epoch(n_train, batch_size)`` steps.
    learning_rate : float
        SGD step size.
    """

    noise_multiplier: float
    max_grad_norm: float
    batch_size: int
    epochs: int
    learning_rate: float


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """DP-SGD steps in one epoch (Opacus: one per batch of the original loader)."""
    return int(np.ceil(n_train / batch_size))


def validate_for_dp(model: nn.Module) -> None:
    """Raise :class:`PrivacyError` naming every layer Opacus cannot make private."""
    problems = ModuleValidator.validate(model, strict=False)
    if problems:
        listed = "; ".join(str(problem) for problem in problems)
        raise PrivacyError(f"model is not compatible with DP-SGD: {listed}")


class _SecureNoiseOptimizer(DPOptimizer):  # type: ignore[misc]
    """Opacus's DPOptimizer with noise drawn from a ChaCha20-based Gaussian sampler."""

    def __init__(self, *args: object, noise: SecureGaussian, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self._secure_noise = noise

    def add_noise(self) -> None:
        for parameter in self.params:
            _check_processed_flag(parameter.summed_grad)
            noise = self._secure_noise.like(
                parameter.summed_grad, self.noise_multiplier * self.max_grad_norm
            )
            parameter.grad = (parameter.summed_grad + noise).view_as(parameter)
            _mark_as_processed(parameter.summed_grad)


def train_dp_sgd(
    model: nn.Module,
    features: NDArray[np.float32],
    labels: NDArray[np.integer],
    settings: DpSgdSettings,
    *,
    noise: SecureGaussian | None = None,
) -> float:
    """Train ``model`` in place with DP-SGD; return the mean training loss.

    Runs exactly ``settings.epochs * steps_per_epoch(n, batch_size)`` steps with
    Poisson sampling at rate ``batch_size / n``: the event the ledger charged.
    """
    validate_for_dp(model)
    n_rows = len(labels)
    sample_rate = settings.batch_size / n_rows
    if sample_rate > 1:
        raise PrivacyError(f"batch_size {settings.batch_size} exceeds the {n_rows} training rows")
    dataset = TensorDataset(
        torch.from_numpy(np.ascontiguousarray(features)),
        torch.from_numpy(np.asarray(labels, dtype=np.float32)),
    )
    sampling = torch.Generator().manual_seed(int.from_bytes(os.urandom(8), "little"))
    loader = DPDataLoader.from_data_loader(
        DataLoader(dataset, batch_size=settings.batch_size), generator=sampling
    )
    private = GradSampleModule(model)
    optimizer = _SecureNoiseOptimizer(
        torch.optim.SGD(private.parameters(), lr=settings.learning_rate, momentum=0.9),
        noise_multiplier=settings.noise_multiplier,
        max_grad_norm=settings.max_grad_norm,
        expected_batch_size=settings.batch_size,
        noise=noise or SecureGaussian(),
    )
    loss_fn = nn.BCEWithLogitsLoss()
    private.train()
    total_loss, total_rows = 0.0, 0
    for _ in range(settings.epochs):
        for inputs, targets in loader:
            optimizer.zero_grad()
            if len(targets) == 0:  # an empty Poisson batch (probability e^-batch_size):
                continue  # skipping it releases less than the ledger charged
            loss = loss_fn(private(inputs).squeeze(-1), targets)
            with warnings.catch_warnings():
                # Opacus hooks the first layer, whose input (the data) needs no gradient.
                warnings.filterwarnings("ignore", message="Full backward hook is firing")
                loss.backward()
            optimizer.step()
            total_loss += float(loss.detach()) * len(targets)
            total_rows += len(targets)
    private._close()
    return total_loss / max(total_rows, 1)
