"""A small, real signed boosted-trees package for tests, from a tiny in-process federated run.

Two banks hold the first embedded rows; the bins come from a binned encoder fitted on
their pooled statistics (as a run's set-up fits it), the trees from
:func:`coordinator.app.boosting.train_federated` over the banks' summed level
histograms (:class:`simulations.gbdt_consortium.PlainLevelSum`), and the model folder
is written and signed by the run's own writers
(:func:`~coordinator.app.boosting_run.write_boosting_outputs` with
:func:`~coordinator.app.boosting_package.sign_boosting_package`), with the test key of
:mod:`tests.support.packages`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from coordinator.app.boosting import train_federated
from coordinator.app.boosting_package import sign_boosting_package
from coordinator.app.boosting_run import write_boosting_outputs
from credit.audit import load_or_create_signing_key
from credit.encoding import fit_encoder
from credit.feature_stats import compute_feature_stats
from credit.gbdt import BoostingParams, base_score_from_counts, bins_from_encoder, raw_matrix
from credit.schema import embedded_schema_path, load_schema
from participant.guard.gbdt_bank import GbdtBank
from simulations.gbdt_consortium import PlainLevelSum
from tests.support.packages import signer_key_path, training_rows

__all__ = ["GBDT_FILES", "GBDT_PARAMS", "build_gbdt_package"]

GBDT_FILES = [
    "encoder.json",
    "manifest.json",
    "manifest.sig",
    "model_card.json",
    "privacy.json",
    "schema.toml",
    "scoring.json",
    "xgboost.json",
]
"""Every file of a boosted-trees package, sorted."""

GBDT_PARAMS = BoostingParams(
    n_trees=6, max_depth=3, learning_rate=0.3, min_child_weight=1.0, max_bins=8
)
"""Small enough to grow in well under a second; deep enough for interactions."""
BANKS = 2


def build_gbdt_package(tmp_path: Path, *, cutoff: float = 0.3, rows: int = 400) -> Path:
    """Run the tiny federated boosting and sign its model folder; return the folder.

    The run's outputs go to ``tmp_path / "run-gbdt"`` (its package is its ``model/``);
    the key is :func:`~tests.support.packages.signer_key_path`'s (reused if there).
    """
    schema = load_schema()
    frame = training_rows(tmp_path, rows)
    encoder = fit_encoder(
        schema, stats=compute_feature_stats(frame, schema), quantile_bins=GBDT_PARAMS.max_bins
    )
    bins = bins_from_encoder(encoder)
    codes = bins.codes(raw_matrix(frame, encoder))
    labels = frame[schema.target].to_numpy(dtype=np.int64)
    parts = np.array_split(np.arange(len(labels)), BANKS)
    banks = {
        node: GbdtBank(codes=codes[part], labels=labels[part], n_bins=bins.n_bins, run="gbdt-test")
        for node, part in enumerate(parts, start=1)
    }
    run = train_federated(
        params=GBDT_PARAMS,
        bins=bins,
        base_score=base_score_from_counts(int(labels.sum()), len(labels)),
        level_sum=PlainLevelSum(banks),
        rng=np.random.default_rng(0),
    )
    out = tmp_path / "run-gbdt"
    privacy = {"bank-1": {"epsilon": 1.0, "delta": 1e-5}}
    write_boosting_outputs(
        out,
        run,
        encoder,
        banks=["bank-1", "bank-2"],
        training_rows=len(labels),
        extra={"privacy": {}},
        schema_name=schema.name,
        package=lambda folder: sign_boosting_package(
            folder,
            schema=schema,
            schema_bytes=embedded_schema_path().read_bytes(),
            encoder=encoder,
            cutoff=cutoff,
            score_bins=10,
            privacy=privacy,
            run="test-run-gbdt",
            signing_key=load_or_create_signing_key(signer_key_path(tmp_path)),
        ),
    )
    return out / "model"
