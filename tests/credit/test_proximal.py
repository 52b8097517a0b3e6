"""FedProx's proximal term: the gradient of mu/2 ||w - w_global||^2, in plain and DP-SGD.

Plain SGD: the hook's step equals autograd's step on the loss with the term added.
DP-SGD: ``train_dp_sgd`` with mu equals a step-by-step replica in which each sample's
gradient of the *data* loss is clipped, the clipped gradients summed and divided by the
expected batch size, and only then ``mu (w - w_global)`` added, unclipped (its norm is
far above the clipping bound here): the term changes neither the per-sample clipping
nor the steps and sampling rate the ledger charges.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from credit.model_spec import ModelKind, ModelSpec
from credit.models import build_model
from credit.proximal import attach_proximal_term
from participant.guard.training import TrainSettings, train_locally
from privacy.dp_sgd import DpSgdSettings, train_dp_sgd
from privacy.noise import SecureGaussian, SecureRandom

N_INPUTS = 6
MU = 3.0


def _model(seed: int = 0) -> nn.Module:
    return build_model(ModelSpec(kind=ModelKind.LOGREG, n_inputs=N_INPUTS), seed=seed)


def _rows(n: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n, N_INPUTS)).astype(np.float32)
    labels = (features[:, 0] + rng.normal(0, 0.5, n) > 0).astype(np.int64)
    return features, labels


def _vector(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def _moved(model: nn.Module, seed: int) -> None:
    """Move the parameters away from where they are (where the anchor was taken)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator))


def test_the_hooks_step_is_autograds_step_on_the_loss_with_the_term() -> None:
    features, labels = _rows(32)
    inputs, targets = torch.from_numpy(features), torch.from_numpy(labels.astype(np.float32))
    hooked, reference = _model(), _model()
    anchors = [p.detach().clone() for p in reference.parameters()]
    hooked_sgd = torch.optim.SGD(hooked.parameters(), lr=0.1)
    attach_proximal_term(hooked_sgd, MU)  # anchored at the starting (global) weights
    _moved(hooked, seed=4)
    _moved(reference, seed=4)
    reference_sgd = torch.optim.SGD(reference.parameters(), lr=0.1)
    loss_fn = nn.BCEWithLogitsLoss()

    loss_fn(hooked(inputs).squeeze(-1), targets).backward()
    hooked_sgd.step()
    pairs = zip(reference.parameters(), anchors, strict=True)
    penalty = sum(((p - a) ** 2).sum() for p, a in pairs)
    (loss_fn(reference(inputs).squeeze(-1), targets) + 0.5 * MU * penalty).backward()
    reference_sgd.step()

    torch.testing.assert_close(_vector(hooked), _vector(reference), rtol=1e-6, atol=1e-7)


def test_local_training_with_mu_stays_closer_to_the_global_model() -> None:
    features, labels = _rows(400)
    settings = TrainSettings(epochs=0, steps=60, batch_size=16, learning_rate=0.1, seed=3)
    start = _vector(_model())
    plain, proximal = _model(), _model()
    train_locally(plain, features, labels, settings)
    train_locally(
        proximal, features, labels, TrainSettings(**{**vars(settings), "proximal_mu": 1.0})
    )
    assert torch.linalg.norm(_vector(proximal) - start) < 0.7 * torch.linalg.norm(
        _vector(plain) - start
    )


@pytest.mark.parametrize("mu", [-1.0, float("inf"), float("nan")])
def test_a_negative_or_infinite_mu_is_refused(mu: float) -> None:
    with pytest.raises(ValueError, match="mu must be >= 0 and finite"):
        attach_proximal_term(torch.optim.SGD(_model().parameters(), lr=0.1), mu)


def _replica(
    features: np.ndarray,
    labels: np.ndarray,
    settings: DpSgdSettings,
    sampler: SecureRandom,
    *,
    clip_the_term: bool = False,
) -> torch.Tensor:
    """DP-SGD with FedProx, written out: per-sample clip of the data gradient, sum / B,
    then + mu (w - w_global), SGD with momentum 0.9 (noise negligible in this test).

    ``clip_the_term``: the wrong way, the term added to each sample's gradient before
    clipping (as if it were part of every row's loss)."""
    model = _model()
    anchor = _vector(model)
    weights = anchor.clone()
    buffer: torch.Tensor | None = None
    rate = settings.batch_size / len(labels)
    for _ in range(settings.local_steps):
        mask = sampler.poisson_mask(len(labels), rate)
        proximal = settings.proximal_mu * (weights - anchor)
        summed = torch.zeros_like(weights)
        for row, label in zip(features[mask], labels[mask], strict=True):
            gradient = _sample_gradient(weights, row, float(label))
            if clip_the_term:
                gradient = gradient + proximal
            norm = torch.linalg.norm(gradient)
            summed += gradient * min(1.0, settings.max_grad_norm / (float(norm) + 1e-6))
        gradient = summed / settings.batch_size + (0 if clip_the_term else proximal)
        buffer = gradient if buffer is None else 0.9 * buffer + gradient
        weights = weights - settings.learning_rate * buffer
    return weights


def _sample_gradient(weights: torch.Tensor, row: np.ndarray, label: float) -> torch.Tensor:
    """One row's gradient of the logistic loss at ``weights`` (weight vector, then bias)."""
    w = weights.clone().requires_grad_(True)
    logit = (w[:N_INPUTS] * torch.from_numpy(row)).sum() + w[N_INPUTS]
    nn.functional.binary_cross_entropy_with_logits(logit, torch.tensor(label)).backward()
    assert w.grad is not None
    return w.grad


def test_dp_sgd_adds_the_term_after_per_sample_clipping_and_noise() -> None:
    features, labels = _rows(200)
    settings = DpSgdSettings(
        noise_multiplier=1e-9,  # noise this small leaves the arithmetic checkable
        max_grad_norm=0.05,  # every row's gradient is clipped
        batch_size=20,
        epochs=0,
        learning_rate=0.5,
        local_steps=6,
        proximal_mu=MU,
    )
    key = bytes(range(32))
    model = _model()
    result = train_dp_sgd(
        model, features, labels, settings, noise=SecureGaussian(key), sampler=SecureRandom(key)
    )
    expected = _replica(features, labels, settings, SecureRandom(key))

    torch.testing.assert_close(_vector(model), expected, rtol=1e-4, atol=1e-5)
    clipped_term = _replica(features, labels, settings, SecureRandom(key), clip_the_term=True)
    assert torch.linalg.norm(_vector(model) - clipped_term) > 100 * 1e-5  # told apart
    # The mechanism the ledger charged: the same steps and rate as without the term.
    without = DpSgdSettings(**{**vars(settings), "proximal_mu": 0.0})
    plain = train_dp_sgd(
        _model(), features, labels, without, noise=SecureGaussian(key), sampler=SecureRandom(key)
    )
    assert (result.steps, result.sample_rate) == (plain.steps, plain.sample_rate)
