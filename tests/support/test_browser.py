"""The browser test's Chromium lookup fails loudly instead of skipping."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.browser import CHROMIUM_ENV, chromium_path


def test_a_missing_chromium_fails_the_test_saying_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "no-chromium"
    monkeypatch.setenv(CHROMIUM_ENV, str(missing))
    with pytest.raises(
        pytest.fail.Exception, match=rf"no Chromium at {missing}: run `make chromium`"
    ):
        chromium_path()


def test_the_configured_chromium_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    binary = tmp_path / "chromium"
    binary.write_text("")
    monkeypatch.setenv(CHROMIUM_ENV, str(binary))
    assert chromium_path() == binary
