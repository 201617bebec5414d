"""A real headless Chromium for tests that check what a person would see.

Driven by Playwright's Python package (``playwright`` on PyPI, which ships its own node driver)
against the system Chromium from Debian (``apt-get install -y chromium``): Playwright's own
browser download (``playwright install``) needs a CDN this project's machines cannot reach.
Missing pieces fail the test with the command that installs them: a report that renders is a
requirement, so this check is never skipped.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

#: every flag keeps the browser off the network and away from any profile but a fresh one
CHROMIUM_FLAGS = ("--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage")
CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def chromium_path() -> str:
    """$GANKD_CHROMIUM, else the first Chromium on PATH; fails the test (never skips) without one."""
    env = os.environ.get("GANKD_CHROMIUM")
    if env:
        if not Path(env).is_file():
            pytest.fail(f"GANKD_CHROMIUM={env} does not exist", pytrace=False)
        return env
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    pytest.fail("no Chromium found for the browser test of the report. Install it with `make browser` "
                "(runs `apt-get install -y chromium`), or point GANKD_CHROMIUM at a Chromium binary.",
                pytrace=False)


def _sync_playwright() -> Any:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the browser test needs the `playwright` Python package (its driver only; the browser "
                    "is the system Chromium): `pip install playwright==1.65.2`. Do not run "
                    "`playwright install`.", pytrace=False)
    return sync_playwright


@dataclass
class Page:
    """An open page and everything it reported: console errors and uncaught exceptions."""

    page: Any
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)


@contextmanager
def open_page(url: str, width: int = 1400, height: int = 900) -> Iterator[Page]:
    """Load ``url`` in a fresh headless Chromium (fresh profile, no network) and yield the page."""
    exe = chromium_path()
    sync_playwright = _sync_playwright()
    with tempfile.TemporaryDirectory(prefix="gankd-chromium-") as profile, sync_playwright() as pw:
        # a persistent context is the way to hand Chromium a user-data-dir of our own
        ctx = pw.chromium.launch_persistent_context(
            profile, executable_path=exe, headless=True, args=list(CHROMIUM_FLAGS),
            viewport={"width": width, "height": height}, offline=True)
        try:
            page = ctx.new_page()
            seen = Page(page)
            page.on("console", lambda m: seen.console_errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: seen.page_errors.append(str(e)))
            page.on("requestfailed", lambda r: seen.failed_requests.append(r.url))
            page.goto(url, wait_until="load")
            yield seen
        finally:
            ctx.close()
