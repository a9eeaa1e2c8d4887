"""Opening detente's pages (report.html, ``detente serve``) in a real browser: Debian's ``chromium``
driven by ``playwright``.

Never ``playwright install``: we drive the system browser (``apt-get install
chromium``) through ``executable_path``. Without it, or without the
``playwright`` package (the ``dev`` extra), browser tests skip locally and fail
when ``CI`` is set.
"""

import importlib.util
import os
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


def loaded(image) -> bool:
    """True when the <img> element has finished loading a picture."""
    return image.evaluate("img => img.complete && img.naturalWidth > 0")


def browser_or_skip():
    """Playwright's ``sync_playwright``; skip if Chromium or playwright is missing, fail under CI."""
    missing = []
    if not CHROMIUM.exists():
        missing.append(f"{CHROMIUM} (apt-get install chromium)")
    if importlib.util.find_spec("playwright") is None:
        missing.append("the playwright package (pip install -e '.[dev]')")
    if missing:
        reason = "the browser checks need " + " and ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI is set, so it must run", pytrace=False)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    return sync_playwright
