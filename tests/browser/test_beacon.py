"""The beacon in a real Chromium: what it sends when the shopper's clock is wrong."""

import datetime as dt

import pytest
from django.utils import timezone

from recommendations.models import Event
from tests.browser.conftest import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# The page's clock moved by SHIFT milliseconds, as on a device whose time is set wrong.
SHIFTED_CLOCK = """(() => {
  const Real = Date, shift = SHIFT;
  window.Date = class extends Real {
    constructor(...args) { super(...(args.length ? args : [Real.now() + shift])); }
    static now() { return Real.now() + shift; }
  };
})();"""


@pytest.mark.parametrize("shift", [dt.timedelta(minutes=10), -dt.timedelta(days=400)], ids=["fast", "slow"])
def test_events_are_timed_by_the_servers_clock_when_the_shoppers_is_wrong(page, shop, shift):
    page.add_init_script(SHIFTED_CLOCK.replace("SHIFT", str(int(shift.total_seconds() * 1000))))
    product = shop["tea"][0]
    page.goto(product.get_absolute_url())
    view = wait_for(
        lambda: Event.objects.filter(event_type="view", product_id=str(product.pk)).first(),
        what="the view sent with a wrong clock",
    )
    assert abs(view.timestamp - timezone.now()) < dt.timedelta(minutes=1)
