"""K-fold cross-validation over customers: one simulated consortium per fold, then mean ± sd.

``fedcredit simulate --folds K`` runs K simulations one after another, each with the
same banks, partition, seed and options. In fold k every simulated bank holds out the
customers whose hold-out value u (HMAC-SHA256 of the customer's id under the
simulation's salt, read as a number in [0, 1): :func:`participant.guard.bank.held_out_rows`)
falls in ``[k/K, (k+1)/K)`` (:class:`~participant.guard.settings.Fold`), so a customer
is in the same fold at every bank and is held out in exactly one fold. The run asks the
banks for test-fraction ``1/K``; the fold itself is each simulated bank's setting.

Fold k is a complete run in ``OUT/fold-<k>/`` (its own ``metrics.json``, model, bank
files, ledgers and audit logs); ``OUT/metrics.json`` then holds, for every final metric
the runs report, its mean and sample standard deviation over the folds (ddof = 1) and
the per-fold values (:meth:`CrossValidation.document`).

Notes
-----
Every fold trains on K - 1 folds of the same customers, so under privacy budgets the
cross-validation as a whole spends K runs' budgets on overlapping customers: a
customer's privacy loss composes over the K runs (at most the sum of their epsilons
and deltas, by basic composition). Each fold's simulated banks are new and keep their
ledgers in that fold's folder; nothing caps the sum. This is a research tool: a
deployed bank keeps its one fixed hold-out split and never holds out folds.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coordinator.app.run_files import METRICS_FILE, RunFiles
from credit.errors import ConfigError, OperationFailed
from credit.run_config import RunConfig
from participant.guard.settings import Fold

if TYPE_CHECKING:
    from simulations.engine import SimulationPlan

__all__ = [
    "SD_DDOF",
    "CrossValidation",
    "FoldResult",
    "MetricSummary",
    "fold_config",
    "fold_dir",
    "folds_of",
    "run_cross_validation",
    "summarise",
]

SD_DDOF = 1
"""The standard deviation over folds is the sample one: divided by K - 1."""
FOLD_DIR = "fold-{index}"
"""A fold's run folder inside ``OUT``."""


def folds_of(count: int) -> tuple[Fold, ...]:
    """The ``count`` folds of a K-fold cross-validation.

    Raises
    ------
    credit.errors.ConfigError
        ``count`` is below 2 (names ``--folds`` and the value).
    """
    if count < 2:
        raise ConfigError(
            f"must be at least 2 (each fold is held out once while the others train); got {count}",
            source="--folds",
        )
    return tuple(Fold(index=index, count=count) for index in range(count))


def fold_dir(out_dir: Path, fold: Fold) -> Path:
    """Where ``fold``'s run writes its outputs: ``OUT/fold-<k>``."""
    return out_dir / FOLD_DIR.format(index=fold.index)


def fold_config(config: RunConfig, fold: Fold) -> RunConfig:
    """The run config of ``fold``: its own folder, and test-fraction ``1/K``.

    The test-fraction is what the run asks every bank for; a simulated bank that holds
    out the fold holds out that share, and refuses a run asking for another.
    """
    return config.model_copy(
        update={
            "out_dir": str(fold_dir(Path(config.out_dir), fold)),
            "test_fraction": fold.fraction,
        }
    )


@dataclass(frozen=True)
class MetricSummary:
    """One metric over the folds.

    Attributes
    ----------
    mean : float
        The mean over the folds.
    sd : float
        The sample standard deviation over the folds (ddof = 1, :data:`SD_DDOF`).
    per_fold : tuple of float
        The value of fold 0, 1, ..., K - 1.
    """

    mean: float
    sd: float
    per_fold: tuple[float, ...]

    @classmethod
    def of(cls, values: Sequence[float]) -> MetricSummary:
        """Mean and sample standard deviation of ``values`` (at least two)."""
        if len(values) < 2:
            raise ValueError(f"a sample standard deviation needs two values; got {len(values)}")
        return cls(
            mean=statistics.fmean(values), sd=statistics.stdev(values), per_fold=tuple(values)
        )

    def as_dict(self) -> dict[str, Any]:
        """``{"mean", "sd", "per_fold"}``, as ``OUT/metrics.json`` holds it."""
        return {"mean": self.mean, "sd": self.sd, "per_fold": list(self.per_fold)}


def summarise(finals: Sequence[Mapping[str, float]]) -> dict[str, MetricSummary]:
    """Every metric of the folds' final metrics, over the folds (in the first fold's order).

    Raises
    ------
    ValueError
        Fewer than two folds, or a fold lacks a metric another fold reports.
    """
    if len(finals) < 2:
        raise ValueError(f"cross-validation needs at least two folds; got {len(finals)}")
    names = list(finals[0])
    for index, final in enumerate(finals):
        if set(final) != set(names):
            missing = sorted(set(names).symmetric_difference(final))
            raise ValueError(f"fold {index} does not report the metrics {missing} as fold 0 does")
    return {name: MetricSummary.of([final[name] for final in finals]) for name in names}


@dataclass(frozen=True)
class FoldResult:
    """What one fold's run reported.

    Attributes
    ----------
    fold : Fold
        The fold its banks held out.
    metrics_path : pathlib.Path
        Its ``metrics.json``.
    status : str
        Its status (``completed``, or ``stopped: ...``).
    final : dict of str to float
        Its final pooled test metrics (``metrics.json``'s ``final``).
    """

    fold: Fold
    metrics_path: Path
    status: str
    final: dict[str, float]

    @classmethod
    def read(cls, fold: Fold, files: RunFiles) -> FoldResult:
        """The fold's result from its run's ``metrics.json``.

        Raises
        ------
        credit.errors.OperationFailed
            The run reported no final metrics (no model was scored).
        """
        document = json.loads(files.metrics.read_text(encoding="utf-8"))
        final = {name: float(value) for name, value in document["final"].items()}
        if not final:
            raise OperationFailed(
                f"fold {fold.index} of {fold.count} ended without final metrics (status "
                f"{document['status']!r}): see {files.metrics}; cross-validation stopped"
            )
        return cls(fold=fold, metrics_path=files.metrics, status=document["status"], final=final)


@dataclass(frozen=True)
class CrossValidation:
    """The folds' results and their summary.

    Attributes
    ----------
    results : tuple of FoldResult
        Fold 0, 1, ..., K - 1.
    metrics : dict of str to MetricSummary
        Every final metric over the folds (:func:`summarise`).
    """

    results: tuple[FoldResult, ...]
    metrics: dict[str, MetricSummary]

    @classmethod
    def of(cls, results: Sequence[FoldResult]) -> CrossValidation:
        """Summarise the folds' results."""
        return cls(results=tuple(results), metrics=summarise([r.final for r in results]))

    @property
    def folds(self) -> int:
        """K."""
        return len(self.results)

    def document(self, config: RunConfig) -> dict[str, Any]:
        """What ``OUT/metrics.json`` holds, with ``config`` the cross-validation's own.

        ``cross_validation`` has ``folds`` (K) and, for each metric, ``mean``, ``sd``
        (ddof = 1, also given as ``sd_ddof``) and ``per_fold``; ``runs`` lists each
        fold's interval of hold-out values, status and ``metrics.json``.
        """
        out_dir = Path(config.out_dir)
        return {
            "cross_validation": {
                "folds": self.folds,
                **{name: summary.as_dict() for name, summary in self.metrics.items()},
            },
            "sd_ddof": SD_DDOF,
            "runs": [
                {
                    "fold": result.fold.index,
                    "holds_out": list(result.fold.bounds),
                    "status": result.status,
                    "metrics": str(result.metrics_path.relative_to(out_dir)),
                }
                for result in self.results
            ],
            "config": config.model_copy(update={"test_fraction": 1 / self.folds}).to_flower(),
        }

    def write(self, config: RunConfig) -> Path:
        """Write :meth:`document` to ``OUT/metrics.json``; return its path."""
        path = Path(config.out_dir) / METRICS_FILE
        path.write_text(json.dumps(self.document(config), indent=2) + "\n", encoding="utf-8")
        return path


def run_cross_validation(
    config: RunConfig,
    folds: int,
    *,
    plan_fold: Callable[[RunConfig, Fold], SimulationPlan],
    run_fold: Callable[[SimulationPlan], RunFiles],
    on_fold: Callable[[FoldResult], None] = lambda result: None,
) -> CrossValidation:
    """Run the K folds one after another, then write ``OUT/metrics.json``.

    Parameters
    ----------
    config : RunConfig
        The run config every fold shares; its ``out_dir`` is ``OUT``.
    folds : int
        K, >= 2.
    plan_fold : callable
        Plans a fold's simulation from its config (:func:`fold_config`) and the fold:
        :func:`simulations.engine.plan_simulation` or
        :func:`~simulations.engine.plan_bank_files` with ``fold=``.
    run_fold : callable
        Runs a planned fold (:func:`simulations.engine.run_simulated_consortium`).
    on_fold : callable, optional
        Called with each fold's result once its run has ended.

    Raises
    ------
    credit.errors.ConfigError
        ``folds`` is below 2, or a bank has fewer rows than folds (before any run).
    credit.errors.OperationFailed
        A fold's run failed or reported no final metrics (the folds run so far stay).
    """
    results = []
    for fold in folds_of(folds):
        plan = plan_fold(fold_config(config, fold), fold)
        if fold.index == 0:  # the first plan checked the input: an earlier summary goes
            (Path(config.out_dir) / METRICS_FILE).unlink(missing_ok=True)
        results.append(FoldResult.read(fold, run_fold(plan)))
        on_fold(results[-1])
    cross_validation = CrossValidation.of(results)
    cross_validation.write(config)
    return cross_validation
