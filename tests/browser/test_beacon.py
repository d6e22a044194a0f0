"""The beacon in a real Chromium: wrong device clocks, failures, big batches, store blocks,
where the page-view markup may be, and campaign views."""

import datetime as dt

import pytest
from django.core.cache import cache
from django.utils import timezone

from recommendations.analytics import block_funnels
from recommendations.marketing.targeting import views_so_far
from recommendations.models import Campaign, CampaignKind, Event, ServedRecommendation
from recommendations.serving.attribution import flush_served
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


def page_errors(page) -> list[str]:
    """Uncaught errors of the page (a promise rejection nobody caught among them)."""
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors


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


def test_failures_are_silent_without_sendbeacon_and_with_the_endpoint_down(page, shop):
    errors = page_errors(page)
    page.add_init_script("delete Navigator.prototype.sendBeacon;")
    attempts = []

    def refuse(route):
        attempts.append(route.request.method)
        route.abort("connectionrefused")

    page.route("**/api/events/", refuse)
    page.goto(shop["tea"][0].get_absolute_url())
    page.evaluate("window.recommendationsBeacon.flush()")
    page.wait_for_timeout(1000)
    assert attempts, "the beacon tried to send"
    assert errors == []


def test_a_batch_too_big_for_one_request_is_split_and_stored_whole(page, shop):
    errors = page_errors(page)
    page.goto("/")
    shown = [str(p.pk) for kind in ("mug", "tea", "knife") for p in shop[kind]]
    # 50 events of about 1.5 KB: 75 KB, over the 64 KB sendBeacon and keepalive fetch accept.
    page.evaluate(
        """(shown) => {
          for (let i = 0; i < 50; i++) {
            window.recommendationsBeacon.track({
              event_type: "impression", products: shown, context: { pad: "x".repeat(1400) }
            });
          }
          window.recommendationsBeacon.flush();
        }""",
        shown,
    )
    wait_for(
        lambda: Event.objects.filter(event_type="impression", context__has_key="pad").count() == 50,
        what="all 50 events of the big batch",
    )
    assert errors == []


def test_a_store_block_gets_impressions_and_clicks_that_the_funnel_counts(page, shop):
    since = timezone.now() - dt.timedelta(minutes=1)
    page.goto("/")
    block = page.locator("#stores [data-rec-impression]")
    block.scroll_into_view_if_needed()
    recommendation_id = block.get_attribute("data-rec-id")
    listed = block.locator("[data-store-id]").evaluate_all("nodes => nodes.map(n => n.dataset.storeId)")
    impression = wait_for(
        lambda: Event.objects.filter(event_type="impression", recommendation_id=recommendation_id).first(),
        what="the impression of the stores block",
    )
    assert impression.context["stores"] == listed

    block.locator("[data-store-id] a").first.click()
    click = wait_for(
        lambda: Event.objects.filter(event_type="click", recommendation_id=recommendation_id).first(),
        what="the click on a recommended store",
    )
    assert (click.store_id, click.product_id, click.context["position"]) == (listed[0], "", 1)

    assert flush_served()
    kind = ServedRecommendation.objects.get(pk=recommendation_id).kind
    funnel = next(f for f in block_funnels(since) if f.block == kind)
    assert (funnel.impressions, funnel.clicks) == (1, 1)


def test_the_product_view_markup_may_be_on_any_element(page, shop):
    product = shop["mug"][2]
    page.goto("/")  # the csrftoken cookie, as any page of the shop sets it
    page.route(
        "**/host-page/",
        lambda route: route.fulfill(
            content_type="text/html",
            body=(
                "<!doctype html><html><body><main>"
                f'<div data-rec-view="product" data-product-id="{product.pk}"><h1>{product.title}</h1></div>'
                '</main><script src="/static/recommendations/beacon.js"></script></body></html>'
            ),
        ),
    )
    page.goto("/host-page/")
    page.evaluate("window.recommendationsBeacon.flush()")
    wait_for(
        lambda: Event.objects.filter(event_type="view", product_id=str(product.pk)).exists(),
        what="the view marked on a <div>",
    )


def test_a_campaign_seen_on_the_home_page_counts_towards_its_cap(page, shop):
    """campaigns.js sends the block's recommendation id with the view, which is what lets a
    browser's view count (a view without it, from a session never shown the campaign, does not)."""
    capped = Campaign.objects.create(
        name="Mug week",
        kind=CampaignKind.PROMOTION,
        product_ids=[str(p.pk) for p in shop["mug"]],
        impression_cap=1,
    )
    page.goto("/")
    card = page.locator(f'[data-campaign-id="{capped.pk}"]')
    card.scroll_into_view_if_needed()
    recommendation_id = card.get_attribute("data-rec-id")
    view = wait_for(
        lambda: Event.objects.filter(event_type="campaign_view", recommendation_id=recommendation_id).first(),
        what="the campaign view",
    )
    assert view.context["campaign"] == str(capped.pk)
    cache.clear()  # the count is cached for a minute
    assert views_so_far([capped]) == {capped.pk: 1}
    page.reload()
    assert page.locator("[data-campaign-id]").count() == 0, "its cap of one visitor is reached"


def test_a_new_visitors_campaign_click_is_in_the_session_of_its_view(page, shop):
    """The first batch of a new visitor's page carries no session cookie, and its response sets
    one. A click sent before that response came started a second session, without the
    campaigns' list: the click was stored uncredited (`unverified_campaign`). On a slow network
    (each response a second late) the beacon holds the click until the response has come."""
    campaign = Campaign.objects.create(
        name="Mug week", kind=CampaignKind.PROMOTION, product_ids=[str(p.pk) for p in shop["mug"]]
    )
    page.goto("/")
    assert "sessionid" not in {c["name"] for c in page.context.cookies()}, "a new visitor"
    network = page.context.new_cdp_session(page)
    network.send("Network.enable")
    network.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 1000, "downloadThroughput": -1, "uploadThroughput": -1},
    )
    card = page.locator(f'[data-campaign-id="{campaign.pk}"]')
    card.scroll_into_view_if_needed()
    with page.expect_request("**/api/events/"):  # the campaign view, 2 s after it was seen
        pass
    card.dispatch_event("click")  # on the card, not its link: the page stays
    click = wait_for(
        lambda: Event.objects.filter(event_type="campaign_click").first(), what="the campaign click"
    )
    view = Event.objects.get(event_type="campaign_view")
    assert click.session_id == view.session_id != ""
    assert click.recommendation_id == view.recommendation_id == card.get_attribute("data-rec-id")
    assert click.context["campaign"] == str(campaign.pk) and "unverified_campaign" not in click.context


def test_opening_why_a_campaign_is_shown_is_not_a_click_on_it(page, shop):
    """The "i" of a campaign is inside its element: opening it was sent as a campaign_click."""
    campaign = Campaign.objects.create(
        name="Mug week", kind=CampaignKind.PROMOTION, product_ids=[str(p.pk) for p in shop["mug"]]
    )
    page.goto("/")
    card = page.locator(f'[data-campaign-id="{campaign.pk}"]')
    card.locator("summary").click()
    assert card.locator(".why-pop").is_visible()
    card.locator("h3").click()  # a click on the campaign itself, sent after the one on "i"
    wait_for(lambda: Event.objects.filter(event_type="campaign_click").exists(), what="the campaign click")
    page.evaluate("window.recommendationsBeacon.flush(true)")
    page.wait_for_timeout(500)
    assert Event.objects.filter(event_type="campaign_click").count() == 1


def test_opening_why_a_product_is_recommended_is_not_a_click_on_it(page):
    """The app's own cards (recommendations/_product_card.html) hold their "Why?" inside the
    element with data-product-id: opening it was sent as a click on the recommendation."""
    page.add_init_script("delete Navigator.prototype.sendBeacon;")  # every batch by fetch, seen here
    sent = []

    def record(route):
        sent.extend(event["event_type"] for event in route.request.post_data_json["events"])
        route.fulfill(status=202, json={})

    page.route("**/api/events/", record)
    page.route(
        "**/host-page/",
        lambda route: route.fulfill(
            content_type="text/html",
            body=(
                '<!doctype html><html lang="en"><body><main><section data-rec-impression data-rec-id="ab12">'
                '<article class="rec-card" data-product-id="7"><span class="rec-name">Mug</span>'
                '<details class="rec-why"><summary>Why?</summary>Popular this week</details></article>'
                '</section></main><script src="/static/recommendations/beacon.js"></script></body></html>'
            ),
        ),
    )
    page.goto("/host-page/")
    page.get_by_text("Why?").click()
    page.get_by_text("Mug").click()  # a click on the product itself, sent after the one on "Why?"
    page.evaluate("window.recommendationsBeacon.flush(true)")
    page.wait_for_timeout(500)
    assert sent.count("click") == 1, sent
