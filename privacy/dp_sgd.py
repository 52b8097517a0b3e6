"""DP-SGD with Opacus: per-sample clipping, exact Poisson sampling, secure Gaussian noise.

Opacus provides per-sample gradients (``GradSampleModule``) and clipping
(``DPOptimizer``); fedcredit replaces where the randomness comes from and how batches
are drawn, so that the mechanism that runs is the one the ledger charged:

* each step's batch is a Poisson sample of the training rows at rate exactly
  ``batch_size / n_train``, drawn from a ChaCha20 keystream
  (:meth:`~privacy.noise.SecureRandom.poisson_mask`), not torch's Mersenne Twister;
* exactly the round's steps run (:func:`round_steps`: ``local_steps``, or
  ``epochs * steps_per_epoch(n_train, batch_size)``), and an empty
  batch takes the noise-only step (zero summed gradient plus Gaussian noise, scaled by
  the expected batch size, then the optimizer step with momentum) instead of being
  skipped;
* the noise comes from :class:`~privacy.noise.SecureGaussian`;
* FedProx's proximal gradient, when asked, is added after clipping and noise
  (:mod:`credit.proximal`).

fedcredit does its own accounting from the ledger, so Opacus's accountant hooks and
its ``DPDataLoader`` are not used.

Notes
-----
The analysed mechanism is the sub-sampled Gaussian mechanism of Abadi et al. (CCS
2016) with Poisson sampling, as accounted by Mironov, Talwar and Zhang ("Rényi
differential privacy of the sampled Gaussian mechanism", 2019). Its privacy analysis
covers every step, including those whose sample happens to be empty; skipping them
would release something other than what the ledger records.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray
from opacus import GradSampleModule
from opacus.optimizers import DPOptimizer
from opacus.optimizers.optimizer import _check_processed_flag, _mark_as_processed
from opacus.validators import ModuleValidator
from torch import nn

from credit.proximal import attach_proximal_term
from privacy.errors import PrivacyError
from privacy.noise import SecureGaussian, SecureRandom

__all__ = [
    "DpSgdResult",
    "DpSgdSettings",
    "charged_steps",
    "round_steps",
    "steps_per_epoch",
    "train_dp_sgd",
    "validate_for_dp",
]


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
        Expected batch size, 1 <= ``batch_size`` <= n_train; the Poisson sampling
        rate is exactly ``batch_size / n_train``.
    epochs : int
        Local epochs; each epoch is ``steps_per_epoch(n_train, batch_size)`` steps.
        Ignored when ``local_steps`` is set.
    learning_rate : float
        SGD step size (momentum 0.9).
    local_steps : int, default 0
        Steps of the round whatever ``n_train`` (each a Poisson sample at rate
        ``batch_size / n_train``); 0: ``epochs`` epochs.
    proximal_mu : float, default 0.0
        FedProx's mu, >= 0: ``mu * (w - w_start)`` is added to each step's gradient
        after per-sample clipping and noise (:mod:`credit.proximal`, whose Notes say
        why the privacy accounting is unchanged); 0: none.
    """

    noise_multiplier: float
    max_grad_norm: float
    batch_size: int
    epochs: int
    learning_rate: float
    local_steps: int = 0
    proximal_mu: float = 0.0


@dataclass(frozen=True, kw_only=True)
class DpSgdResult:
    """What one call of :func:`train_dp_sgd` ran.

    Attributes
    ----------
    mean_loss : float
        Mean training loss over the rows of the non-empty batches (0.0 when every
        batch was empty). A statistic of the rows: not for release.
    steps : int
        Noised steps executed, noise-only steps included; equal to the charged steps.
    noise_only_steps : int
        Of ``steps``, those whose Poisson batch was empty.
    sample_rate : float
        The Poisson sampling rate used, ``batch_size / n_train``.
    """

    mean_loss: float
    steps: int
    noise_only_steps: int
    sample_rate: float


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """DP-SGD steps in one epoch: ``ceil(n_train / batch_size)``."""
    return -(-n_train // batch_size)


def round_steps(n_train: int, batch_size: int, *, local_epochs: int, local_steps: int) -> int:
    """A round's DP-SGD steps: ``local_steps`` if > 0, else ``local_epochs * ceil(n/B)``.

    The one rule the bank's plan, its DP-SGD run and ``fedcredit privacy verify`` share.
    """
    if local_steps > 0:
        return local_steps
    return local_epochs * steps_per_epoch(n_train, batch_size)


def charged_steps(n_train: int, settings: DpSgdSettings) -> int:
    """Steps one round charges and runs (:func:`round_steps` of ``settings``)."""
    return round_steps(
        n_train,
        settings.batch_size,
        local_epochs=settings.epochs,
        local_steps=settings.local_steps,
    )


def validate_for_dp(model: nn.Module) -> None:
    """Raise :class:`PrivacyError` naming every layer Opacus cannot make private."""
    problems = ModuleValidator.validate(model, strict=False)
    if problems:
        listed = "; ".join(str(problem) for problem in problems)
        raise PrivacyError(f"model is not compatible with DP-SGD: {listed}")


class _SecureNoiseOptimizer(DPOptimizer):  # type: ignore[misc]
    """Opacus's DPOptimizer with ChaCha20 Gaussian noise, counting the noised steps."""

    def __init__(self, *args: object, noise: SecureGaussian, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self._secure_noise = noise
        self.noised_steps = 0

    def add_noise(self) -> None:
        for parameter in self.params:
            _check_processed_flag(parameter.summed_grad)
            noise = self._secure_noise.like(
                parameter.summed_grad, self.noise_multiplier * self.max_grad_norm
            )
            parameter.grad = (parameter.summed_grad + noise).view_as(parameter)
            _mark_as_processed(parameter.summed_grad)
        self.noised_steps += 1

    def noise_only_step(self) -> None:
        """The step of an empty Poisson batch, through Opacus's own empty-batch path.

        Each parameter gets an empty per-sample gradient; ``clip_and_accumulate`` sums
        it to zero, then ``add_noise``, ``scale_grad`` (divide by the expected batch
        size) and the wrapped optimizer's step (momentum included) run as for any batch.
        """
        for parameter in self.params:
            parameter.grad_sample = parameter.new_zeros((0, *parameter.shape))
        self.step()


_LOSS = nn.BCEWithLogitsLoss()


@dataclass
class _Tally:
    loss_sum: float = 0.0
    rows: int = 0
    noise_only_steps: int = 0


def _sample_rate(batch_size: int, n_rows: int) -> float:
    """``batch_size / n_rows``, refusing a batch size outside [1, n_rows]."""
    if batch_size < 1:
        raise PrivacyError(f"batch_size must be >= 1; got {batch_size}")
    if batch_size > n_rows:
        raise PrivacyError(f"batch_size {batch_size} exceeds the {n_rows} training rows")
    return batch_size / n_rows


def _take_step(
    private: GradSampleModule,
    optimizer: _SecureNoiseOptimizer,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    tally: _Tally,
) -> None:
    """One DP-SGD step on a Poisson batch; the noise-only step when it is empty."""
    optimizer.zero_grad()
    if len(targets) == 0:  # probability (1 - q)^n: the analysed mechanism still steps
        optimizer.noise_only_step()
        tally.noise_only_steps += 1
        return
    loss = _LOSS(private(inputs).squeeze(-1), targets)
    with warnings.catch_warnings():
        # Opacus hooks the first layer, whose input (the data) needs no gradient.
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        loss.backward()
    optimizer.step()
    tally.loss_sum += float(loss.detach()) * len(targets)
    tally.rows += len(targets)


def train_dp_sgd(
    model: nn.Module,
    features: NDArray[np.float32],
    labels: NDArray[np.integer],
    settings: DpSgdSettings,
    *,
    noise: SecureGaussian | None = None,
    sampler: SecureRandom | None = None,
) -> DpSgdResult:
    """Train ``model`` in place with DP-SGD: the mechanism the ledger charged.

    Runs ``charged_steps(n, settings)`` steps, each on a Poisson sample of the rows at
    rate ``batch_size / n`` (an empty sample takes the noise-only step).

    Parameters
    ----------
    model : nn.Module
        Trained in place; must pass :func:`validate_for_dp`.
    features, labels : ndarray
        The bank's training rows (``n`` rows) and 0/1 labels.
    settings : DpSgdSettings
        Noise, clipping, batch size, epochs and learning rate of the round.
    noise : SecureGaussian, optional
        Gaussian noise source; a fresh OS-keyed one when omitted (tests pass a key).
    sampler : SecureRandom, optional
        Poisson-sampling source; a fresh OS-keyed one when omitted (tests pass a key).

    Raises
    ------
    PrivacyError
        The model is not DP-compatible, the batch size is outside [1, n], or the
        executed noised steps differ from the charged ones (do not release the model).
    """
    validate_for_dp(model)
    n_rows = len(labels)
    sample_rate = _sample_rate(settings.batch_size, n_rows)
    inputs = torch.from_numpy(np.ascontiguousarray(features))
    targets = torch.from_numpy(np.asarray(labels, dtype=np.float32))
    sampler = SecureRandom() if sampler is None else sampler
    private = GradSampleModule(model)
    inner = torch.optim.SGD(private.parameters(), lr=settings.learning_rate, momentum=0.9)
    if settings.proximal_mu > 0:  # on the wrapped optimiser: after clipping and noise
        attach_proximal_term(inner, settings.proximal_mu)
    optimizer = _SecureNoiseOptimizer(
        inner,
        noise_multiplier=settings.noise_multiplier,
        max_grad_norm=settings.max_grad_norm,
        expected_batch_size=settings.batch_size,
        noise=SecureGaussian() if noise is None else noise,
    )
    private.train()
    tally = _Tally()
    try:
        for _ in range(charged_steps(n_rows, settings)):
            mask = torch.from_numpy(sampler.poisson_mask(n_rows, sample_rate))
            _take_step(private, optimizer, inputs[mask], targets[mask], tally)
    finally:
        private._close()
    _check_executed(optimizer.noised_steps, n_rows, settings)
    return DpSgdResult(
        mean_loss=tally.loss_sum / max(tally.rows, 1),
        steps=optimizer.noised_steps,
        noise_only_steps=tally.noise_only_steps,
        sample_rate=sample_rate,
    )


def _check_executed(executed: int, n_rows: int, settings: DpSgdSettings) -> None:
    """Raise :class:`PrivacyError` unless the noised steps executed equal the charged ones."""
    charged = charged_steps(n_rows, settings)
    if executed != charged:
        raise PrivacyError(
            f"DP-SGD executed {executed} noised steps but {charged} were charged "
            f"(local steps {settings.local_steps}, or {settings.epochs} epochs of "
            f"ceil({n_rows}/{settings.batch_size}) steps): "
            "the mechanism that ran is not the one in the ledger; do not release this "
            "model and report the mismatch as a bug"
        )
