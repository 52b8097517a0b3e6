"""The drift monitor: PSI/CSI as ``fedcredit monitor`` computes them, one warning per crossing."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from credit.governance.stability_release import SCORE, StabilityLayout, compare_populations
from credit.package import ModelPackage, load_package
from credit.scoring import Scorer
from serving.drift import DriftBaseline, DriftMonitor, drift_baseline, sample_counts
from tests.serving.conftest import typed_rows
from tests.support.packages import build_test_package, resign_with_noisy_development

LAYOUT = StabilityLayout(
    characteristics=(("income", ("low", "mid", "high")), ("region", ("north", "south"))),
    score_bins=4,
)
SHARES = {"income": [0.5, 0.3, 0.2], "region": [0.6, 0.4]}


def draw(rng: np.random.Generator, n: int, shares: dict[str, list[float]]) -> dict[str, np.ndarray]:
    return {name: rng.choice(len(p), size=n, p=p).astype(np.int64) for name, p in shares.items()}


@pytest.fixture
def baseline() -> DriftBaseline:
    rng = np.random.default_rng(0)
    bins = draw(rng, 20_000, SHARES)
    return DriftBaseline(LAYOUT, sample_counts(bins, rng.uniform(0, 0.5, 20_000), LAYOUT))


def test_sample_counts_bin_rows_and_scores() -> None:
    bins = {"income": np.array([0, 2, 2]), "region": np.array([1, 1, 0])}
    counts = sample_counts(bins, np.array([0.1, 0.3, 1.0]), LAYOUT)
    assert counts.populations["income"].counts.tolist() == [1, 0, 2]
    assert counts.populations["region"].counts.tolist() == [1, 2]
    assert counts.populations[SCORE].counts.tolist() == [1, 1, 0, 1]


def test_development_like_applicants_raise_no_alert(
    baseline: DriftBaseline, caplog: pytest.LogCaptureFixture
) -> None:
    monitor = DriftMonitor(baseline, every=10, min_rows=100)
    rng = np.random.default_rng(1)
    for _ in range(50):
        monitor.add(draw(rng, 20, SHARES), rng.uniform(0, 0.5, 20))
    with caplog.at_level(logging.INFO, logger="fedcredit.serve.drift"):
        status = monitor.check()
    assert status is not None and status.rows == 1_000
    assert not any(status.drift.values())
    assert caplog.records == []


def test_shifted_applicants_raise_one_warning_per_crossing(
    baseline: DriftBaseline, caplog: pytest.LogCaptureFixture
) -> None:
    monitor = DriftMonitor(baseline, every=5, min_rows=100)
    rng = np.random.default_rng(2)
    shifted = {"income": [0.1, 0.2, 0.7], "region": [0.6, 0.4]}
    due = [monitor.add(draw(rng, 40, shifted), rng.uniform(0, 0.5, 40)) for _ in range(10)]
    assert due == [False, False, False, False, True] * 2
    with caplog.at_level(logging.INFO, logger="fedcredit.serve.drift"):
        status = monitor.check()
        monitor.check()  # still flagged: no second warning
    assert status is not None
    assert status.drift == {"income": True, "region": False, SCORE: False}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and warnings[0].startswith("drift: income CSI ")
    assert "400 applicants scored" in warnings[0]


def test_the_comparison_is_fedcredit_monitors(baseline: DriftBaseline) -> None:
    monitor = DriftMonitor(baseline, every=1, min_rows=1)
    rng = np.random.default_rng(3)
    bins = draw(rng, 500, {"income": [0.3, 0.3, 0.4], "region": [0.5, 0.5]})
    scores = rng.uniform(0, 1, 500)
    monitor.add(bins, scores)
    status = monitor.check()
    expected = compare_populations(baseline.counts, sample_counts(bins, scores, LAYOUT))
    assert status is not None
    assert status.psi == {name: result.psi for name, result in expected.results.items()}
    assert status.drift == {name: result.drift for name, result in expected.results.items()}


def test_no_comparison_before_min_rows(baseline: DriftBaseline) -> None:
    monitor = DriftMonitor(baseline, every=1, min_rows=50)
    monitor.add({"income": np.array([0]), "region": np.array([1])}, np.array([0.2]))
    assert monitor.check() is None and monitor.status is None


@pytest.mark.parametrize(
    ("keyword", "value", "message"),
    [("every", 0, "every must be >= 1"), ("min_rows", 0, "min_rows must be >= 1"),
     ("quantile", 1.0, r"quantile must lie in \(0, 1\)")],
)  # fmt: skip
def test_bad_settings_are_refused(
    baseline: DriftBaseline, keyword: str, value: float, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        DriftMonitor(baseline, **{keyword: value})  # type: ignore[arg-type]


def test_the_comparison_allows_for_the_development_counts_noise(baseline: DriftBaseline) -> None:
    noise = {name: np.full(size, 500.0**2) for name, size in LAYOUT.n_bins.items()}
    noisy = DriftBaseline(LAYOUT, baseline.counts, noise)
    monitor = DriftMonitor(noisy, every=1, min_rows=1)
    rng = np.random.default_rng(4)
    bins = draw(rng, 500, {"income": [0.3, 0.3, 0.4], "region": [0.5, 0.5]})
    scores = rng.uniform(0, 1, 500)
    monitor.add(bins, scores)
    status = monitor.check()
    later = sample_counts(bins, scores, LAYOUT)
    expected = compare_populations(baseline.counts, later, expected_noise=noise)
    exact = compare_populations(baseline.counts, later)
    assert status is not None
    assert status.drift == {name: result.drift for name, result in expected.results.items()}
    assert status.psi == {name: result.psi for name, result in exact.results.items()}
    assert status.psi["income"] >= 0.1 and status.psi[SCORE] >= 0.1 > status.psi["region"]
    for name in ("income", SCORE):  # PSI >= 0.1: the noise is simulated, as monitor --run
        assert status.comparison.results[name] == expected.results[name], name
        assert expected.results[name].critical_value > exact.results[name].critical_value, name
    # below 0.1 no critical value can flag: the simulation is skipped
    assert status.comparison.results["region"] == exact.results["region"]


@pytest.fixture(scope="module")
def noisy_package(tmp_path_factory: pytest.TempPathFactory) -> ModelPackage:
    """The test package as a DP run writes it: each development count one noise standard
    deviation off its exact value (a typical draw's size), its variance stored."""
    home = tmp_path_factory.mktemp("noisy")
    directory = build_test_package(home, "logreg")
    return load_package(resign_with_noisy_development(directory, home, noise_multiplier=1.0))


def _drifted(baseline: DriftBaseline, package: ModelPackage, rows: pd.DataFrame) -> list[str]:
    scored = Scorer(package).score(rows)
    monitor = DriftMonitor(baseline, every=1, min_rows=len(rows))
    monitor.add(scored.bins, scored.probability)
    status = monitor.check()
    assert status is not None and status.rows == len(rows)
    return [name for name, drift in status.drift.items() if drift]


def test_noisy_development_counts_flag_no_drift_on_development_rows(
    noisy_package: ModelPackage, caplog: pytest.LogCaptureFixture
) -> None:
    noisy = drift_baseline(noisy_package)
    assert noisy is not None and noisy.noise is not None
    exact = DriftBaseline(noisy.layout, noisy.counts)  # the same counts taken as exact
    development = typed_rows(noisy_package, 0, 400)  # the rows the counts were released from

    with caplog.at_level(logging.WARNING, logger="fedcredit.serve.drift"):
        assert _drifted(noisy, noisy_package, development) == []
    assert caplog.records == []
    scored = Scorer(noisy_package).score(development)
    full = noisy.compare(sample_counts(scored.bins, scored.probability, noisy.layout))
    assert full.drifted() == [] and min(r.psi for r in full.results.values()) < 0.1
    assert _drifted(exact, noisy_package, development) == [
        "PAY_AMT6", "PAY_0", "PAY_2", "PAY_3", "PAY_4", "PAY_5", "PAY_6",
    ]  # fmt: skip


def test_noisy_development_counts_still_flag_a_real_shift(noisy_package: ModelPackage) -> None:
    noisy = drift_baseline(noisy_package)
    assert noisy is not None
    shifted = typed_rows(noisy_package, 0, 400)
    shifted["PAY_0"] = 8

    assert _drifted(noisy, noisy_package, shifted) == ["PAY_0"]
