"""Playwright driving Debian's Chromium against pytest-django's live server.

Chromium comes from apt (`make test` installs it when it can); Playwright's own browser
downloads are never used. Without /usr/bin/chromium every browser test is skipped with the
reason. Screenshots go to test-artifacts/ (git-ignored).
"""

import os
from pathlib import Path

import pytest

# Serving caches lists in this process, which the live server shares: start each test afresh.
from tests.storefront.conftest import fresh_caches  # noqa: F401

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
# A desktop browser's user agent: the default one says "HeadlessChrome", which training treats as a bot.
USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0 Safari/537.36"
)
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(
            f"Chromium is not installed at {CHROMIUM}: run `apt-get install -y chromium` "
            "(make test does it when apt-get is usable as root)."
        )
    # Playwright's sync API runs an event loop in this thread, so Django's ORM calls made by
    # the test itself would be refused as "async-unsafe" without this.
    # It is restored afterwards so later tests' subprocesses don't inherit it.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            yield chromium
            chromium.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(
        base_url=live_server.url, viewport={"width": 1366, "height": 900}, user_agent=USER_AGENT
    )
    context.set_default_timeout(15_000)
    tab = context.new_page()
    yield tab
    context.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
