"""Model selection from the banks' summed validation metrics: what a run keeps and says.

A run whose banks keep validation parts (``validation-fraction`` > 0) scores each
round's model on them (the run's cadence, as the per-round evaluations), keeps the
round whose pooled validation AUC is best (ties: the earlier round), and scores only
that model on the held-out rows: the final metrics never took part in the choice.
Early stopping (``patience``) ends the run when the validation AUC has not improved
for that many validated rounds. This module holds the pure rules the run driver
applies and the lines it prints.
"""

from __future__ import annotations

from collections.abc import Sequence

from coordinator.app.run_state import RoundResult, SelectedModel

__all__ = ["selection_lines", "stop_reason"]


def selection_lines(selected: SelectedModel, *, missing: str | None = None) -> list[str]:
    """What the console says about the kept model: its round, its metrics, whether to go on.

    ``missing``: why its final evaluation is missing (:attr:`RunState.final_missing
    <coordinator.app.run_state.RunState.final_missing>`), said in place of its metrics.
    """
    scored = selected.metrics
    if missing is not None:
        final = f"missing: {missing}"
    elif scored is not None:
        final = f"AUC {scored.auc:.4f}  KS {scored.ks:.4f}  loss {scored.log_loss:.4f}"
    else:
        final = "not evaluated"
    if selected.validation_auc is None:
        kept = (
            f"no round was validated: kept the last round's model (round {selected.server_round})"
        )
    else:
        kept = (
            f"kept round {selected.server_round}'s model (best validation AUC "
            f"{selected.validation_auc:.4f} of rounds 1-{selected.last_round})"
        )
    lines = [kept, f"final evaluation on the held-out rows: {final}"]
    if selected.still_improving:
        lines.append(
            f"the model was still improving at the last round (round {selected.last_round}): "
            "more rounds may help"
        )
    return lines


def stop_reason(rounds: Sequence[RoundResult], *, best_round: int, patience: int) -> str | None:
    """Why a run stops early (None: it goes on).

    It stops once ``patience`` (>= 1) rounds validated after ``best_round`` have not
    beaten its validation AUC; ``patience`` 0 never stops a run.
    """
    if patience < 1:
        return None
    since = [r for r in rounds if r.server_round > best_round and r.metrics is not None]
    if len(since) < patience:
        return None
    return (
        f"the validation AUC has not improved for {len(since)} validated rounds after "
        f"round {best_round} (patience {patience})"
    )
