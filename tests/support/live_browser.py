"""A served page held open in headless Chromium (Debian's package) while the test changes
what it shows, with every request, failed request and console error recorded.

The report's browser test loads a finished file (:func:`tests.support.browser.visit_page`);
the dashboards poll their server, so their tests keep the page open, change the
files it is read from and wait for the page to follow. Chromium is found as
:func:`tests.support.browser.chromium_path` finds it (``make chromium``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support.browser import chromium_path, docs_screenshot

if TYPE_CHECKING:
    from playwright.sync_api import Page

__all__ = ["PageRecord", "live_page", "save_screenshot"]

SCREENSHOTS_ENV = "FEDCREDIT_DASHBOARD_SCREENSHOTS"
"""A folder (``docs``): the browser test of a real ``simulate --dashboard`` run saves the
dashboards' screenshots there (``make dashboard-screenshots``)."""


@dataclass
class PageRecord:
    """What the page did so far: every request, every failure, every console error."""

    requests: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@contextlib.contextmanager
def live_page(
    url: str, *, width: int = 1280, height: int = 900
) -> Iterator[tuple[Page, PageRecord]]:
    """Open ``url`` in headless Chromium and keep it open for the ``with`` block."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: pip install -e '.[dev]'")
    record = PageRecord()
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(chromium_path()), headless=True)
        try:
            tab = browser.new_page(viewport={"width": width, "height": height})
            tab.on("request", lambda request: record.requests.append(request.url))
            tab.on("requestfailed", lambda r: record.failed.append(f"{r.url}: {r.failure}"))
            tab.on("console", lambda m: record.errors.append(m.text) if m.type == "error" else None)
            tab.on("pageerror", lambda error: record.errors.append(str(error)))
            tab.goto(url, wait_until="load")
            yield tab, record
        finally:
            browser.close()


def save_screenshot(tab: Page, name: str, *, height: int = 1500) -> Path | None:
    """With ``$FEDCREDIT_DASHBOARD_SCREENSHOTS`` set, save the page's top ``height`` pixels
    there as ``name``."""
    import os

    folder = os.environ.get(SCREENSHOTS_ENV)
    if not folder:
        return None
    screenshot = tab.screenshot(full_page=True, type="png")
    return docs_screenshot(screenshot, Path(folder) / name, height=height)
