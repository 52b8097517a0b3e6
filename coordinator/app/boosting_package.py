"""A boosting run's model folder, signed as a package as an SGD run's (:mod:`credit.package`).

:func:`write_model_folder` writes ``xgboost.json`` (the ensemble, XGBoost JSON),
``encoder.json`` (the binned encoder) and ``model_card.json``
(:func:`boosting_model_card`); :func:`write_boosting_package` completes the folder with
:func:`credit.package.write_package`, the SGD runs' writer: ``schema.toml`` (the run's
schema file, byte for byte), ``scoring.json`` and ``privacy.json``, then a manifest of
every file's SHA-256 signed with the coordinator's audit key.

``scoring.json`` for trees: the default score scaling (no scorecard: a tree ensemble
has no points table), the run's decision cut-off, four reason codes, the schema's
descriptions as reason texts, and no development bins: drift monitoring compares
per-feature bin shares of the training rows, which a boosting run does not release
(its held-out score histograms are in ``metrics.json``, not per feature)
(:data:`NO_DEVELOPMENT_BINS` says so in the file).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from coordinator.app.audit_trail import coordinator_key_path
from coordinator.app.boosting import BoostingRun
from credit.audit import load_or_create_signing_key
from credit.durable import write_durably
from credit.encoding import FeatureEncoder
from credit.gbdt import (
    BOOSTED_MODEL,
    ENCODER_FILE,
    XGBOOST_FILE,
    feature_importance,
    matrix_card,
    save_xgboost_json,
)
from credit.governance.scorecard import ScoreScaling
from credit.model_card import CARD_FILE
from credit.package import Manifest, scoring_settings, write_package
from credit.run_config import RunConfig
from credit.schema import DatasetSchema, embedded_schema_path

__all__ = [
    "NO_DEVELOPMENT_BINS",
    "boosting_model_card",
    "sign_boosting_package",
    "write_boosting_package",
    "write_model_folder",
]

NO_DEVELOPMENT_BINS: Final = (
    "a boosted-trees run releases no development bins (per-feature bin counts of its "
    "training rows) for drift monitoring yet"
)


def sign_boosting_package(
    folder: Path,
    *,
    schema: DatasetSchema,
    schema_bytes: bytes,
    encoder: FeatureEncoder,
    cutoff: float,
    score_bins: int,
    privacy: Mapping[str, Any],
    run: str,
    signing_key: Ed25519PrivateKey,
) -> Manifest:
    """Complete a boosting run's model folder into a signed package; return its manifest.

    Parameters
    ----------
    folder : pathlib.Path
        The model folder (``xgboost.json``, ``encoder.json``, ``model_card.json`` and
        nothing else).
    schema, schema_bytes : DatasetSchema, bytes
        The run's schema and its file's bytes (its hash must be the card's).
    encoder : FeatureEncoder
        The run's binned encoder (``encoder.json``).
    cutoff : float
        The run's ``decision-cutoff``.
    score_bins : int
        The run's ``score-bins``.
    privacy : mapping
        The banks' ledger summaries (``metrics.json``'s ``privacy``).
    run : str
        The run's name for the manifest.
    signing_key : Ed25519PrivateKey
        The coordinator's audit key.
    """
    scoring = scoring_settings(
        encoder, schema, scaling=ScoreScaling(), cutoff=cutoff, score_bins=score_bins
    ).model_copy(update={"development": None, "development_missing": NO_DEVELOPMENT_BINS})
    return write_package(
        folder,
        schema_bytes=schema_bytes,
        scoring=scoring,
        privacy=privacy,
        run=run,
        signing_key=signing_key,
    )


def write_boosting_package(
    folder: Path,
    config: RunConfig,
    schema: DatasetSchema,
    encoder: FeatureEncoder,
    privacy: Mapping[str, Any],
) -> Manifest:
    """:func:`sign_boosting_package` with the run's configuration (as an SGD run signs).

    The schema file is the run's ``schema`` (else the embedded one), the key the
    coordinator's audit key (:func:`~coordinator.app.audit_trail.coordinator_key_path`),
    the run's name its ``run-name`` (else the output folder's name).
    """
    schema_file = Path(config.schema_file) if config.schema_file else embedded_schema_path()
    return sign_boosting_package(
        folder,
        schema=schema,
        schema_bytes=schema_file.read_bytes(),
        encoder=encoder,
        cutoff=config.decision_cutoff,
        score_bins=config.score_bins,
        privacy=privacy,
        run=config.run_name or Path(config.out_dir).name,
        signing_key=load_or_create_signing_key(coordinator_key_path(config)),
    )


def write_model_folder(
    folder: Path,
    run: BoostingRun,
    encoder: FeatureEncoder,
    card: dict[str, Any],
    package: Callable[[Path], object] | None,
) -> None:
    """The model folder: the ensemble, its encoder and card, then ``package``'s files."""
    save_xgboost_json(run.ensemble(), folder / XGBOOST_FILE)
    write_durably(folder / ENCODER_FILE, encoder.model_dump_json(indent=1).encode("utf-8"))
    write_durably(folder / CARD_FILE, (json.dumps(card, indent=2) + "\n").encode("utf-8"))
    if package is not None:
        package(folder)


def boosting_model_card(
    run: BoostingRun,
    encoder: FeatureEncoder,
    *,
    banks: list[str],
    training_rows: int,
    schema_name: str,
) -> dict[str, Any]:
    """``model_card.json``: the schema, the input matrix, the hyperparameters, importance."""
    importance = feature_importance(run.ensemble())
    return {
        "model": BOOSTED_MODEL,
        "schema": {"name": schema_name, "sha256": encoder.schema_hash},
        "format": "XGBoost JSON model (xgboost.Booster(model_file='xgboost.json'))",
        "file": XGBOOST_FILE,
        "objective": "binary:logistic (predicts the probability of default)",
        "input": matrix_card(encoder),
        "base_score": run.base_score,
        "params": run.params.model_dump(),
        "trees": len(run.trees),
        "banks": banks,
        "training_rows": training_rows,
        "feature_importance": {
            name: {
                "splits": int(splits),
                "total_gain": float(gain),
                "total_cover": float(cover),
            }
            for name, splits, gain, cover in zip(
                importance.names,
                importance.splits,
                importance.total_gain,
                importance.total_cover,
                strict=True,
            )
        },
        "scoring": (
            "fedcredit score --model <this folder> (a signed package), or build the input "
            "matrix as 'input' says and call xgboost.Booster(model_file='xgboost.json')"
        ),
    }
