"""The scorer's fast path gives the reference computations' bins, inputs, probabilities, reasons.

The reference: the encoder's :meth:`~credit.encoding.FeatureEncoder.bin_indices` and
encoded matrix, the row-by-row network on that matrix, and occlusion by running the
whole model (torch, float64) on every substituted row. A schema with missing values
and special codes (the embedded one has neither) exercises every kind of bin.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from numpy.typing import NDArray
from torch import nn

from credit.encoding import EncodingKind, FeatureEncoder, StatsSource, fit_encoder
from credit.model_spec import ModelKind, ModelSpec
from credit.models import build_model
from credit.package import ModelPackage, load_package
from credit.schema import DatasetSchema, load_schema
from credit.scoring import Scorer, check_applicants
from credit.scoring import scorer as scoring_module
from credit.scoring.binning import LOOKUP_ROWS, FeatureBinner, bin_inputs
from credit.scoring.network import ROW_BLOCK, RowwiseNetwork
from credit.scoring.reasons import FeatureInputs, Occlusion, dense_layers, feature_inputs
from tests.support.packages import PackageKind, applicant_rows, build_test_package

SCHEMA = """
name = "fast-path"
target = "default"
id = "ID"

[[numeric]]
name = "LIMIT"
min = 0
max = 2_000_000
transform = "asinh"
missing = "allow"

[[numeric]]
name = "MONTHS"
min = 0
max = 99
integer = true
special = [96, 98]

[[numeric]]
name = "BILL"
min = -50_000
max = 50_000
bins = [-1_000, 0, 1_000, 5_000]

[[categorical]]
name = "GRADE"
levels = ["a", "b", "c"]
missing = "allow"

[[categorical]]
name = "PAY"
levels = [-1, 0, 1, 2]
missing = "allow"

[[categorical]]
name = "SEX"
levels = [1, 2]
"""
ROWS = 300


@pytest.fixture(scope="module")
def schema(tmp_path_factory: pytest.TempPathFactory) -> DatasetSchema:
    path = tmp_path_factory.mktemp("schema") / "schema.toml"
    path.write_text(SCHEMA)
    return load_schema(path)


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    """Validated-looking rows with missing values, special codes and values on bin edges."""
    rng = np.random.default_rng(7)
    limit = np.round(10.0 ** rng.uniform(0, 6.3, ROWS))
    limit[rng.random(ROWS) < 0.15] = np.nan
    months = rng.integers(0, 100, ROWS).astype(np.float64)
    months[rng.random(ROWS) < 0.2] = 96.0
    months[rng.random(ROWS) < 0.1] = 98.0
    bill = rng.uniform(-50_000, 50_000, ROWS)
    bill[rng.random(ROWS) < 0.2] = rng.choice([-1_000.0, 0.0, 1_000.0, 5_000.0])
    grade = rng.choice(np.array(["a", "b", "c", None], dtype=object), ROWS)
    grade = np.array([np.nan if g is None else g for g in grade], dtype=object)
    pay = rng.choice([-1.0, 0.0, 1.0, 2.0, np.nan], ROWS)
    sex = rng.integers(1, 3, ROWS)
    return pd.DataFrame(
        {"LIMIT": limit, "MONTHS": months, "BILL": bill, "GRADE": grade, "PAY": pay, "SEX": sex}
    )


def _encoder(schema: DatasetSchema, kind: EncodingKind) -> FeatureEncoder:
    return fit_encoder(schema, kind=kind, source=StatsSource.PUBLIC, quantile_bins=6)


def _columns(frame: pd.DataFrame, names: tuple[str, ...]) -> dict[str, NDArray[Any]]:
    return {name: frame[name].to_numpy() for name in names}


def _seeded(spec: ModelSpec) -> nn.Module:
    module = build_model(spec, seed=3)
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.8)
    return module.eval()


def _brute_force(
    module: nn.Module, inputs: tuple[FeatureInputs, ...], encoded: NDArray[np.floating]
) -> NDArray[np.float64]:
    """Log-odds lost per row and feature: the whole model on every substituted row."""
    double = copy.deepcopy(module).double().eval()
    x = np.asarray(encoded, dtype=np.float64)
    with torch.no_grad():
        base = double(torch.from_numpy(x)).squeeze(-1).numpy()
        lost = np.zeros((x.shape[0], len(inputs)))
        for j, item in enumerate(inputs):
            lowest = np.full(x.shape[0], np.inf)
            for alternative in item.alternatives:
                changed = x.copy()
                changed[:, item.start : item.stop] = alternative
                logits = double(torch.from_numpy(changed)).squeeze(-1).numpy()
                lowest = np.minimum(lowest, logits)
            lost[:, j] = base - lowest
    return np.clip(lost, 0.0, None)


@pytest.mark.parametrize("kind", [EncodingKind.BINNED, EncodingKind.STANDARDIZED])
@pytest.mark.parametrize("rows", [slice(0, 1), slice(5, 12), slice(0, ROWS)])  # lookup, levels
def test_binner_gives_the_encoders_bins(
    schema: DatasetSchema, frame: pd.DataFrame, kind: EncodingKind, rows: slice
) -> None:
    assert 7 <= LOOKUP_ROWS < ROWS  # categorical columns binned both ways
    encoder = _encoder(schema, kind)
    part = frame.iloc[rows].reset_index(drop=True)
    binner = FeatureBinner(encoder)
    expected = encoder.bin_indices(part)
    for given in (part, _columns(part, encoder.features)):
        found = binner.bins(binner.columns(given))
        assert list(found) == list(expected) == list(encoder.features)
        for name in expected:
            np.testing.assert_array_equal(found[name], expected[name])
            assert found[name].dtype == np.int64
    whole = binner.bins(binner.columns(frame))  # every kind of bin occurs in the rows
    assert all(np.unique(whole[e.name]).size == e.width for e in encoder.numeric)
    assert all(np.unique(whole[e.name]).size == e.width for e in encoder.categorical)


@pytest.mark.parametrize("rows", [1, ROWS])
def test_binner_refuses_what_the_encoder_refuses(
    schema: DatasetSchema, frame: pd.DataFrame, rows: int
) -> None:
    encoder = _encoder(schema, EncodingKind.BINNED)
    binner = FeatureBinner(encoder)
    level = _columns(frame.iloc[:rows], encoder.features)
    level["GRADE"] = level["GRADE"].copy()
    level["GRADE"][-1] = "z"
    with pytest.raises(ValueError, match=r"column 'GRADE' holds 1 values that are not declared"):
        binner.bins(level)
    missing = _columns(frame.iloc[:rows], encoder.features)
    missing["MONTHS"] = missing["MONTHS"].copy()
    missing["MONTHS"][-1] = np.nan
    with pytest.raises(ValueError, match=r"column 'MONTHS' has 1 missing values"):
        binner.bins(missing)


@pytest.mark.parametrize("kind", [EncodingKind.BINNED, EncodingKind.STANDARDIZED])
def test_first_layer_from_bins_is_the_encoded_matrix_product_to_the_bit(
    schema: DatasetSchema, frame: pd.DataFrame, kind: EncodingKind
) -> None:
    encoder = _encoder(schema, kind)
    inputs = feature_inputs(encoder, schema)
    module = _seeded(ModelSpec(kind=ModelKind.MLP, n_inputs=encoder.n_inputs, hidden_sizes=(6,)))
    standardized = kind is EncodingKind.STANDARDIZED
    network = RowwiseNetwork(module, inputs, bin_blocks=bin_inputs(encoder), z_scores=standardized)
    binner = FeatureBinner(encoder)
    columns = binner.columns(frame)
    bins = binner.bins(columns)
    z = binner.z_scores(columns, bins)
    assert bool(z) == (kind is EncodingKind.STANDARDIZED)
    positions = {encoder.features.index(name): values for name, values in z.items()}
    found = network.contributions([bins[name] for name in encoder.features], positions)
    encoded = encoder.transform(frame)
    for item, contribution in zip(inputs, found, strict=True):
        np.testing.assert_array_equal(contribution, network.block(encoded, item))
    np.testing.assert_array_equal(network.hidden_of(found), network.hidden(encoded))


@pytest.mark.parametrize("kind", [EncodingKind.BINNED, EncodingKind.STANDARDIZED])
def test_occlusion_equals_brute_force_with_missing_and_special_values(
    schema: DatasetSchema, frame: pd.DataFrame, kind: EncodingKind
) -> None:
    encoder = _encoder(schema, kind)
    inputs = feature_inputs(encoder, schema)
    spec = ModelSpec(kind=ModelKind.MLP, n_inputs=encoder.n_inputs, hidden_sizes=(16, 8))
    module = _seeded(spec)
    encoded = encoder.transform(frame)
    network = RowwiseNetwork(module, inputs)
    hidden = network.hidden(encoded)
    contributions = np.stack([network.block(encoded, item) for item in inputs], axis=1)
    occlusion = Occlusion(dense_layers(module), inputs)
    assert occlusion.chunk_rows < ROWS  # several chunks
    fast = occlusion.losses(hidden, contributions, network.after_first(hidden), 1.0)
    expected = _brute_force(module, inputs, encoded)
    np.testing.assert_allclose(fast, expected, rtol=0, atol=1e-9)
    assert (expected > 1e-3).sum() > ROWS  # the model's reasons are not all zero


KINDS: tuple[PackageKind, ...] = ("logreg", "standardized", "mlp", "woe")


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ModelPackage]:
    folder = tmp_path_factory.mktemp("packages")
    found = {kind: load_package(build_test_package(folder, kind)) for kind in KINDS}
    wide = build_test_package(tmp_path_factory.mktemp("wide"), "mlp", hidden_sizes=(64, 32))
    return found | {"mlp-64-32": load_package(wide)}


@pytest.fixture(scope="module")
def applicants() -> pd.DataFrame:
    checked = check_applicants(applicant_rows(1_000, 300), load_schema(), source="rows")
    assert checked.data is not None
    return checked.data.frame


@pytest.mark.parametrize("kind", [*KINDS, "mlp-64-32"])
def test_probabilities_are_the_reference_networks_to_the_bit(
    packages: dict[str, ModelPackage], applicants: pd.DataFrame, kind: str
) -> None:
    package = packages[kind]
    model = package.model
    network = RowwiseNetwork(model.module, feature_inputs(model.encoder, package.schema))
    log_odds = network.log_odds(model.encoder.transform(applicants))
    expected = np.exp(-np.logaddexp(0.0, -log_odds))
    np.testing.assert_array_equal(Scorer(package).score(applicants).probability, expected)


@pytest.mark.parametrize("kind", [*KINDS, "mlp-64-32"])
@pytest.mark.parametrize("rows", [slice(0, 1), slice(3, 19), slice(0, 300)])
def test_arrays_and_frames_score_alike_to_the_bit(
    packages: dict[str, ModelPackage], applicants: pd.DataFrame, kind: str, rows: slice
) -> None:
    """The service hands the scorer arrays, ``fedcredit score`` a frame: one answer."""
    scorer = Scorer(packages[kind])
    part = applicants.iloc[rows]
    by_frame = scorer.score(part)
    by_arrays = scorer.score(_columns(part, packages[kind].model.encoder.features))
    for name in ("probability", "score", "decline"):
        np.testing.assert_array_equal(getattr(by_arrays, name), getattr(by_frame, name))
    for name in ("index", "points_lost", "text"):
        found = getattr(by_arrays.reason_table, name)
        np.testing.assert_array_equal(found, getattr(by_frame.reason_table, name))
    assert by_arrays.reasons == by_frame.reasons
    assert by_arrays.bins.keys() == by_frame.bins.keys()
    for name, values in by_frame.bins.items():
        np.testing.assert_array_equal(by_arrays.bins[name], values)


@pytest.mark.parametrize("kind", ["logreg", "standardized", "mlp-64-32"])
def test_every_reason_is_brute_force_occlusion_over_the_bins(
    packages: dict[str, ModelPackage], applicants: pd.DataFrame, kind: str
) -> None:
    package = packages[kind]
    model = package.model
    inputs = feature_inputs(model.encoder, package.schema)
    scored = Scorer(package, top_k=len(inputs)).score(applicants)
    factor = package.scoring.scaling.scaling().factor
    lost = factor * _brute_force(model.module, inputs, model.encoder.transform(applicants))
    names = [item.name for item in inputs]
    for row, reasons in enumerate(scored.reasons):
        expected = [j for j in np.argsort(-lost[row], kind="stable") if lost[row, j] > 1e-6]
        assert [r.feature for r in reasons][: len(expected)] == [names[j] for j in expected]
        assert all(r.points_lost <= 1e-6 for r in reasons[len(expected) :])
        np.testing.assert_allclose(
            [r.points_lost for r in reasons[: len(expected)]],
            lost[row, expected],
            rtol=0,
            atol=1e-8,
        )


def test_the_float32_screen_keeps_the_float64_minimum(
    schema: DatasetSchema, frame: pd.DataFrame
) -> None:
    """Screening in float32 refines only candidates within the error bound: same losses."""
    encoder = _encoder(schema, EncodingKind.BINNED)
    inputs = feature_inputs(encoder, schema)
    module = _seeded(
        ModelSpec(kind=ModelKind.MLP, n_inputs=encoder.n_inputs, hidden_sizes=(64, 32))
    )
    encoded = encoder.transform(frame)
    network = RowwiseNetwork(module, inputs)
    hidden = network.hidden(encoded)
    contributions = np.stack([network.block(encoded, item) for item in inputs], axis=1)
    base = network.after_first(hidden)
    screened = Occlusion(dense_layers(module), inputs)
    assert screened.screen
    unscreened = Occlusion(dense_layers(module), inputs, screen=False)
    found = screened.losses(hidden, contributions, base, 1.0)
    expected = unscreened.losses(hidden, contributions, base, 1.0)
    np.testing.assert_allclose(found, expected, rtol=0, atol=1e-10)
    np.testing.assert_allclose(found, _brute_force(module, inputs, encoded), rtol=0, atol=1e-9)


def test_blocks_scored_by_threads_equal_blocks_scored_in_turn(
    packages: dict[str, ModelPackage], monkeypatch: pytest.MonkeyPatch
) -> None:
    checked = check_applicants(applicant_rows(0, 2 * ROW_BLOCK + 300), load_schema(), source="r")
    assert checked.data is not None
    scorer = Scorer(packages["mlp"])
    monkeypatch.setattr(scoring_module, "SCORING_THREADS", 3)
    threaded = scorer.score(checked.data.frame)
    monkeypatch.setattr(scoring_module, "SCORING_THREADS", 1)
    in_turn = scorer.score(checked.data.frame)
    np.testing.assert_array_equal(threaded.probability, in_turn.probability)
    np.testing.assert_array_equal(threaded.reason_table.index, in_turn.reason_table.index)
    np.testing.assert_array_equal(threaded.reason_table.text, in_turn.reason_table.text)
    np.testing.assert_array_equal(
        threaded.reason_table.points_lost, in_turn.reason_table.points_lost
    )
