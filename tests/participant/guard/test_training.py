"""Local training without a budget: epochs or a fixed number of steps per round."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from credit.models import ModelKind, ModelSpec, build_model
from participant.guard.training import TrainSettings, train_locally


class _CountingSgd(torch.optim.SGD):
    """SGD that counts its steps (``train_locally`` builds its optimizer by this name)."""

    steps = 0

    def step(self, closure=None):  # type: ignore[no-untyped-def]
        type(self).steps += 1
        return super().step(closure)


@pytest.mark.parametrize(
    ("n", "epochs", "steps", "expected"),
    [(100, 2, 0, 2 * 4), (100, 1, 11, 11), (30, 1, 10, 10), (3_000, 1, 10, 10)],
)
def test_a_round_takes_its_epochs_or_exactly_its_steps(
    monkeypatch: pytest.MonkeyPatch, n: int, epochs: int, steps: int, expected: int
) -> None:
    """Epochs: ceil(n/B) steps each; steps: that many whatever n (across shuffles)."""
    monkeypatch.setattr(torch.optim, "SGD", _CountingSgd)
    _CountingSgd.steps = 0
    rng = np.random.default_rng(0)
    features = rng.normal(size=(n, 4)).astype(np.float32)
    labels = (features[:, 0] > 0).astype(np.int64)
    model = build_model(ModelSpec(kind=ModelKind.LOGREG, n_inputs=4))
    settings = TrainSettings(epochs=epochs, steps=steps, batch_size=32, learning_rate=0.1, seed=0)
    loss = train_locally(model, features, labels, settings)
    assert _CountingSgd.steps == expected
    assert 0 < loss < 1


def test_negative_steps_are_refused() -> None:
    with pytest.raises(ValueError, match="steps must be >= 0; got -1"):
        TrainSettings(epochs=1, steps=-1, batch_size=8, learning_rate=0.1, seed=0)
