"""What the coordinator's messages tell the banks about the run and about each round.

Every query carries the run's settings (:class:`~credit.messages.RunInstructions`);
every train and evaluate message carries a round's (:class:`~credit.messages.RoundInstructions`:
the run's settings, the round, the encoder and the model spec). Among the run's
settings is how many evaluations the run announces, which depends on whether its
banks train under privacy budgets (``private``: with budgets the default cadence
scores only the last model), so a bank can plan its held-out rows' releases.
"""

from __future__ import annotations

from coordinator.app.run_state import RunState
from credit.messages import RoundInstructions, RunInstructions
from credit.run_config import RunConfig
from credit.schema import DatasetSchema

__all__ = ["round_instructions", "run_instructions"]


def run_instructions(config: RunConfig, schema: DatasetSchema, *, private: bool) -> RunInstructions:
    """The run's settings as every message carries them.

    ``private``: whether the banks train under privacy budgets, as far as the
    coordinator knows (False until they joined and reported their ledgers).
    """
    return RunInstructions.of_run(
        config,
        schema.schema_hash(),
        planned_evaluations=config.announced_evaluations(private=private),
    )


def round_instructions(
    config: RunConfig, state: RunState, server_round: int, *, private: bool
) -> RoundInstructions:
    """Round ``server_round``'s settings: the run's, the learning rate, FedProx's mu, the
    encoder, the model."""
    return RoundInstructions(
        **run_instructions(config, state.schema, private=private).model_dump(),
        server_round=server_round,
        learning_rate=config.learning_rate,
        proximal_mu=config.round_proximal_mu,
        score_bins=config.score_bins,
        encoder=state.encoder,
        model_spec=state.spec,
    )
