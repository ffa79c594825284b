"""Browser tests: Playwright for Python driving Debian's chromium (never a downloaded
browser) against pytest-django's live server, on the test database.

Skipped, with the reason, where /usr/bin/chromium is missing or cannot start.
Screenshots of every page a test visits go to tests/artifacts/ (git-ignored).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

# Playwright's sync API keeps an event loop running in the test's thread, and Django
# refuses ORM calls from a thread with a running loop (SynchronousOnlyOperation). The
# tests' own ORM calls are plain synchronous code, so the guard does not apply here.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM = "/usr/bin/chromium"
# PITFALLS.md 12: chromium runs as root here, with no GPU and no network of its own.
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
PASSWORD = "pw-browser-123"


@pytest.fixture(scope="session")
def chromium():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium); browser tests skipped")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright package is not installed; browser tests skipped")
    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
    except Exception as error:
        playwright.stop()
        pytest.skip(f"Chromium at {CHROMIUM} could not be launched: {error}")
    yield browser
    browser.close()
    playwright.stop()


@pytest.fixture
def site(live_server, settings, transactional_db) -> str:
    """The live server's URL; event and survey links point at it, mail goes to the outbox."""
    settings.PUBLIC_BASE_URL = live_server.url
    settings.EMAIL_BACKEND = "distributions.backends.OutboxEmailBackend"
    return live_server.url


@pytest.fixture
def page(chromium, site):
    context = chromium.new_context(
        base_url=site, accept_downloads=True, viewport={"width": 1360, "height": 900}
    )
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=site)
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    context.close()


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{re.sub(r'[^a-z0-9_-]+', '-', name.lower())}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def log_in(page, username: str, password: str = PASSWORD) -> None:
    """Through the admin's login page, as a person does."""
    page.goto("/admin/login/?next=/workflows/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_url("**/workflows/")
