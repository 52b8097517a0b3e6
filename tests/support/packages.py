"""Small, real signed model packages for tests: a real key, an encoder fitted on embedded rows.

Nothing is trained: the weights are random (seeded), large enough that the reason
codes differ between rows. :func:`build_test_package` writes the package exactly as
a run's end does (:func:`credit.package.write_package`), signed with a key kept
beside it (never inside it: :func:`signer_key_path`, its public half
:func:`signer_public_path`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch

from credit.audit import load_or_create_signing_key, public_key_path
from credit.datasets import embedded_data_path
from credit.encoding import EncodingKind, FeatureEncoder, fit_encoder
from credit.feature_stats import compute_feature_stats
from credit.governance.scorecard import ScoreScaling, write_scorecard_csv
from credit.loading import load_bank_csv
from credit.model_card import SCORECARD_FILE, save_model
from credit.model_spec import ModelKind, ModelSpec
from credit.models import build_model
from credit.package import scoring_settings, write_package
from credit.schema import embedded_schema_path, load_schema
from credit.woe_binning import (
    bin_counts,
    fit_woe_encoder,
    scorecard_of,
    woe_iv_document,
    woe_tables,
)

__all__ = [
    "PackageKind",
    "applicant_rows",
    "build_test_package",
    "signer_key_path",
    "signer_public_path",
    "training_rows",
]

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
        score_bins=SCORE_BINS,
    )  # fmt: skip
    write_package(
        directory,
        schema_bytes=embedded_schema_path().read_bytes(),
        scoring=scoring,
        privacy={"bank-1": {"epsilon": 1.0, "delta": 1e-5}},
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
