"""Small, real signed model packages for tests: a real key, an encoder fitted on embedded rows.

Nothing is trained: the weights are random (seeded), large enough that the reason
codes differ between rows. :func:`build_test_package` writes the package exactly as
a run's end does (:func:`credit.package.write_package`), signed with a key kept
beside it (never inside it: :func:`signer_key_path`, its public half
:func:`signer_public_path`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch

from credit.audit import load_or_create_signing_key, public_key_path
from credit.datasets import embedded_data_path
from credit.encoding import EncodingKind, FeatureEncoder, fit_encoder
from credit.feature_stats import DEFAULT_GRID_BINS, compute_feature_stats
from credit.governance.scorecard import ScoreScaling, write_scorecard_csv
from credit.governance.stability_release import SCORE
from credit.loading import load_bank_csv
from credit.metrics import EVALUATION_SENSITIVITY
from credit.model_card import SCORECARD_FILE, save_model
from credit.model_spec import ModelKind, ModelSpec
from credit.models import build_model
from credit.package import FeatureBins, load_package, scoring_settings, write_package
from credit.schema import embedded_schema_path, load_schema
from credit.stability_noise import development_noise
from credit.woe_binning import (
    bin_counts,
    fit_woe_encoder,
    scorecard_of,
    woe_iv_document,
    woe_tables,
)

__all__ = [
    "PACKAGE_FILES",
    "PackageKind",
    "applicant_rows",
    "build_test_package",
    "noisy_privacy",
    "resign_with_noisy_development",
    "signer_key_path",
    "signer_public_path",
    "training_rows",
]

PACKAGE_FILES = [
    "manifest.json",
    "manifest.sig",
    "model.pt",
    "model_card.json",
    "privacy.json",
    "schema.toml",
    "scorecard.csv",
    "scoring.json",
]
"""Every file of a ``woe`` test package, sorted."""

PackageKind = Literal["logreg", "standardized", "mlp", "woe"]
"""``logreg``: binned inputs; ``standardized``: logreg on z-scores; ``mlp``: binned
inputs, hidden layers (8, 4) by default; ``woe``: logreg on WoE inputs, with a scorecard."""
SCORE_BINS = 10
ROWS = 400


def signer_key_path(tmp_path: Path) -> Path:
    """The test signing key (created by :func:`build_test_package`)."""
    return tmp_path / "signer" / "coordinator-audit.key"


def signer_public_path(tmp_path: Path) -> Path:
    """The test signing key's public half (PEM), for ``--signer``."""
    return public_key_path(signer_key_path(tmp_path))


def training_rows(tmp_path: Path, rows: int = ROWS) -> pd.DataFrame:
    """The first ``rows`` embedded rows, validated (with the target)."""
    source = tmp_path / f"embedded-{rows}.csv"
    if not source.is_file():
        pd.read_csv(embedded_data_path(), nrows=rows, dtype=str).to_csv(source, index=False)
    return load_bank_csv(source, load_schema()).frame


def applicant_rows(start: int = 0, rows: int = ROWS) -> pd.DataFrame:
    """Embedded rows ``start .. start + rows`` as an applicant file's cells (no target)."""
    schema = load_schema()
    frame = pd.read_csv(
        embedded_data_path(), dtype=str, keep_default_na=False, skiprows=range(1, start + 1),
        nrows=rows,
    )  # fmt: skip
    return frame.drop(columns=[schema.target])


def build_test_package(
    tmp_path: Path,
    kind: PackageKind = "logreg",
    *,
    seed: int = 0,
    cutoff: float = 0.3,
    hidden_sizes: tuple[int, ...] = (8, 4),
    privacy: dict[str, Any] | None = None,
) -> Path:
    """Write a signed package of ``kind`` into ``tmp_path / f"model-{kind}"``; return it.

    Parameters
    ----------
    tmp_path : pathlib.Path
        The test's folder; the key goes to :func:`signer_key_path` (reused if there).
    kind : {"logreg", "standardized", "mlp", "woe"}
        See :data:`PackageKind`.
    seed : int, default 0
        Seed of the random weights.
    cutoff : float, default 0.3
        The package's decision cut-off (the random model declines some rows at it).
    hidden_sizes : tuple of int, default (8, 4)
        The MLP's hidden layers (``mlp`` only).
    privacy : dict, optional
        The run's ``privacy`` section (e.g. :func:`noisy_privacy`): the development
        counts' noise variance follows from it (the counts stay exact).
    """
    schema = load_schema()
    frame = training_rows(tmp_path)
    stats = compute_feature_stats(frame, schema)
    binned = fit_encoder(schema, stats=stats, quantile_bins=5)
    tables = woe_tables(bin_counts(stats, binned, schema))
    encoder: FeatureEncoder = binned
    if kind == "woe":
        fit = fit_woe_encoder(binned, tables)
        encoder, tables = fit.encoder, fit.tables
    elif kind == "standardized":
        encoder = fit_encoder(schema, kind=EncodingKind.STANDARDIZED, stats=stats)
    model_kind = ModelKind.MLP if kind == "mlp" else ModelKind.LOGREG
    spec = ModelSpec(kind=model_kind, n_inputs=encoder.n_inputs, hidden_sizes=hidden_sizes)
    module = build_model(spec, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.8)
    directory = tmp_path / f"model-{kind}"
    save_model(
        directory, module, spec=spec, encoder=encoder, schema_name=schema.name,
        training={"seed": seed}, metrics={},
    )  # fmt: skip
    scaling = ScoreScaling()
    scorecard = None
    if kind == "woe":
        state = module.state_dict()
        scorecard = scorecard_of(
            encoder, tables, weights=state["0.weight"].numpy(),
            bias=float(state["0.bias"].item()), scaling=scaling,
        )  # fmt: skip
        write_scorecard_csv(scorecard, directory / SCORECARD_FILE)
    scoring = scoring_settings(
        encoder, schema, scaling=scaling, cutoff=cutoff, scorecard=scorecard,
        woe_iv=None if kind == "standardized" else woe_iv_document(tables),
        score_histograms=_histograms(module, encoder, frame, schema.target),
        score_bins=SCORE_BINS, privacy=privacy,
    )  # fmt: skip
    write_package(
        directory,
        schema_bytes=embedded_schema_path().read_bytes(),
        scoring=scoring,
        privacy=privacy or {"bank-1": {"epsilon": 1.0, "delta": 1e-5}},
        run="test-run",
        signing_key=load_or_create_signing_key(signer_key_path(tmp_path)),
    )
    return directory


def _histograms(
    module: torch.nn.Module, encoder: FeatureEncoder, frame: pd.DataFrame, target: str
) -> dict[str, list[float]]:
    """Score histograms of the rows, per class, as a run's ``score_histograms``."""
    with torch.no_grad():
        logits = module(torch.from_numpy(encoder.transform(frame))).squeeze(-1)
    probability = torch.sigmoid(logits).double().numpy()
    edges = np.linspace(0.0, 1.0, SCORE_BINS + 1)
    events = frame[target].to_numpy() == 1
    return {
        "defaulters": np.histogram(probability[events], edges)[0].astype(float).tolist(),
        "non_defaulters": np.histogram(probability[~events], edges)[0].astype(float).tolist(),
    }


def noisy_privacy(noise_multiplier: float) -> dict[str, Any]:
    """A run's ``privacy`` section: one bank whose set-up release (sensitivity sqrt(F),
    F: the embedded schema's model inputs) and final evaluation release both added noise of
    ``noise_multiplier``."""
    features = len(load_schema().input_features)
    events = [
        {"round": 0, "noise_multiplier": noise_multiplier, "sample_rate": 1.0, "steps": 1,
         "max_grad_norm": math.sqrt(features), "kind": "gaussian-release", "run": "r"},
        {"round": 2, "noise_multiplier": noise_multiplier, "sample_rate": 1.0, "steps": 1,
         "max_grad_norm": EVALUATION_SENSITIVITY, "kind": "evaluation-release", "run": "r",
         "rows": "test"},
    ]  # fmt: skip
    summary = {"epsilon": 0.5, "delta": 1e-5, "max_epsilon": 1.0, "accountant": "rdp"}
    return {"bank-1": {**summary, "events": events}}


def resign_with_noisy_development(directory: Path, tmp_path: Path, noise_multiplier: float) -> Path:
    """Re-sign a test package as a DP run would have written it: each development count
    moved by one standard deviation of its release noise (up, down, up, ... along each
    characteristic's bins; clipped at zero), and the noise variance stored beside it.

    The noise variance is :func:`~credit.stability_noise.development_noise`'s for
    :func:`noisy_privacy` of ``noise_multiplier``; the move is deterministic, a typical
    draw's size. Returns ``directory``.
    """
    package = load_package(directory)
    development = package.scoring.development
    if development is None:
        raise ValueError(f"{directory}: the package holds no development bins")
    privacy = noisy_privacy(noise_multiplier)
    noise = development_noise(
        privacy, development.layout(), package.model.encoder, package.schema, DEFAULT_GRID_BINS
    )
    if noise is None:
        raise ValueError("noisy_privacy gave no noise")

    def moved(counts: tuple[float, ...], variance: np.ndarray) -> tuple[float, ...]:
        signs = np.where(np.arange(len(counts)) % 2 == 0, 1.0, -1.0)
        return tuple(np.clip(np.asarray(counts) + signs * np.sqrt(variance), 0.0, None).tolist())

    features = {
        name: FeatureBins(
            labels=bins.labels,
            counts=moved(bins.counts, noise[name]),
            noise_variance=tuple(noise[name].tolist()),
        )
        for name, bins in development.features.items()
    }
    noisy = development.model_copy(
        update={
            "features": features,
            "score_counts": moved(development.score_counts, noise[SCORE]),
            "score_noise_variance": tuple(noise[SCORE].tolist()),
        }
    )
    write_package(
        directory,
        schema_bytes=embedded_schema_path().read_bytes(),
        scoring=package.scoring.model_copy(update={"development": noisy}),
        privacy=privacy,
        run="test-run-dp",
        signing_key=load_or_create_signing_key(signer_key_path(tmp_path)),
    )
    return directory
