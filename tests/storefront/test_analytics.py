"""The dashboard's figures on a hand-computed scenario, and the page that shows them."""

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from recommendations import analytics
from recommendations.models import ServedRecommendation
from tests.storefront.conftest import event


@pytest.fixture
def scenario(catalogue, shopper):
    p = catalogue
    ServedRecommendation.objects.create(
        id="s1", kind="for_you", source="two_tower", product_ids=[str(p[0].pk), str(p[2].pk)]
    )
    ServedRecommendation.objects.create(
        id="s2", kind="trending", source="popular", product_ids=[str(p[1].pk)]
    )
    for _ in range(4):
        event("impression", recommendation_id="s1")
    for _ in range(2):
        event("impression", recommendation_id="s2")
    event("impression", recommendation_id="expired-list")
    event("impression", recommendation_id="s1", days_ago=40)  # outside every window
    event("click", product=p[0], recommendation_id="s1", user=shopper)
    event("click", product=p[0], recommendation_id="s1", days_ago=1)
    event("click", product=p[1], recommendation_id="s2")
    event("add_to_cart", product=p[0], recommendation_id="s1", value=1)
    event("purchase", product=p[0], recommendation_id="s1", value=2, revenue=Decimal("24.00"), user=shopper)
    event("purchase", product=p[3], value=1, revenue=Decimal("15.00"), days_ago=1)
    for _ in range(3):
        event("view", product=p[0], days_ago=1)
    event("view", product=p[1])
    return p


def test_block_funnels_join_events_to_the_served_list(scenario):
    funnels = {f.block: f for f in analytics.block_funnels(analytics.window_start(30))}
    assert set(funnels) == {"for_you", "trending", analytics.EXPIRED_BLOCK}
    for_you = funnels["for_you"]
    assert (for_you.impressions, for_you.clicks, for_you.add_to_carts, for_you.purchases) == (4, 2, 1, 1)
    assert for_you.ctr == 0.5 and for_you.conversion == 0.5
    assert for_you.revenue == Decimal("24.00")
    trending = funnels["trending"]
    assert (trending.impressions, trending.clicks, trending.purchases, trending.conversion) == (2, 1, 0, 0.0)
    assert funnels[analytics.EXPIRED_BLOCK].clicks == 0 and funnels[analytics.EXPIRED_BLOCK].ctr == 0.0
    # Most shown first.
    assert next(f.block for f in analytics.block_funnels(analytics.window_start(30))) == "for_you"


def test_events_per_day_counts_each_type_per_calendar_day(scenario):
    daily = analytics.events_per_day(analytics.window_start(7), 7)
    assert len(daily.days) == 7
    assert daily.counts["view"][-2:] == [3, 1]
    assert daily.counts["impression"][-1] == 7
    assert daily.counts["purchase"][-2:] == [1, 1]
    # The 40-day-old impression is outside; every stored event of the window is counted once.
    assert daily.total == 17


def test_coverage_and_top_products(scenario):
    since = analytics.window_start(30)
    coverage = analytics.catalogue_coverage(since)
    assert coverage.catalogue == 7  # the out-of-stock product is not recommendable
    assert (coverage.recommended, coverage.clicked, coverage.purchased, coverage.with_vector) == (3, 2, 2, 0)
    assert coverage.share(coverage.recommended) == pytest.approx(3 / 7)
    top = analytics.top_products(since)
    assert [t.title for t in top] == [scenario[0].title, scenario[3].title, scenario[1].title]
    assert (top[0].views, top[0].purchases, top[0].revenue) == (3, 1, Decimal("24.00"))


def test_top_products_read_their_titles_in_one_query(scenario):
    """Each product's whole record read its category too: one more query a product."""
    with CaptureQueriesContext(connection) as queries:
        top = analytics.top_products(analytics.window_start(30))
    assert len(top) == 3 and len(queries) == 2  # the events' figures, the products' titles


def test_window_must_hold_a_day():
    with pytest.raises(ValueError, match="at least one day"):
        analytics.window_start(0)


def test_dashboard_page_shows_the_figures_and_svg_charts(admin_client, scenario):
    response = admin_client.get(reverse("admin:recommendations_dashboard_changelist"), {"days": 7})
    assert response.status_code == 200
    html = response.content.decode()
    assert html.count('class="rec-chart"') == 3  # events per day, CTR, conversion
    assert "Recommended for you" in html and "50.0%" in html
    assert scenario[0].title in html
    assert "<b>3</b> of 7" in html  # coverage of the recommended products


def test_dashboard_shows_the_figures_it_computed_within_the_minute(admin_client, scenario):
    """Its figures read every event of the window (400-500 ms for 30 days at 315,000 events)."""
    url = reverse("admin:recommendations_dashboard_changelist")
    first = admin_client.get(url, {"days": 7})
    computed_at = first.context["overview"].computed_at
    assert f"computed at {timezone.localtime(computed_at):%H:%M:%S}, figures up to a minute old" in (
        first.content.decode()
    )
    event("view", product=scenario[1])
    with CaptureQueriesContext(connection) as queries:
        again = admin_client.get(url, {"days": 7})
    assert again.context["overview"].totals == first.context["overview"].totals
    assert not [query["sql"] for query in queries if "recommendations_event" in query["sql"]]
    other_window = admin_client.get(url, {"days": 14}).context["overview"]
    assert other_window.totals["events"] == first.context["overview"].totals["events"] + 1


def test_dashboard_with_no_events_explains_what_is_missing(admin_client, catalogue):
    response = admin_client.get(reverse("admin:recommendations_dashboard_changelist"), {"days": "nonsense"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "No events in this window yet" in html
    assert "No recommendation has been shown" in html


def test_dashboard_needs_permission(client, django_user_model):
    staff = django_user_model.objects.create_user("clerk", password="pw", is_staff=True)
    client.force_login(staff)
    assert client.get(reverse("admin:recommendations_dashboard_changelist")).status_code == 403
