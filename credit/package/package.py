"""Write, verify and load a signed model package (a run's ``model/`` folder).

The folder holds::

    model.pt          weights (torch state_dict)
    model_card.json   encoder, architecture, training, metrics, selection
    schema.toml       the run's dataset schema (the file's bytes; hash in the card)
    scorecard.csv     the scorecard (woe + logreg runs)
    scoring.json      scaling, cut-off, top-k, reason texts, scorecard, development bins
    privacy.json      the run's privacy spend per bank
    manifest.json     every file's SHA-256 and size, the run, the signer
    manifest.sig      Ed25519 signature of manifest.json (:mod:`credit.package.manifest`)

A boosted-trees run's package (``model_card.json``'s ``"model"`` is ``"gbdt"``) holds
``xgboost.json`` (the ensemble) and ``encoder.json`` (its binned encoder) where an SGD
model's holds ``model.pt``, and no scorecard (:mod:`credit.gbdt.model`).

:func:`load_package` verifies first and builds the model, schema and settings from
the very bytes it verified; nothing else in the folder is read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import ValidationError

from credit.encoding import FeatureEncoder
from credit.errors import FedcreditError, PackageRefused
from credit.gbdt import (
    BOOSTED_MODEL,
    ENCODER_FILE,
    XGBOOST_FILE,
    BoostedModel,
    boosted_model_from_files,
)
from credit.governance.scorecard import Scorecard
from credit.model_card import CARD_FILE, WEIGHTS_FILE, CreditModel, model_from_files
from credit.package.manifest import Manifest, sign_folder, verify_folder
from credit.package.settings import ScoringSettings
from credit.schema import DatasetSchema, parse_schema

__all__ = [
    "PRIVACY_FILE",
    "SCHEMA_FILE",
    "SCORING_FILE",
    "ModelPackage",
    "load_package",
    "verify_package",
    "write_package",
]

SCHEMA_FILE = "schema.toml"
SCORING_FILE = "scoring.json"
PRIVACY_FILE = "privacy.json"
_SETTINGS = (CARD_FILE, SCHEMA_FILE, SCORING_FILE, PRIVACY_FILE)
_MODEL_FILES = {False: (WEIGHTS_FILE,), True: (XGBOOST_FILE, ENCODER_FILE)}
"""The model's own files, by whether it is boosted trees."""
_WRITER_BUG = "the package is signed but inconsistent; ask the consortium to write it again"


@dataclass(frozen=True, eq=False)
class ModelPackage:
    """A verified model package, loaded.

    Attributes
    ----------
    root : pathlib.Path
        The package folder.
    digest : str
        SHA-256 (hex) of ``manifest.json``: the package's name in every answer.
    manifest : Manifest
        The signed manifest.
    model : CreditModel or BoostedModel
        The model: a network (module, encoder, spec, card) or boosted trees
        (ensemble, binned encoder, card).
    schema : DatasetSchema
        The run's dataset schema (its hash is the card's and the encoder's).
    scoring : ScoringSettings
        ``scoring.json``.
    scorecard : Scorecard or None
        The scorecard rebuilt from the weights and ``scoring.json``'s tables (its
        points checked against the listed ones); None without one.
    privacy : dict
        ``privacy.json``: the run's privacy spend per bank.
    """

    root: Path
    digest: str
    manifest: Manifest
    model: CreditModel | BoostedModel
    schema: DatasetSchema
    scoring: ScoringSettings
    scorecard: Scorecard | None
    privacy: dict[str, Any]

    @property
    def kind(self) -> str:
        """The model family: ``logreg`` or ``mlp`` (a network), ``gbdt`` (boosted trees)."""
        if isinstance(self.model, BoostedModel):
            return BOOSTED_MODEL
        return self.model.spec.kind.value

    @property
    def encoder(self) -> FeatureEncoder:
        """The model's encoder (for boosted trees: the binned encoder of its bins)."""
        return self.model.encoder


def write_package(
    directory: Path,
    *,
    schema_bytes: bytes,
    scoring: ScoringSettings,
    privacy: Mapping[str, Any],
    run: str,
    signing_key: Ed25519PrivateKey,
) -> Manifest:
    """Complete a model folder into a signed package; return its manifest.

    Parameters
    ----------
    directory : pathlib.Path
        A folder :func:`credit.model_card.save_model` wrote (plus ``scorecard.csv``
        for a scorecard run), or a boosted-trees run's model folder (``xgboost.json``,
        ``encoder.json``, ``model_card.json``), holding nothing else.
    schema_bytes : bytes
        The run's schema file, byte for byte; its hash must be the card's.
    scoring : ScoringSettings
        ``scoring.json`` (:func:`credit.package.scoring_settings`).
    privacy : mapping
        The run's privacy spend per bank (``RunState.privacy_document()``).
    run : str
        The run's name for the manifest.
    signing_key : Ed25519PrivateKey
        The coordinator's audit key.

    Raises
    ------
    FedcreditError
        The schema is not the one the model card names.
    """
    card = json.loads((directory / CARD_FILE).read_text(encoding="utf-8"))
    schema = parse_schema(schema_bytes, source=directory / SCHEMA_FILE)
    if schema.schema_hash() != card["schema"]["sha256"]:
        raise FedcreditError(
            f"{directory / SCHEMA_FILE}: the schema's hash {schema.schema_hash()} is not the "
            f"model card's {card['schema']['sha256']}: the schema file changed during the run; "
            "restore the file the run started with"
        )
    (directory / SCHEMA_FILE).write_bytes(schema_bytes)
    (directory / SCORING_FILE).write_text(
        json.dumps(scoring.model_dump(mode="json"), indent=2) + "\n", encoding="utf-8"
    )
    (directory / PRIVACY_FILE).write_text(json.dumps(dict(privacy), indent=2) + "\n", "utf-8")
    return sign_folder(directory, run=run, signing_key=signing_key)


def verify_package(directory: Path | str, signer: Ed25519PublicKey | None = None) -> Manifest:
    """Verify a package folder (signature, pinned signer, every file); return its manifest.

    Raises
    ------
    PackageRefused
        Any byte changed in a listed file, the manifest or the signature; a listed
        file missing; a file the manifest does not list; another signer than
        ``signer``. The message names the file and what to do.
    """
    return verify_folder(directory, signer=signer).manifest


def load_package(directory: Path | str, *, signer: Ed25519PublicKey | None = None) -> ModelPackage:
    """Verify a package, then load it from the bytes verified.

    Parameters
    ----------
    directory : pathlib.Path or str
        The package folder (a run's ``model/``).
    signer : Ed25519PublicKey, optional
        The pinned signer (the consortium's audit key).

    Raises
    ------
    PackageRefused
        Verification failed (:func:`verify_package`), a required file is not listed,
        or the signed contents disagree (schema hash, scorecard points).
    """
    root = Path(directory)
    verified = verify_folder(root, signer=signer)
    contents = verified.contents
    _require(root, contents, _SETTINGS)
    card = _json(contents[CARD_FILE], root / CARD_FILE)
    boosted = card.get("model") == BOOSTED_MODEL
    _require(root, contents, _MODEL_FILES[boosted])
    try:
        model: CreditModel | BoostedModel = (
            boosted_model_from_files(card, contents[XGBOOST_FILE], contents[ENCODER_FILE])
            if boosted
            else model_from_files(card, contents[WEIGHTS_FILE])
        )
        schema = parse_schema(contents[SCHEMA_FILE], source=root / SCHEMA_FILE)
        scoring = ScoringSettings.model_validate(_json(contents[SCORING_FILE], root / SCORING_FILE))
    except (FedcreditError, ValidationError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise PackageRefused(
            f"unusable signed contents ({exc})", file=root, hint=_WRITER_BUG
        ) from exc
    if not schema.schema_hash() == model.encoder.schema_hash == card["schema"]["sha256"]:
        raise PackageRefused(
            "the schema is not the one the model was trained on (hashes differ)",
            file=root / SCHEMA_FILE,
            hint=_WRITER_BUG,
        )
    return ModelPackage(
        root=root,
        digest=verified.digest,
        manifest=verified.manifest,
        model=model,
        schema=schema,
        scoring=scoring,
        scorecard=_scorecard(model, scoring, root),
        privacy=_json(contents[PRIVACY_FILE], root / PRIVACY_FILE),
    )


def _require(root: Path, contents: Mapping[str, bytes], names: tuple[str, ...]) -> None:
    for name in names:
        if name not in contents:
            raise PackageRefused(
                f"the signed manifest does not list {name}",
                file=root / name,
                hint="this is not a complete model package; use the model folder of a run",
            )


def _json(data: bytes, path: Path) -> dict[str, Any]:
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PackageRefused(f"not JSON ({exc})", file=path, hint=_WRITER_BUG) from exc
    if not isinstance(document, dict):
        raise PackageRefused("not a JSON object", file=path, hint=_WRITER_BUG)
    return document


def _scorecard(
    model: CreditModel | BoostedModel, scoring: ScoringSettings, root: Path
) -> Scorecard | None:
    """The scorecard rebuilt from the weights and the tables, its points checked."""
    settings = scoring.scorecard
    if settings is None:
        return None
    if isinstance(model, BoostedModel):
        raise PackageRefused(
            "boosted trees have no scorecard, yet scoring.json lists one",
            file=root / SCORING_FILE,
            hint=_WRITER_BUG,
        )
    from credit.woe_binning import scorecard_of, tables_from_document

    state = model.module.state_dict()
    try:
        scorecard = scorecard_of(
            model.encoder,
            tables_from_document(settings.tables),
            weights=state["0.weight"].numpy(),
            bias=float(state["0.bias"].numpy().reshape(-1)[0]),
            scaling=scoring.scaling.scaling(),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise PackageRefused(
            f"the scorecard does not fit the model ({exc})",
            file=root / SCORING_FILE,
            hint=_WRITER_BUG,
        ) from exc
    for item in scorecard.characteristics:
        listed = settings.points.get(item.feature)
        if listed is None or not np.array_equal(np.asarray(listed), item.points):
            raise PackageRefused(
                f"the scorecard points of '{item.feature}' are not the model's",
                file=root / SCORING_FILE,
                hint=_WRITER_BUG,
            )
    return scorecard
