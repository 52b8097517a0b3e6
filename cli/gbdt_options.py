"""``--model gbdt``'s options (``fedcredit simulate``, ``coordinator launch``): the boosting
flags, their checks, the summary.

The flags map one to one to :class:`~credit.run_config.RunConfig`'s boosting fields
(``[tool.flwr.app.config]`` keys ``trees``, ``max-depth``, ``tree-learning-rate``,
``reg-lambda``, ``gamma``, ``min-child-weight``, ``subsample``, ``colsample``,
``max-bins``); the ranges are :class:`credit.gbdt.BoostingParams`'s, and a value out of
range is one line naming the flag (exit 2). Flags of the SGD models that mean nothing to
boosted trees are refused when given with ``--model gbdt`` (:func:`refuse_sgd_flags`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from click.core import ParameterSource

from cli.console import Column, say, show_table
from credit.errors import ConfigError
from credit.run_config import BOOSTING_FLAGS

__all__ = [
    "BOOSTING_FLAGS",
    "Colsample",
    "Gamma",
    "MaxBins",
    "MaxDepth",
    "MinChildWeight",
    "RegLambda",
    "Subsample",
    "TreeLearningRate",
    "Trees",
    "boosting_validation_fraction",
    "boosting_values",
    "refuse_sgd_flags",
    "show_boosting_summary",
]

_GBDT = "--model gbdt only: "

Trees = Annotated[int, typer.Option(help=_GBDT + "trees of the ensemble, 1-10000.")]
MaxDepth = Annotated[int, typer.Option(help=_GBDT + "levels per tree (one exchange each), 1-12.")]
TreeLearningRate = Annotated[
    float,
    typer.Option(
        help=_GBDT + "shrinkage of each tree's leaf values, in (0, 1] (--learning-rate is "
        "local SGD's and is refused with gbdt)."
    ),
]
RegLambda = Annotated[float, typer.Option(help=_GBDT + "L2 penalty on leaf weights, >= 0.")]
Gamma = Annotated[float, typer.Option(help=_GBDT + "minimum loss reduction of a split, >= 0.")]
MinChildWeight = Annotated[
    float, typer.Option(help=_GBDT + "minimum Hessian sum of a child, >= 0.")
]
Subsample = Annotated[
    float,
    typer.Option(
        help=_GBDT + "share of its training rows each bank samples per tree (its own "
        "draw), in (0, 1]; below 1 federated no longer equals central training."
    ),
]
Colsample = Annotated[
    float, typer.Option(help=_GBDT + "share of the features each tree may split on, in (0, 1].")
]
MaxBins = Annotated[
    int,
    typer.Option(
        help=_GBDT + "bins per feature of the shared edges (quantiles of the federated "
        "feature statistics), 2-255."
    ),
]

_SGD_FLAGS = {
    "rounds": "--rounds",
    "encoding": "--encoding",
    "local_epochs": "--local-epochs",
    "local_steps": "--local-steps",
    "batch_size": "--batch-size",
    "learning_rate": "--learning-rate",
    "max_grad_norm": "--max-grad-norm",
    "evaluate_every": "--evaluate-every",
    "patience": "--patience",
    "dropout_rate": "--dropout-rate",
    "folds": "--folds",
}
"""Flags with no meaning for boosted trees (or not supported with them yet)."""

_GIVEN = (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT, ParameterSource.PROMPT)


def refuse_sgd_flags(ctx: typer.Context, *, gbdt: bool) -> None:
    """Refuse flags given on the command line that do not apply to the model.

    Raises
    ------
    ConfigError
        With ``--model gbdt``: a flag of the SGD models (``--rounds``, ``--local-steps``,
        ...); without it: a boosting flag (``--trees``, ...).
    """
    flags = _SGD_FLAGS if gbdt else BOOSTING_FLAGS
    given = [flag for name, flag in flags.items() if ctx.get_parameter_source(name) in _GIVEN]
    if not given:
        return
    if gbdt:
        raise ConfigError(
            f"{', '.join(given)} do(es) not apply to --model gbdt (boosted trees train one "
            "level per exchange: see --trees, --max-depth, --tree-learning-rate)",
            source="--model",
        )
    raise ConfigError(f"{', '.join(given)} appl(ies) to --model gbdt only", source="--model")


def boosting_values(ctx: typer.Context) -> dict[str, Any]:
    """The command's boosting flags, by RunConfig field (given or at their defaults)."""
    return {name: ctx.params[name] for name in BOOSTING_FLAGS}


def show_boosting_summary(out: Path, seconds: float, *, checkpoint: Path | None = None) -> None:
    """What a boosting run wrote: trees, levels, the held-out AUC and KS, where the model is.

    ``checkpoint``: where the finished trees are kept (default ``out``'s
    ``boosting-checkpoint.json``; a launched run keeps it in the consortium folder).
    """
    document = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    levels = document["levels"]
    final = document.get("final") or {}
    show_table(
        f"Federated boosting ({len(document['banks'])} banks, {seconds:.0f} s)",
        [
            "trees",
            Column("levels", justify="right"),
            Column("level s", justify="right"),
            Column("train rows", justify="right"),
            Column("held-out AUC", justify="right"),
            Column("KS", justify="right"),
        ],
        [
            (
                str(document["trees"]),
                str(len(levels)),
                f"{document['level_seconds']:.2f}",
                f"{document['training_rows']:,}",
                f"{final['auc']:.4f}" if final else "-",
                f"{final['ks']:.4f}" if final else "-",
            )
        ],
    )
    if document.get("final_missing"):
        say(f"held-out evaluation missing: {document['final_missing']}", style="yellow")
    model = out / "model"
    say(
        f"metrics:    {out / 'metrics.json'}",
        f"model:      {model / 'xgboost.json'} (XGBoost JSON: xgboost.Booster(model_file=...))",
        f"card:       {model / 'model_card.json'} (how to build the input matrix; importance)",
        f"checkpoint: {checkpoint or out / 'boosting-checkpoint.json'}",
        f"package:    {model} (signed: fedcredit model verify, score, serve)",
        f"report:     {out / 'report.html'} (trees, feature importance, held-out metrics)",
        "not yet for gbdt: rounds.png (the report charts the trees)",
    )


def boosting_validation_fraction(ctx: typer.Context, validation_fraction: float) -> float:
    """The validation share of a ``--model gbdt`` simulation: 0 unless asked, refused above 0.

    Boosting chooses no model on validation parts (no early stopping on them yet), so
    rows set apart for them would train nothing: a boosting run trains on every row
    outside the held-out part.

    Raises
    ------
    ConfigError
        ``--validation-fraction`` above 0 given with ``--model gbdt``.
    """
    if ctx.get_parameter_source("validation_fraction") not in _GIVEN:
        return 0.0
    if validation_fraction > 0:
        raise ConfigError(
            f"{validation_fraction} sets rows apart that --model gbdt would not use (boosting "
            "selects no model on validation parts): leave it out, and every row outside "
            "the held-out part trains the trees",
            source="--validation-fraction",
        )
    return validation_fraction
