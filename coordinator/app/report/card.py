"""The model card section of the model report, read from ``model/model_card.json``.

What :func:`credit.model_card.save_model` writes: the card's format and date, the
schema, the architecture, the fitted encoder (read back as a
:class:`~credit.encoding.FeatureEncoder`, so each feature's inputs are counted as the
model counts them) and the weights file's hash; and, from the signed package's
``manifest.json`` beside it, the package digest and the signer's fingerprint (what a
bank compares with ``fedcredit model verify``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from credit.encoding import EncodingKind, FeatureEncoder
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
    """The model card's identity, architecture and encoding."""

    created: str
    card_format: str
    schema_name: str
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
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: unexpected content ({type(exc).__name__}: {exc})") from exc


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
