"""The signed model package: written, verified, loaded; any change refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from credit.audit import load_public_key
from credit.errors import PackageRefused
from credit.feature_stats import DEFAULT_GRID_BINS
from credit.governance.stability_release import SCORE
from credit.model_card import load_model
from credit.package import (
    MANIFEST_FILE,
    SIGNATURE_FILE,
    DevelopmentBins,
    FeatureBins,
    load_package,
    signer_fingerprint,
    verify_package,
    write_package,
)
from credit.package.manifest import sign_folder
from credit.schema import embedded_schema_path, load_schema
from credit.scoring import check_applicants
from credit.stability_noise import development_noise
from tests.support.packages import (
    PACKAGE_FILES,
    applicant_rows,
    build_test_package,
    noisy_privacy,
    signer_public_path,
)


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


def test_a_dp_runs_package_stores_its_development_counts_noise_variance(tmp_path: Path) -> None:
    privacy = noisy_privacy(1.0)
    (tmp_path / "dp").mkdir()
    (tmp_path / "plain").mkdir()
    noisy = load_package(build_test_package(tmp_path / "dp", "logreg", privacy=privacy))
    exact = load_package(build_test_package(tmp_path / "plain", "logreg"))
    development = noisy.scoring.development
    assert development is not None and exact.scoring.development is not None

    noise = development.noise()
    expected = development_noise(
        privacy, development.layout(), noisy.model.encoder, noisy.schema, DEFAULT_GRID_BINS
    )
    assert noise is not None and expected is not None
    assert noise.keys() == expected.keys() == development.layout().n_bins.keys()
    for name, variance in expected.items():
        np.testing.assert_array_equal(noise[name], variance)
        assert (variance > 0).all(), name  # the set-up and evaluation releases noise every bin
    np.testing.assert_array_equal(  # the counts as released
        development.counts().to_vector(), exact.scoring.development.counts().to_vector()
    )
    stored = json.loads((noisy.root / "scoring.json").read_text())["development"]
    assert stored["features"]["PAY_0"]["noise_variance"] == noise["PAY_0"].tolist()
    assert stored["score_noise_variance"] == noise[SCORE].tolist()
    assert exact.scoring.development.noise() is None  # no budget: exact counts, null variance
    plain = json.loads((exact.root / "scoring.json").read_text())["development"]
    assert plain["score_noise_variance"] is None
    assert all(bins["noise_variance"] is None for bins in plain["features"].values())


def test_a_noise_variance_that_does_not_fit_the_bins_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"one variance per bin \(2\); got 3"):
        FeatureBins(labels=("a", "b"), counts=(1.0, 2.0), noise_variance=(1.0, 1.0, 1.0))
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        FeatureBins(labels=("a", "b"), counts=(1.0, 2.0), noise_variance=(1.0, -1.0))
    noisy = FeatureBins(labels=("a", "b"), counts=(1.0, 2.0), noise_variance=(4.0, 4.0))
    exact = FeatureBins(labels=("a", "b"), counts=(1.0, 2.0))
    with pytest.raises(ValidationError, match="noise_variance is missing for y"):
        DevelopmentBins(
            features={"x": noisy, "y": exact}, score_bins=2, score_counts=(1.0, 2.0),
            score_noise_variance=(4.0, 4.0),
        )  # fmt: skip
    with pytest.raises(ValidationError, match="score_noise_variance is missing"):
        DevelopmentBins(features={"x": noisy}, score_bins=2, score_counts=(1.0, 2.0))
