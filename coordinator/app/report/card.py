"""The model card section of the model report, read from ``model/model_card.json``.

What :func:`credit.model_card.save_model` writes: the card's format and date, the
schema, the architecture, the fitted encoder (read back as a
:class:`~credit.encoding.FeatureEncoder`, so each feature's inputs are counted as the
model counts them) and the weights file's hash; and, from the signed package's
``manifest.json`` beside it, the package digest and the signer's fingerprint (what a
bank compares with ``fedcredit model verify``).

A boosting run's card (``"model": "gbdt"``, :func:`coordinator.app.boosting_run.
write_boosting_outputs`) names its XGBoost JSON file, the objective and the input
matrix (one float32 column per feature, with its bin edges); its schema hash and
feature statistics come from the binned encoder beside it (``encoder.json``), and
the model file's SHA-256 is computed here from the file itself.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from credit.encoding import EncodingKind, FeatureEncoder
from credit.gbdt import ENCODER_FILE
from credit.package import MANIFEST_FILE, package_digest

__all__ = ["ModelCardSection", "ModelFeature", "read_model_card"]


@dataclass(frozen=True)
class ModelFeature:
    """One model input feature as the fitted encoder treats it."""

    name: str
    encoding: str
    inputs: int


@dataclass(frozen=True)
class ModelCardSection:
    """The model card's identity, architecture and encoding.

    ``created`` and ``schema_name`` are None when the card does not say (a boosting
    run's card has no date and names the schema only by its hash); ``trees``,
    ``objective`` and ``matrix`` (the input matrix's rules: dtype, missing values,
    split and bin-code rules) are a boosting run's only.
    """

    created: str | None
    card_format: str
    schema_name: str | None
    schema_sha256: str
    model_kind: str
    n_inputs: int
    hidden_sizes: tuple[int, ...] | None
    encoding: str
    feature_stats: str
    features: tuple[ModelFeature, ...]
    weights_file: str
    weights_sha256: str
    package_digest: str | None = None
    signer_fingerprint: str | None = None
    trees: int | None = None
    objective: str | None = None
    matrix: tuple[tuple[str, str], ...] = ()


def read_model_card(path: Path) -> ModelCardSection:
    """The model card section from ``model_card.json``.

    Raises
    ------
    ValueError
        The file is not a model card as :func:`credit.model_card.save_model` writes
        it; the message names the file.
    """
    digest, signer = _package(path.with_name(MANIFEST_FILE))
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
        if card.get("model") == "gbdt":
            return _boosting_card(path, card, digest, signer)
        encoder = FeatureEncoder.model_validate(card["encoder"])
        model = card["model"]
        hidden = tuple(model.get("hidden_sizes") or ())
        return ModelCardSection(
            created=str(card["created"]),
            card_format=str(card["format"]),
            schema_name=str(card["schema"]["name"]),
            schema_sha256=str(card["schema"]["sha256"]),
            model_kind=str(model["kind"]),
            n_inputs=int(model["n_inputs"]),
            hidden_sizes=hidden if model["kind"] != "logreg" else None,
            encoding=encoder.kind.value,
            feature_stats=encoder.source.value,
            features=_features(encoder),
            weights_file=str(card["weights"]["file"]),
            weights_sha256=str(card["weights"]["sha256"]),
            package_digest=digest,
            signer_fingerprint=signer,
        )
    except (KeyError, OSError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: unexpected content ({type(exc).__name__}: {exc})") from exc


_MATRIX_RULES = ("dtype", "missing", "split_rule", "bin_code_rule")


def _boosting_card(
    path: Path, card: Mapping[str, Any], digest: str | None, signer: str | None
) -> ModelCardSection:
    """A boosting run's card, with its encoder's schema hash and its model file's hash."""
    encoder = FeatureEncoder.model_validate_json(
        path.with_name(ENCODER_FILE).read_text(encoding="utf-8")
    )
    matrix = card["input"]
    model_file = path.with_name(str(card["file"]))
    created, schema = card.get("created"), card.get("schema") or {}
    return ModelCardSection(
        created=None if created is None else str(created),
        card_format=str(card["format"]),
        schema_name=None if schema.get("name") is None else str(schema["name"]),
        schema_sha256=encoder.schema_hash,
        model_kind="gbdt",
        n_inputs=len(matrix["columns"]),
        hidden_sizes=None,
        encoding=encoder.kind.value,
        feature_stats=encoder.source.value,
        features=tuple(
            ModelFeature(
                name=str(column["name"]),
                encoding=f"column {column['index']}: {column['value']}, "
                f"{len(column['edges'])} bin edges",
                inputs=1,
            )
            for column in matrix["columns"]
        ),
        weights_file=model_file.name,
        weights_sha256=hashlib.sha256(model_file.read_bytes()).hexdigest(),
        package_digest=digest,
        signer_fingerprint=signer,
        trees=int(card["trees"]),
        objective=str(card["objective"]),
        matrix=tuple((rule, str(matrix[rule])) for rule in _MATRIX_RULES if rule in matrix),
    )


def _package(manifest: Path) -> tuple[str | None, str | None]:
    """The package digest and signer fingerprint; None for a folder without a manifest."""
    if not manifest.is_file():
        return None, None
    raw = manifest.read_bytes()
    try:
        signer = str(json.loads(raw)["signer"]["fingerprint"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{manifest}: unexpected content ({type(exc).__name__}: {exc})") from exc
    return package_digest(raw), signer


def _features(encoder: FeatureEncoder) -> tuple[ModelFeature, ...]:
    binned = encoder.kind is EncodingKind.BINNED
    numeric = tuple(
        ModelFeature(
            name=item.name,
            encoding=(
                f"numeric, {item.transform.value}, {item.width} bins"
                if binned
                else f"numeric, {item.transform.value}, standardised"
            ),
            inputs=item.width,
        )
        for item in encoder.numeric
    )
    categorical = tuple(
        ModelFeature(
            name=item.name, encoding=f"categorical, {len(item.levels)} levels", inputs=item.width
        )
        for item in encoder.categorical
    )
    return numeric + categorical
