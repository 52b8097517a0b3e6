"""Saving and loading a model directory: exact predictions, card contents, tamper checks."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from credit.encoding import EncodingKind, FeatureEncoder, StatsSource, fit_encoder
from credit.errors import FedcreditError
from credit.feature_stats import compute_feature_stats
from credit.loading import load_bank_csv
from credit.model_card import CARD_FILE, WEIGHTS_FILE, load_model, save_model
from credit.models import ModelKind, ModelSpec, build_model
from credit.schema import DatasetSchema
from tests.support.woe import encoder_of

TRAINING = {"rounds": 3, "learning-rate": 0.01, "banks": ["bank-1", "bank-2"]}
METRICS = {"auc": 0.78, "ks": 0.41, "n_rows": 600}


@pytest.fixture
def frame(write_bank_csv: Callable[..., Path], schema: DatasetSchema) -> pd.DataFrame:
    """600 validated rows of the embedded data."""
    return load_bank_csv(write_bank_csv(600, start=1_000), schema).frame


def _encoder(kind: EncodingKind, frame: pd.DataFrame, schema: DatasetSchema) -> FeatureEncoder:
    return encoder_of(kind, schema, compute_feature_stats(frame, schema))


def _trained_like(module: nn.Module, seed: int) -> nn.Module:
    """Give every parameter (biases included) non-trivial values, as training would."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.add_(0.3 * torch.randn(parameter.shape, generator=generator))
    return module


def _save(
    directory: Path,
    kind: ModelKind,
    encoding: EncodingKind,
    frame: pd.DataFrame,
    schema: DatasetSchema,
) -> tuple[nn.Module, ModelSpec, FeatureEncoder]:
    encoder = _encoder(encoding, frame, schema)
    spec = ModelSpec(kind=kind, n_inputs=encoder.n_inputs, hidden_sizes=(16, 8), dropout=0.2)
    module = _trained_like(build_model(spec, seed=3), seed=4)
    save_model(
        directory,
        module,
        spec=spec,
        encoder=encoder,
        schema_name=schema.name,
        training=TRAINING,
        metrics=METRICS,
    )
    return module, spec, encoder


@pytest.mark.parametrize("kind", list(ModelKind))
@pytest.mark.parametrize("encoding", list(EncodingKind))
def test_loaded_model_predicts_exactly_like_the_original(
    kind: ModelKind,
    encoding: EncodingKind,
    tmp_path: Path,
    frame: pd.DataFrame,
    schema: DatasetSchema,
) -> None:
    module, spec, encoder = _save(tmp_path / "model", kind, encoding, frame, schema)
    module.eval()
    with torch.no_grad():
        logits = module(torch.from_numpy(encoder.transform(frame))).squeeze(-1)
    expected = torch.sigmoid(logits).double().numpy()

    loaded = load_model(tmp_path / "model")
    probabilities = loaded.predict_proba(frame)

    assert probabilities.dtype == np.float64
    assert probabilities.shape == (len(frame),)
    np.testing.assert_array_equal(probabilities, expected)
    assert np.all((probabilities > 0) & (probabilities < 1))
    assert loaded.spec == spec
    assert loaded.encoder == encoder
    for name, tensor in module.state_dict().items():
        assert torch.equal(loaded.module.state_dict()[name], tensor), name


def test_load_model_accepts_a_string_path(
    tmp_path: Path, frame: pd.DataFrame, schema: DatasetSchema
) -> None:
    _save(tmp_path / "model", ModelKind.LOGREG, EncodingKind.BINNED, frame, schema)

    assert load_model(str(tmp_path / "model")).spec.kind is ModelKind.LOGREG


def test_card_records_schema_encoder_spec_and_weights_hash(
    tmp_path: Path, frame: pd.DataFrame, schema: DatasetSchema
) -> None:
    directory = tmp_path / "model"
    _, spec, encoder = _save(directory, ModelKind.MLP, EncodingKind.BINNED, frame, schema)
    card = json.loads((directory / CARD_FILE).read_text(encoding="utf-8"))

    assert card["format"] == "fedcredit-model/1"
    assert card["schema"] == {"name": schema.name, "sha256": schema.schema_hash()}
    assert FeatureEncoder.model_validate(card["encoder"]) == encoder
    assert ModelSpec.model_validate(card["model"]) == spec
    assert card["input_names"] == encoder.input_names
    assert card["training"] == TRAINING
    assert card["metrics"] == METRICS
    weights = directory / WEIGHTS_FILE
    assert card["weights"] == {
        "file": WEIGHTS_FILE,
        "sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
    }
    assert load_model(directory).card == card


def test_tampered_weights_are_refused(
    tmp_path: Path, frame: pd.DataFrame, schema: DatasetSchema
) -> None:
    directory = tmp_path / "model"
    _save(directory, ModelKind.LOGREG, EncodingKind.BINNED, frame, schema)
    weights = directory / WEIGHTS_FILE
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))

    with pytest.raises(FedcreditError, match="weights do not match the hash in the model card"):
        load_model(directory)


def test_weights_from_another_model_are_refused(
    tmp_path: Path, frame: pd.DataFrame, schema: DatasetSchema
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    _save(first, ModelKind.LOGREG, EncodingKind.BINNED, frame, schema)
    _save(second, ModelKind.MLP, EncodingKind.BINNED, frame, schema)
    (first / WEIGHTS_FILE).write_bytes((second / WEIGHTS_FILE).read_bytes())

    with pytest.raises(FedcreditError, match="weights do not match"):
        load_model(first)


def test_missing_card_is_refused(tmp_path: Path) -> None:
    (tmp_path / WEIGHTS_FILE).write_bytes(b"not a model")

    with pytest.raises(FedcreditError, match="no model card"):
        load_model(tmp_path)


def test_missing_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FedcreditError, match="no model card"):
        load_model(tmp_path / "does-not-exist")


def test_missing_weights_file_is_refused(
    tmp_path: Path, frame: pd.DataFrame, schema: DatasetSchema
) -> None:
    directory = tmp_path / "model"
    _save(directory, ModelKind.LOGREG, EncodingKind.BINNED, frame, schema)
    (directory / WEIGHTS_FILE).unlink()

    with pytest.raises(FedcreditError, match=WEIGHTS_FILE):
        load_model(directory)


def test_card_of_another_format_is_refused(
    tmp_path: Path, frame: pd.DataFrame, schema: DatasetSchema
) -> None:
    directory = tmp_path / "model"
    _save(directory, ModelKind.LOGREG, EncodingKind.BINNED, frame, schema)
    card_path = directory / CARD_FILE
    card = json.loads(card_path.read_text(encoding="utf-8"))
    card["format"] = "someone-else/9"
    card_path.write_text(json.dumps(card), encoding="utf-8")

    with pytest.raises(FedcreditError, match="unknown model format 'someone-else/9'"):
        load_model(directory)


def test_public_encoder_model_round_trips(
    tmp_path: Path, frame: pd.DataFrame, schema: DatasetSchema
) -> None:
    encoder = fit_encoder(schema, source=StatsSource.PUBLIC)
    spec = ModelSpec(kind=ModelKind.LOGREG, n_inputs=encoder.n_inputs)
    module = _trained_like(build_model(spec, seed=9), seed=10)
    save_model(
        tmp_path,
        module,
        spec=spec,
        encoder=encoder,
        schema_name=schema.name,
        training={},
        metrics={},
    )
    with torch.no_grad():
        logits = module(torch.from_numpy(encoder.transform(frame))).squeeze(-1)

    np.testing.assert_array_equal(
        load_model(tmp_path).predict_proba(frame), torch.sigmoid(logits).double().numpy()
    )
