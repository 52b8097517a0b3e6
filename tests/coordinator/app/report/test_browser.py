"""A real run's report.html in a real browser: headless Chromium, Debian's package.

The run goes through Flower's Simulation Engine (3 banks x 3 rounds, secure
aggregation on, as ``make demo`` runs but smaller), and the page it wrote is loaded
from disk: it must make no request but its own file, log no error, and show every
chart. A boosting run's page (a small in-process run: its trees and feature
importance) is loaded the same way. With ``FEDCREDIT_REPORT_SCREENSHOT=PATH`` the test
also saves the top of the SGD run's page there (``make report-screenshot`` refreshes
``docs/report.png`` this way).
Without Chromium the test fails, saying how to install it (``make chromium``).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest

from credit.run_config import RunConfig
from simulations.engine import plan_simulation, run_simulated_consortium
from tests.support.boosting import small_private_run
from tests.support.browser import BrowserVisit, docs_screenshot, visit_page

pytestmark = [pytest.mark.slow, pytest.mark.browser]

SCREENSHOT_ENV = "FEDCREDIT_REPORT_SCREENSHOT"
# Chart colours the report draws with (coordinator.app.report.figures).
DEFAULTER_RED = (0xC0, 0x39, 0x2B)
ROUNDS_BLUE = (0x1F, 0x77, 0xB4)  # matplotlib's first cycle colour: the AUC line
NON_DEFAULTER_BLUE = (0x24, 0x71, 0xA3)  # the information value's bars
BAR_ALPHA = 0.55  # the distribution's bars, over white


def _over_white(colour: tuple[int, int, int], alpha: float) -> tuple[int, ...]:
    return tuple(round(255 - alpha * (255 - channel)) for channel in colour)


CHARTS = {
    "ROC curve": DEFAULTER_RED,
    "KS curves": DEFAULTER_RED,
    "Score distribution by outcome": _over_white(DEFAULTER_RED, BAR_ALPHA),
    "AUC and KS per round": ROUNDS_BLUE,
    "Reliability diagram": DEFAULTER_RED,  # every run reports its last model's calibration
    # and, with federated feature statistics (the default), every input's WoE/IV
    "Information value per feature": NON_DEFAULTER_BLUE,
}


def _blues(at: float) -> tuple[int, ...]:
    from matplotlib import colormaps

    return tuple(round(255 * channel) for channel in colormaps["Blues"](at)[:3])


BOOSTING_CHARTS = {
    "ROC curve": DEFAULTER_RED,
    "KS curves": DEFAULTER_RED,
    "Score distribution by outcome": _over_white(DEFAULTER_RED, BAR_ALPHA),
    "Seconds per tree": _blues(0.9),  # the deepest level's share of each bar
    "Feature importance by total gain": NON_DEFAULTER_BLUE,
}


@pytest.fixture(scope="module")
def visit(tmp_path_factory: pytest.TempPathFactory) -> BrowserVisit:
    """Run 3 banks x 3 rounds, then load the run's report.html in Chromium."""
    out = tmp_path_factory.mktemp("demo", numbered=False)  # the report is titled "demo"
    config = RunConfig(rounds=3, out_dir=str(out), seed=0)
    files = run_simulated_consortium(
        plan_simulation(config, n_banks=3), on_round=lambda r, t: None, on_event=lambda e: None
    )
    assert files.report == out / "report.html"
    return visit_page(files.report)


@pytest.fixture(scope="module")
def boosted_visit(tmp_path_factory: pytest.TempPathFactory) -> BrowserVisit:
    """A small boosting run in this process, then its report.html in Chromium."""
    files = small_private_run(tmp_path_factory.mktemp("boosted"))
    return visit_page(files.report)


def _pixels(screenshot: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(screenshot)) as image:
        return np.asarray(image.convert("RGB"), dtype=np.int16)


Charts = dict[str, tuple[int, ...]]


@pytest.fixture(params=["sgd", "gbdt"])
def either(request: pytest.FixtureRequest) -> tuple[BrowserVisit, Charts]:
    """Each run's visit and the charts its page must show (alt -> drawing colour)."""
    if request.param == "sgd":
        return request.getfixturevalue("visit"), CHARTS
    return request.getfixturevalue("boosted_visit"), BOOSTING_CHARTS


def test_the_report_loads_with_no_error_and_no_request_but_its_own(
    either: tuple[BrowserVisit, Charts],
) -> None:
    visit, _ = either
    assert visit.console_errors == []
    assert visit.failed_requests == []
    assert [url for url in visit.requests if not url.startswith("data:")] == [visit.url]


def test_every_chart_is_decoded_and_shown(either: tuple[BrowserVisit, Charts]) -> None:
    visit, charts = either
    shown = {image.alt: image for image in visit.images}
    assert set(shown) == set(charts)
    for image in visit.images:
        assert image.complete and image.natural_width > 300 and image.natural_height > 200
        assert image.width > 300 and image.height > 200, image


def test_the_screenshot_shows_the_charts(either: tuple[BrowserVisit, Charts]) -> None:
    """Not blank, and each chart's box holds its drawing (lines in the report's colours)."""
    visit, charts = either
    pixels = _pixels(visit.screenshot)
    height, width, _ = pixels.shape
    assert width == 1280 and height > 1500
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 200
    for image in visit.images:
        top, left = round(image.y), round(image.x)
        box = pixels[top : top + round(image.height), left : left + round(image.width)]
        assert box.shape[0] > 200 and box.shape[1] > 300, image.alt
        assert box.std() > 20, f"{image.alt}: blank"
        colour = np.array(charts[image.alt])
        drawn = np.abs(box - colour).sum(axis=2) < 60
        assert drawn.sum() > 100, f"{image.alt}: no line in its colour"
    target = os.environ.get(SCREENSHOT_ENV) if charts is CHARTS else None  # the SGD run's
    if target:
        saved = docs_screenshot(visit.screenshot, Path(target))
        assert saved.stat().st_size < 400_000
