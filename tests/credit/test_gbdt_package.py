"""A boosting run's signed package: written by the run's writers, any change refused, and
scored as XGBoost scores the exported model, with TreeSHAP reason codes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from coordinator.app.boosting_package import NO_DEVELOPMENT_BINS
from credit.audit import load_public_key
from credit.errors import PackageRefused
from credit.gbdt import BoostedModel, contribution_tables, contributions, raw_matrix
from credit.package import MANIFEST_FILE, ModelPackage, load_package, verify_package
from credit.package.manifest import sign_folder
from credit.scoring import Scorer, check_applicants
from credit.scoring.reasons import MIN_POINTS_LOST
from participant.node.provenance import check_received
from tests.support.gbdt_packages import GBDT_FILES, GBDT_PARAMS, build_gbdt_package
from tests.support.packages import applicant_rows, signer_key_path, signer_public_path


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_gbdt_package(tmp_path_factory.mktemp("gbdt-package"))


@pytest.fixture(scope="module")
def loaded(built: Path) -> ModelPackage:
    return load_package(built, signer=load_public_key(signer_public_path(built.parent.parent)))


@pytest.fixture
def package(built: Path, tmp_path: Path) -> Path:
    """A fresh copy of the package, for a test that changes it."""
    return Path(shutil.copytree(built, tmp_path / "model"))


def _rows(package: ModelPackage, start: int, rows: int) -> pd.DataFrame:
    checked = check_applicants(applicant_rows(start, rows), package.schema, source="test")
    assert checked.data is not None, checked.report.error()
    return checked.data.frame


def test_the_run_signs_every_file_of_its_model_folder(built: Path, loaded: ModelPackage) -> None:
    assert sorted(path.name for path in built.iterdir()) == GBDT_FILES
    manifest = verify_package(built)
    assert sorted(manifest.files) == sorted(set(GBDT_FILES) - {MANIFEST_FILE, "manifest.sig"})
    assert manifest.run == "test-run-gbdt"
    assert loaded.kind == "gbdt" and isinstance(loaded.model, BoostedModel)
    assert len(loaded.model.ensemble.trees) == GBDT_PARAMS.n_trees
    scoring = loaded.scoring
    assert (scoring.cutoff, scoring.top_k, scoring.scorecard) == (0.3, 4, None)
    assert set(scoring.descriptions) == set(loaded.encoder.features)
    assert scoring.development is None
    assert scoring.development_missing == NO_DEVELOPMENT_BINS
    assert loaded.privacy == {"bank-1": {"epsilon": 1.0, "delta": 1e-5}}


@pytest.mark.parametrize("name", GBDT_FILES)
def test_one_changed_byte_in_any_file_is_refused(package: Path, name: str) -> None:
    data = bytearray((package / name).read_bytes())
    data[len(data) // 2] ^= 0x01
    (package / name).write_bytes(bytes(data))
    expected = r"manifest\.(json|sig): " if name.startswith("manifest") else rf"{name}: sha256"
    with pytest.raises(PackageRefused, match=expected):
        load_package(package)


def test_re_signed_trees_off_the_bins_are_refused(package: Path) -> None:
    """A signer who moves a threshold off the encoder's edges: the trees would route rows
    unlike the bins the run trained on."""
    document = json.loads((package / "xgboost.json").read_text())
    tree = document["learner"]["gradient_booster"]["model"]["trees"][0]
    tree["split_conditions"][0] += 0.5
    (package / "xgboost.json").write_text(json.dumps(document))
    sign_folder(package, run="forged", signing_key=_test_key(package))
    with pytest.raises(PackageRefused, match=r"is not one of its bin edges"):
        load_package(package)


def _test_key(package: Path) -> object:
    from credit.audit import load_or_create_signing_key

    return load_or_create_signing_key(signer_key_path(package.parent))


def test_scores_are_xgboosts_on_the_exported_model(built: Path, loaded: ModelPackage) -> None:
    frame = _rows(loaded, 400, 500)
    scored = Scorer(loaded).score(frame)
    matrix = raw_matrix(frame, loaded.encoder)
    booster = xgb.Booster(model_file=str(built / "xgboost.json"))
    data = xgb.DMatrix(matrix, missing=np.nan, feature_names=list(loaded.encoder.features))
    np.testing.assert_allclose(scored.probability, booster.predict(data), rtol=0, atol=1e-6)
    margin = loaded.model.ensemble.margin(matrix)
    np.testing.assert_allclose(margin, booster.predict(data, output_margin=True), atol=2e-6)
    scaling = loaded.scoring.scaling.scaling()
    assert np.array_equal(scored.score, np.rint(scaling.offset - scaling.factor * margin))
    assert np.array_equal(scored.decline, scored.probability >= 0.3)
    assert 0 < scored.decline.sum() < len(frame)


def test_reasons_are_the_largest_positive_treeshap_contributions(
    built: Path, loaded: ModelPackage
) -> None:
    """Brute force per row against the contributions the scorer uses (exactly): the
    TreeSHAP recursion's, and XGBoost's ``pred_contribs`` on the exported model (to
    float32 rounding)."""
    frame = _rows(loaded, 400, 300)
    scored = Scorer(loaded).score(frame)
    matrix = raw_matrix(frame, loaded.encoder)
    tables = contribution_tables(loaded.model.ensemble)
    assert tables is not None
    phi = tables.contributions(matrix)
    recursion = contributions(loaded.model.ensemble, matrix)
    np.testing.assert_allclose(phi, recursion, rtol=0, atol=1e-12)
    booster = xgb.Booster(model_file=str(built / "xgboost.json"))
    data = xgb.DMatrix(matrix, missing=np.nan, feature_names=list(loaded.encoder.features))
    np.testing.assert_allclose(phi, booster.predict(data, pred_contribs=True), rtol=0, atol=1e-5)
    names = loaded.encoder.features
    factor = loaded.scoring.scaling.scaling().factor
    labels = {name: loaded.encoder.bin_labels(name) for name in names}
    descriptions = loaded.scoring.descriptions
    for row, reasons in enumerate(scored.reasons):
        points = factor * phi[row, :-1]
        ranked = sorted(range(len(names)), key=lambda j: (-points[j], j))
        expected = [j for j in ranked if points[j] > MIN_POINTS_LOST][:4]
        assert [r.feature for r in reasons] == [names[j] for j in expected]
        assert [r.points_lost for r in reasons] == [points[j] for j in expected]
        for reason in reasons:
            label = labels[reason.feature][scored.bins[reason.feature][row]]
            assert reason.text == f"{descriptions[reason.feature]}: {label}"
    assert sum(len(r) for r in scored.reasons) > 2 * len(frame)


def test_a_row_scores_the_same_alone_as_in_a_batch(loaded: ModelPackage) -> None:
    frame = _rows(loaded, 1000, 40)
    scorer = Scorer(loaded)
    batch = scorer.score(frame)
    for row in (0, 17, 39):
        alone = scorer.score(frame.iloc[[row]])
        assert alone.probability[0] == batch.probability[row]
        assert alone.reasons[0] == batch.reasons[row]


def test_the_banks_provenance_check_refuses_boosted_trees(
    loaded: ModelPackage, tmp_path: Path
) -> None:
    """Fail closed: a boosting run's bank log names no model, so nothing vouches for it."""
    with pytest.raises(PackageRefused, match=r"provenance cannot be checked"):
        check_received(loaded, tmp_path / "audit.jsonl", tmp_path / "audit.pub")
