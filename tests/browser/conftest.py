"""Playwright driving Debian's Chromium against pytest-django's live server.

Chromium comes from apt (`make test` installs it when it can); Playwright's own browser
downloads are never used. Without /usr/bin/chromium every browser test is skipped with the
reason. Screenshots go to test-artifacts/ (git-ignored).
"""

import datetime as dt
import os
import time
from decimal import Decimal
from pathlib import Path

import pytest
from django.utils import timezone

from recommendations.models import Event
from recommendations.serving.catalog import index_products
from recommendations.serving.statistics import refresh_statistics
from shop.models import Category, Product, Store

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
    # Chromium reports what the Content-Security-Policy blocked as console errors.
    blocked = []
    tab.on(
        "console",
        lambda message: "Content Security Policy" in message.text and blocked.append(message.text),
    )
    yield tab
    context.close()
    assert not blocked, "the Content-Security-Policy blocked:\n" + "\n".join(blocked)


@pytest.fixture
def admin_page(page, django_user_model):
    """`page`, signed in to the admin as a superuser."""
    django_user_model.objects.create_superuser("admin", "admin@example.com", "admin-password")
    page.goto("/admin/login/?next=/admin/")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill("admin-password")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/admin/")
    return page


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def wait_for(condition, timeout=10.0, what="the condition"):
    """Poll the database until the beacon's events have landed (it batches for up to 2 s)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"Timed out after {timeout}s waiting for {what}")


@pytest.fixture
def shop(django_user_model):
    """Mugs, teas and knives from three stores; past shoppers made mugs the best sellers and
    bought teas together with teas. Returns the products by kind."""
    kitchen = Category.objects.create(name="Kitchen", slug="kitchen")
    groups = {
        "mug": Category.objects.create(name="Mugs", slug="mugs", parent=kitchen),
        "tea": Category.objects.create(name="Tea", slug="tea", parent=kitchen),
        "knife": Category.objects.create(name="Knives", slug="knives", parent=kitchen),
    }
    stores = {
        "mug": Store.objects.create(
            name="Clay & Co", slug="clay-co", rating=Decimal("4.7"), description="Studio pottery."
        ),
        "tea": Store.objects.create(
            name="Leaf House", slug="leaf-house", rating=Decimal("4.5"), description="Loose tea."
        ),
        "knife": Store.objects.create(name="Steel Works", slug="steel-works", rating=Decimal("4.2")),
    }
    names = {
        "mug": [
            "Speckled stoneware mug",
            "Glazed espresso cup",
            "Tall latte mug",
            "Enamel camp mug",
            "Porcelain tea cup",
            "Hand thrown tumbler",
        ],
        "tea": [
            "Assam breakfast tea",
            "Darjeeling first flush",
            "Jasmine green tea",
            "Earl Grey loose leaf",
            "Sencha green tea",
            "Chamomile herbal tea",
        ],
        "knife": [
            "Chef knife 20 cm",
            "Paring knife",
            "Bread knife",
            "Santoku knife",
            "Utility knife",
            "Carving knife",
        ],
    }
    products = {
        kind: [
            Product.objects.create(
                title=title,
                slug=f"{kind}-{i}",
                description=f"A {title.lower()} for every day.",
                category=groups[kind],
                store=stores[kind],
                price=Decimal(8 + 3 * i),
                stock=20,
            )
            for i, title in enumerate(titles)
        ]
        for kind, titles in names.items()
    }
    past = timezone.now() - dt.timedelta(days=2)
    for n in range(6):
        buyer = django_user_model.objects.create_user(f"past{n}")
        # Everyone bought mugs (the best sellers); pairs of teas were bought together.
        for mug in products["mug"][:4]:
            Event.objects.create(
                event_type="purchase", user=buyer, product_id=str(mug.pk), value=1, timestamp=past
            )
        for tea in (products["tea"][n % 3], products["tea"][3 + n % 3]):
            Event.objects.create(
                event_type="purchase", user=buyer, product_id=str(tea.pk), value=1, timestamp=past
            )
    index_products()
    refresh_statistics()
    return products
