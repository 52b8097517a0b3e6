"""Scoring with a package: probabilities, scores, decisions, reason codes, validation."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from credit.errors import ConfigError
from credit.governance.scorecard import reason_codes
from credit.package import ModelPackage, load_package
from credit.scoring import ApplicantTally, Scorer, check_applicants
from credit.scoring.reasons import feature_inputs, linear_losses, occlusion_losses
from tests.support.packages import PackageKind, applicant_rows, build_test_package

KINDS: tuple[PackageKind, ...] = ("logreg", "standardized", "mlp", "woe")


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ModelPackage]:
    folder = tmp_path_factory.mktemp("packages")
    return {kind: load_package(build_test_package(folder, kind)) for kind in KINDS}


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    """200 embedded applicants, validated (no target)."""
    checked = check_applicants(applicant_rows(400, 200), _schema(), source="rows")
    assert checked.data is not None
    return checked.data.frame


def _schema():  # type: ignore[no-untyped-def]
    from credit.schema import load_schema

    return load_schema()


def _brute_force_losses(package: ModelPackage, frame: pd.DataFrame) -> np.ndarray:
    """Occlusion by running the whole model on every substituted row (no shortcut)."""
    model = package.model
    module = copy.deepcopy(model.module).double().eval()
    encoded = model.encoder.transform(frame).astype(np.float64)
    factor = package.scoring.scaling.scaling().factor
    inputs = feature_inputs(model.encoder, package.schema)
    with torch.no_grad():
        base = module(torch.from_numpy(encoded)).squeeze(-1).numpy()
        losses = np.zeros((len(frame), len(inputs)))
        for j, item in enumerate(inputs):
            lowest = np.full(len(frame), np.inf)
            for alternative in item.alternatives:
                changed = encoded.copy()
                changed[:, item.start : item.stop] = alternative
                logits = module(torch.from_numpy(changed)).squeeze(-1).numpy()
                lowest = np.minimum(lowest, logits)
            losses[:, j] = factor * (base - lowest)
    return np.clip(losses, 0.0, None)


@pytest.mark.parametrize("kind", KINDS)
def test_probabilities_are_the_models(
    packages: dict[str, ModelPackage], rows: pd.DataFrame, kind: str
) -> None:
    package = packages[kind]
    scored = Scorer(package).score(rows)
    # float64 row by row against the float32 network: equal to float32 precision
    np.testing.assert_allclose(
        scored.probability, package.model.predict_proba(rows), rtol=1e-5, atol=1e-7
    )
    assert scored.probability.dtype == np.float64
    np.testing.assert_array_equal(scored.decline, scored.probability >= package.scoring.cutoff)
    assert 0 < scored.decline.sum() < len(rows)  # the cut-off splits these rows
    assert set(scored.bins) == set(package.model.encoder.features)


@pytest.mark.parametrize("kind", ["logreg", "standardized", "mlp"])
def test_scores_rescale_the_log_odds(
    packages: dict[str, ModelPackage], rows: pd.DataFrame, kind: str
) -> None:
    package = packages[kind]
    scored = Scorer(package).score(rows)
    scaling = package.scoring.scaling.scaling()
    middle = (scored.probability > 1e-9) & (scored.probability < 1 - 1e-9)
    assert middle.sum() > 100
    expected = scaling.score_from_probability(scored.probability[middle])
    assert np.all(np.abs(scored.score[middle] - expected) <= 0.5 + 1e-6)
    assert scored.score.dtype == np.int64


@pytest.mark.parametrize("kind", KINDS)
def test_a_row_scores_the_same_alone_and_in_any_batch(
    packages: dict[str, ModelPackage], rows: pd.DataFrame, kind: str
) -> None:
    """What the service answers for one applicant is what the batch file says, to the bit."""
    scorer = Scorer(packages[kind])
    whole = scorer.score(rows)
    parts = [scorer.score(rows.iloc[[k]]) for k in range(0, 40)]
    parts.append(scorer.score(rows.iloc[40:133]))
    parts.append(scorer.score(rows.iloc[133:]))
    np.testing.assert_array_equal(np.concatenate([p.probability for p in parts]), whole.probability)
    np.testing.assert_array_equal(np.concatenate([p.score for p in parts]), whole.score)
    reasons = [reason for part in parts for reason in part.reasons]
    assert [[r.text for r in row] for row in reasons] == [
        [r.text for r in row] for row in whole.reasons
    ]
    if kind != "mlp":  # occlusion's points come from torch's float64 products
        assert reasons == list(whole.reasons)


@pytest.mark.parametrize("kind", ["logreg", "standardized"])
def test_logreg_reasons_in_closed_form_equal_brute_force_occlusion(
    packages: dict[str, ModelPackage], rows: pd.DataFrame, kind: str
) -> None:
    package = packages[kind]
    model = package.model
    encoded = model.encoder.transform(rows)
    weights = model.module.state_dict()["0.weight"].double().numpy().reshape(-1)
    factor = package.scoring.scaling.scaling().factor
    inputs = feature_inputs(model.encoder, package.schema)
    closed = linear_losses(encoded, weights, inputs, factor)
    np.testing.assert_allclose(closed, _brute_force_losses(package, rows), atol=1e-6)
    assert closed.max() > 10  # the random model costs points


def test_mlp_occlusion_equals_brute_force(
    packages: dict[str, ModelPackage], rows: pd.DataFrame
) -> None:
    package = packages["mlp"]
    model = package.model
    inputs = feature_inputs(model.encoder, package.schema)
    factor = package.scoring.scaling.scaling().factor
    fast = occlusion_losses(model.encoder.transform(rows), model.module, inputs, factor)
    np.testing.assert_allclose(fast, _brute_force_losses(package, rows), atol=1e-6)


@pytest.mark.parametrize("kind", ["logreg", "standardized", "mlp"])
def test_reasons_are_the_largest_losses(
    packages: dict[str, ModelPackage], rows: pd.DataFrame, kind: str
) -> None:
    package = packages[kind]
    scored = Scorer(package, top_k=3).score(rows)
    losses = _brute_force_losses(package, rows)
    features = [item.name for item in feature_inputs(package.model.encoder, package.schema)]
    descriptions = package.scoring.descriptions
    for row, reasons in enumerate(scored.reasons):
        expected = np.argsort(-losses[row], kind="stable")[:3]
        expected = [j for j in expected if losses[row, j] > 1e-9]
        assert [r.feature for r in reasons] == [features[j] for j in expected]
        np.testing.assert_allclose(
            [r.points_lost for r in reasons], losses[row, expected], atol=1e-6
        )
        for reason in reasons:
            assert reason.text.startswith(descriptions[reason.feature] + ": ")


def test_scorecard_reasons_are_reason_codes(
    packages: dict[str, ModelPackage], rows: pd.DataFrame
) -> None:
    package = packages["woe"]
    scorecard = package.scorecard
    assert scorecard is not None
    scored = Scorer(package).score(rows)
    matrix = np.column_stack([scored.bins[name] for name in scorecard.features])
    expected = reason_codes(scorecard, matrix, top_k=4, descriptions=package.scoring.descriptions)
    assert [[(r.feature, r.text, r.points_lost) for r in row] for row in scored.reasons] == [
        [(c.code, c.text, float(c.points_lost)) for c in row] for row in expected
    ]
    np.testing.assert_array_equal(scored.score, scorecard.integer_score(matrix))


def test_cutoff_and_top_k_are_checked(packages: dict[str, ModelPackage]) -> None:
    with pytest.raises(ConfigError, match=r"cutoff: must lie in \[0, 1\]; got 1.5"):
        Scorer(packages["logreg"], cutoff=1.5)
    with pytest.raises(ConfigError, match="top_k: must be an integer >= 1; got 0"):
        Scorer(packages["logreg"], top_k=0)
    scored = Scorer(packages["logreg"], cutoff=1.0, top_k=1).score(
        check_applicants(applicant_rows(0, 20), _schema(), source="r").data.frame  # type: ignore[union-attr]
    )
    assert not scored.decline.any()
    assert all(len(reasons) <= 1 for reasons in scored.reasons)


def test_applicants_need_no_target_and_ignore_it() -> None:
    raw = applicant_rows(0, 30)
    raw["default_payment_next_month"] = "not known yet"
    checked = check_applicants(raw, _schema(), source="applicants.csv")
    assert checked.report.ok
    assert checked.data is not None
    assert "default_payment_next_month" not in checked.data.frame


def test_every_violation_is_listed() -> None:
    raw = applicant_rows(0, 30).drop(columns=["PAY_0"])
    raw.loc[3, "AGE"] = "abc"
    raw.loc[5, "LIMIT_BAL"] = "-5"
    raw.loc[7, "EDUCATION"] = "9"
    raw["EXTRA"] = "1"
    report = check_applicants(raw, _schema(), source="applicants.csv").report
    found = [(v.column, v.problem.split(" '")[0], v.rows) for v in report.violations]
    assert found == [
        ("PAY_0", "missing column", (0,)),
        ("EXTRA", "unexpected column not declared in the schema", (0,)),
        ("LIMIT_BAL", "value", (6,)),
        ("AGE", "non-numeric value", (4,)),
        ("EDUCATION", "unknown category level", (8,)),
    ]


def test_chunks_give_the_whole_files_report() -> None:
    raw = applicant_rows(0, 100)
    raw.loc[[10, 60, 61, 95], "AGE"] = "abc"
    raw.loc[70, "ID"] = raw.loc[5, "ID"]  # a duplicate across chunks
    raw.loc[[20, 80], "LIMIT_BAL"] = "1e9"
    whole = check_applicants(raw, _schema(), source="a.csv").report
    tally = ApplicantTally(_schema(), source="a.csv", columns=list(raw.columns))
    for start in range(0, 100, 30):
        tally.add(raw.iloc[start : start + 30])
    assert tally.report() == whole
    assert [(v.column, v.count, v.rows) for v in whole.violations] == [
        ("ID", 1, (71,)),
        ("LIMIT_BAL", 2, (21, 81)),
        ("AGE", 4, (11, 61, 62, 96)),
    ]


def test_a_package_folder_is_needed(tmp_path: Path) -> None:
    from credit.errors import PackageRefused

    with pytest.raises(PackageRefused):
        load_package(tmp_path)
