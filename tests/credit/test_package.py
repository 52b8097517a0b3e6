"""The signed model package: written, verified, loaded; any change refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from credit.audit import load_public_key
from credit.errors import PackageRefused
from credit.model_card import load_model
from credit.package import (
    MANIFEST_FILE,
    SIGNATURE_FILE,
    load_package,
    signer_fingerprint,
    verify_package,
    write_package,
)
from credit.package.manifest import sign_folder
from credit.schema import embedded_schema_path, load_schema
from credit.scoring import check_applicants
from tests.support.packages import (
    applicant_rows,
    build_test_package,
    signer_public_path,
)

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


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A woe + logreg package (every file kind, scorecard included)."""
    return build_test_package(tmp_path_factory.mktemp("package"), "woe")


@pytest.fixture
def package(built: Path, tmp_path: Path) -> Path:
    """A fresh copy of the package, for a test that changes it."""
    return Path(shutil.copytree(built, tmp_path / "model"))


def _flip_one_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def test_the_package_holds_every_file_and_verifies(built: Path) -> None:
    assert sorted(p.name for p in built.iterdir()) == PACKAGE_FILES
    manifest = verify_package(built, load_public_key(signer_public_path(built.parent)))
    assert sorted(manifest.files) == sorted(set(PACKAGE_FILES) - {MANIFEST_FILE, SIGNATURE_FILE})
    assert manifest.run == "test-run"
    assert manifest.signer.fingerprint == signer_fingerprint(
        load_public_key(signer_public_path(built.parent))
    )
    for name, entry in manifest.files.items():
        assert entry.bytes == (built / name).stat().st_size


def test_a_loaded_package_is_the_saved_model(built: Path) -> None:
    loaded = load_package(built)
    plain = load_model(built)  # existing callers still read the folder
    frame = check_applicants(applicant_rows(0, 50), loaded.schema, source="rows").data
    assert frame is not None
    np.testing.assert_array_equal(
        loaded.model.predict_proba(frame.frame), plain.predict_proba(frame.frame)
    )
    assert loaded.schema == load_schema()
    assert loaded.scorecard is not None
    assert loaded.scoring.development is not None
    assert loaded.scoring.development.layout().score_bins == 10
    assert loaded.privacy == {"bank-1": {"epsilon": 1.0, "delta": 1e-5}}
    assert len(loaded.digest) == 64


@pytest.mark.parametrize("name", PACKAGE_FILES)
def test_one_changed_byte_in_any_file_is_refused(package: Path, name: str) -> None:
    _flip_one_byte(package / name)
    expected = r"manifest\.(json|sig): " if name.startswith("manifest") else f"{name}: sha256"
    with pytest.raises(PackageRefused, match=expected):
        verify_package(package)
    with pytest.raises(PackageRefused):
        load_package(package)


@pytest.mark.parametrize("name", sorted(set(PACKAGE_FILES) - {MANIFEST_FILE}))
def test_a_missing_file_is_refused(package: Path, name: str) -> None:
    (package / name).unlink()
    with pytest.raises(PackageRefused, match=f"{name}: missing"):
        load_package(package)


def test_a_planted_file_is_refused(package: Path) -> None:
    (package / "extra.py").write_text("print('hello')\n")
    with pytest.raises(PackageRefused, match=r"extra\.py: not listed in the signed manifest"):
        verify_package(package)


def test_a_planted_folder_is_refused(package: Path) -> None:
    (package / "sub").mkdir()
    with pytest.raises(PackageRefused, match="sub: not listed"):
        load_package(package)


def test_a_package_signed_by_another_key_is_refused_when_pinned(package: Path, built: Path) -> None:
    """The attacker re-signs a changed package with a key of their own: whole, but not ours."""
    scoring = package / "scoring.json"
    document = json.loads(scoring.read_text())
    document["cutoff"] = 0.99
    scoring.write_text(json.dumps(document))
    sign_folder(package, run="test-run", signing_key=Ed25519PrivateKey.generate())
    verify_package(package)  # whole and signed: only a pinned key tells it apart
    pinned = load_public_key(signer_public_path(built.parent))
    with pytest.raises(PackageRefused, match="not by the pinned signer"):
        verify_package(package, pinned)
    with pytest.raises(PackageRefused, match="not by the pinned signer"):
        load_package(package, signer=pinned)


def test_the_pinned_signer_is_accepted(built: Path) -> None:
    pinned = load_public_key(signer_public_path(built.parent))
    assert load_package(built, signer=pinned).manifest.signer.fingerprint == signer_fingerprint(
        pinned
    )


def test_a_changed_listed_size_is_refused(package: Path) -> None:
    manifest = json.loads((package / MANIFEST_FILE).read_text())
    manifest["files"]["model.pt"]["bytes"] += 1
    (package / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    with pytest.raises(PackageRefused, match="signature does not verify"):
        verify_package(package)


def test_a_folder_without_a_manifest_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PackageRefused, match=r"manifest\.json: missing"):
        verify_package(tmp_path)
    with pytest.raises(PackageRefused, match="no such package folder"):
        verify_package(tmp_path / "nowhere")


def test_a_schema_other_than_the_cards_is_not_signed(package: Path) -> None:
    other = embedded_schema_path().read_text().replace("min_rows = 50", "min_rows = 51")
    loaded = load_package(package)
    with pytest.raises(Exception, match="schema's hash"):
        write_package(
            package,
            schema_bytes=other.encode(),
            scoring=loaded.scoring,
            privacy={},
            run="x",
            signing_key=Ed25519PrivateKey.generate(),
        )


def test_a_listed_file_replaced_by_a_link_is_refused(package: Path, tmp_path: Path) -> None:
    """Same bytes behind a link: the loader would read a file outside the package."""
    outside = tmp_path / "model.pt"
    (package / "model.pt").rename(outside)
    (package / "model.pt").symlink_to(outside)
    with pytest.raises(PackageRefused, match=r"model\.pt: not a plain file"):
        load_package(package)
