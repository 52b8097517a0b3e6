"""An experiment's report.html in a real browser: headless Chromium, Debian's package.

The experiment folder is made by the real runner and results writer with the fake
run function (12 runs: two partitions, three budgets, two seeds), then reported on;
the page is loaded from disk: it must make no request but its own file, log no
error, show each plot decoded at full size with its lines drawn, and the runs' table.
Without Chromium the test fails, saying how to install it (``make chromium``).
"""

from __future__ import annotations

import io

import numpy as np
import pytest

from cli.experiment import simulate_options
from simulations.experiments import load_grid, run_grid, write_results
from simulations.experiments.report import write_report
from tests.support.browser import BrowserVisit, visit_page

from .fakes import FakeRuns

pytestmark = pytest.mark.browser

GRID = '[fixed]\nrounds = 1\n[vary]\nseed = [0, 1]\npartition = ["iid", "dirichlet"]\nepsilon = [0.5, 1, "none"]\n'  # noqa: E501
FIRST_LINE = (0x1F, 0x77, 0xB4)  # matplotlib's first cycle colour: the first line's error bars


@pytest.fixture(scope="module")
def visit(tmp_path_factory: pytest.TempPathFactory) -> BrowserVisit:
    folder = tmp_path_factory.mktemp("experiment")
    (folder / "grid.toml").write_text(GRID, encoding="utf-8")
    grid = load_grid(folder / "grid.toml", simulate_options())
    out = folder / "out"
    assert run_grid(grid.runs, out, FakeRuns(), jobs=2) == []
    write_results(grid, out)
    files = write_report(out)
    assert [path.name for path in files.plots] == ["auc-vs-epsilon.png"]
    return visit_page(files.page)


def test_the_page_loads_with_no_error_and_no_request_but_its_own(visit: BrowserVisit) -> None:
    assert visit.console_errors == []
    assert visit.failed_requests == []
    assert [url for url in visit.requests if not url.startswith("data:")] == [visit.url]


def test_the_plot_is_decoded_shown_and_drawn(visit: BrowserVisit) -> None:
    from PIL import Image

    (image,) = visit.images
    assert image.alt == "AUC against epsilon"
    assert image.complete and (image.natural_width, image.natural_height) == (770, 495)
    assert image.width > 400 and image.height > 250
    with Image.open(io.BytesIO(visit.screenshot)) as screenshot:
        pixels = np.asarray(screenshot.convert("RGB"), dtype=np.int16)
    top, left = round(image.y), round(image.x)
    box = pixels[top : top + round(image.height), left : left + round(image.width)]
    assert box.std() > 20, "blank plot"
    assert (np.abs(box - np.array(FIRST_LINE)).sum(axis=2) < 60).sum() > 100, "no line drawn"
    below = pixels[top + round(image.height) :]
    assert len(np.unique(below.reshape(-1, 3), axis=0)) > 10  # the runs' table under it
    assert below.shape[0] > 12 * 20  # twelve rows of the table
