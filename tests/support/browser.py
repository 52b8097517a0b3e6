"""Open a local page in headless Chromium (Debian's package) and record what happened.

Playwright drives the system's Chromium (``executable_path``): it downloads no
browser. The browser is found at ``$FEDCREDIT_CHROMIUM``, else ``chromium`` on the
``PATH``, else ``/usr/bin/chromium``; without it (or without playwright) the caller
fails, saying how to install it (``make chromium``), so the full tier never skips the
browser test silently.
"""

from __future__ import annotations

import io
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

__all__ = ["BrowserVisit", "ImageState", "chromium_path", "docs_screenshot", "visit_page"]

CHROMIUM_ENV = "FEDCREDIT_CHROMIUM"
DEBIAN_CHROMIUM = Path("/usr/bin/chromium")
_INSTALL = (
    "run `make chromium` as root (Debian's chromium package: apt-get install -y "
    f"--no-install-recommends chromium), or set {CHROMIUM_ENV} to a Chromium binary"
)


@dataclass(frozen=True)
class ImageState:
    """One ``<img>`` after the page loaded: decoded size and place on the page (CSS px)."""

    alt: str
    complete: bool
    natural_width: int
    natural_height: int
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class BrowserVisit:
    """What loading a page did.

    Attributes
    ----------
    url : str
        The page's ``file://`` address.
    requests : list of str
        Every request the page made (the page itself included; data URIs too, if the
        browser reports them as requests).
    failed_requests : list of str
        ``"<url>: <error>"`` per request that failed.
    console_errors : list of str
        Console messages of type ``error`` and uncaught page errors.
    images : list of ImageState
        Every ``<img>``, in document order.
    screenshot : bytes
        A PNG of the whole page.
    """

    url: str
    requests: list[str]
    failed_requests: list[str]
    console_errors: list[str]
    images: list[ImageState]
    screenshot: bytes


def chromium_path() -> Path:
    """The Chromium binary to drive; fails the test when there is none."""
    configured = os.environ.get(CHROMIUM_ENV)
    found = configured or shutil.which("chromium") or str(DEBIAN_CHROMIUM)
    if not Path(found).is_file():
        pytest.fail(f"no Chromium at {found}: {_INSTALL}", pytrace=False)
    return Path(found)


_IMAGES = """() => Array.from(document.images).map(img => {
    const box = img.getBoundingClientRect();
    return {alt: img.alt, complete: img.complete, natural_width: img.naturalWidth,
            natural_height: img.naturalHeight, x: box.x + window.scrollX,
            y: box.y + window.scrollY, width: box.width, height: box.height};
})"""


def visit_page(page: Path, *, width: int = 1280, height: int = 900) -> BrowserVisit:
    """Load ``page`` in headless Chromium at a ``width`` x ``height`` viewport.

    Waits for the load event (every image loaded) and takes a full-page screenshot.
    """
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(f"playwright is not installed: pip install -e '.[dev]'; {_INSTALL}")
    executable = chromium_path()
    url = page.resolve().as_uri()
    requests: list[str] = []
    failed: list[str] = []
    errors: list[str] = []
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(executable), headless=True)
        try:
            tab = browser.new_page(viewport={"width": width, "height": height})
            tab.on("request", lambda request: requests.append(request.url))
            tab.on("requestfailed", lambda r: failed.append(f"{r.url}: {r.failure}"))
            tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            tab.on("pageerror", lambda error: errors.append(str(error)))
            tab.goto(url, wait_until="load")
            images: list[dict[str, Any]] = tab.evaluate(_IMAGES)
            screenshot = tab.screenshot(full_page=True, type="png")
        finally:
            browser.close()
    return BrowserVisit(
        url=url,
        requests=requests,
        failed_requests=failed,
        console_errors=errors,
        images=[ImageState(**image) for image in images],
        screenshot=screenshot,
    )


def docs_screenshot(screenshot: bytes, target: Path, *, height: int = 1500) -> Path:
    """Save the top ``height`` pixels of a page screenshot as a small palette PNG.

    For the README (``docs/report.png``): the header, final metrics and the charts.
    """
    from PIL import Image

    with Image.open(io.BytesIO(screenshot)) as image:
        top = image.convert("RGB").crop((0, 0, image.width, min(height, image.height)))
        top.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(target, optimize=True)
    return target
