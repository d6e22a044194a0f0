"""What a browser session may send to POST /api/events/, over real HTTP (the test client).

The endpoint is public: anyone with a session cookie and its CSRF token can post. A browser
may report what it saw (views, impressions, clicks, campaign views...) in small contexts,
crediting only the lists it was shown; purchases, ratings and revenue are the server's, and
no input may cost a 500.
"""

import datetime as dt
import json
import re

import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from recommendations.analytics import block_funnels
from recommendations.events.validation import BROWSER_EVENT_TYPES, MAX_CONTEXT_DEPTH
from recommendations.marketing.targeting import views_so_far
from recommendations.models import Campaign, CampaignKind, Event, ServedRecommendation
from recommendations.serving.catalog import index_products
from recommendations.serving.statistics import refresh_statistics
from tests.events.conftest import CSRF_SECRET

pytestmark = pytest.mark.django_db

URL = "/api/events/"


def post(client, events, key=None, **extra):
    if key:
        extra["HTTP_AUTHORIZATION"] = f"Api-Key {key}"
    else:
        extra["HTTP_X_CSRFTOKEN"] = CSRF_SECRET
    return client.post(URL, json.dumps({"events": events}), content_type="application/json", **extra)


def nested(depth):
    """A context `depth` levels deep, the context object being level 1."""
    context = {"a": 1}
    for _ in range(depth - 1):
        context = {"a": context}
    return context


def test_a_browser_may_not_send_purchases_ratings_or_revenue(browser, catalogue):
    """The review's forged sale: revenue 9,999,999,999.99 on the dashboard from one request."""
    product = str(catalogue[0].pk)
    forged = [
        {"event_type": "purchase", "product_id": product, "value": 1, "revenue": "9999999999.99"},
        {"event_type": "rating", "product_id": product, "value": 5},
        {"event_type": "add_to_cart", "product_id": product, "revenue": "10.00"},
    ]
    response = post(browser, forged)
    assert response.status_code == 400, response.content
    errors = [e["errors"] for e in response.json()["errors"]]
    assert "purchase events are recorded by the server (the order_placed signal" in errors[0]["event_type"][0]
    assert "or sent with an API key" in errors[0]["event_type"][0]
    assert "recorded by the server" in errors[0]["revenue"][0]
    assert "review_added signal" in errors[1]["event_type"][0]
    assert set(errors[2]) == {"revenue"}, "a cart event is a browser's; its revenue is not"
    assert not Event.objects.exists()


def test_an_api_key_still_sends_purchases_with_revenue(client, catalogue, api_key):
    purchase = {"event_type": "purchase", "product_id": str(catalogue[0].pk), "revenue": "12.50"}
    assert post(client, [purchase], api_key).status_code == 200
    assert str(Event.objects.get().revenue) == "12.50"


def test_a_browser_may_send_what_the_beacon_and_storefront_scripts_send(browser, catalogue):
    product, store = str(catalogue[0].pk), str(catalogue[0].store_id)
    sent = [
        {"event_type": "view", "product_id": product},
        {"event_type": "store_view", "store_id": store},
        {"event_type": "impression", "products": [product]},
        {"event_type": "click", "product_id": product},
        {"event_type": "campaign_view", "context": {"campaign": "1"}},
        {"event_type": "campaign_click", "context": {"campaign": "1"}},
        {"event_type": "favourite", "product_id": product},
        {"event_type": "add_to_cart", "product_id": product, "value": 2},
        {"event_type": "remove_from_cart", "product_id": product},
        {"event_type": "search", "query": "mug"},
    ]
    assert {e["event_type"] for e in sent} == BROWSER_EVENT_TYPES
    response = post(browser, sent)
    assert response.status_code == 200, response.content
    assert response.json()["stored"] == len(sent)


def test_a_browsers_batch_of_too_many_events_is_told_the_cap(browser, catalogue):
    """The answer said only that a browser sends smaller batches, not that 500 is the cap."""
    events = [{"event_type": "view", "product_id": str(catalogue[0].pk)}] * 501
    response = post(browser, events)
    assert response.status_code == 400
    assert response.json()["detail"] == (
        "The batch has 501 events; at most 500 are accepted per request: split it into smaller batches."
    )


def test_a_browsers_context_is_capped_in_bytes(browser, catalogue):
    """The review stored 30 contexts of 933 KB from one anonymous session."""
    product = str(catalogue[0].pk)
    big = {"page": "/", "x": "y" * 4100}
    response = post(browser, [{"event_type": "view", "product_id": product, "context": big}])
    assert response.status_code == 400
    message = response.json()["errors"][0]["errors"]["context"][0]
    assert "a browser session may send at most 4096" in message and "API key" in message
    # What the beacon sends fits with room to spare: page and referrer of 500 characters, its
    # extras, and the products it lists, which are capped by count instead.
    fits = {
        "page": "/" + "p" * 499,
        "referrer": "https://shop.example/" + "r" * 479,
        "kind": "similar",
        "position": 3,
        "products": [product] * 200,
    }
    response = post(browser, [{"event_type": "impression", "context": fits}])
    assert response.status_code == 200, response.content
    with override_settings(RECOMMENDATIONS={**settings.RECOMMENDATIONS, "MAX_BROWSER_CONTEXT_BYTES": 10_000}):
        assert (
            post(browser, [{"event_type": "view", "product_id": product, "context": big}]).status_code == 200
        )
    assert Event.objects.count() == 2


def test_an_api_keys_context_is_not_capped_in_bytes(client, catalogue, api_key):
    event = {"event_type": "view", "product_id": str(catalogue[0].pk), "context": {"x": "y" * 50_000}}
    assert post(client, [event], api_key).status_code == 200


def test_a_browsers_batch_is_capped_at_what_sendbeacon_sends(browser, catalogue, api_key):
    """Per event alone, 500 events of 2 KB would still store a megabyte a request."""
    events = [{"event_type": "view", "product_id": str(catalogue[0].pk), "context": {"x": "y" * 2000}}] * 40
    response = post(browser, events)
    assert response.status_code == 413
    assert "at most 65536 bytes" in response.json()["detail"]
    assert post(browser, events[:30]).status_code == 200
    assert post(Client(), events, api_key).status_code == 200, "API keys keep MAX_BATCH_BYTES"
    assert Event.objects.count() == 70


@pytest.mark.parametrize("depth", [MAX_CONTEXT_DEPTH + 1, 320, 500])
def test_a_context_nested_too_deep_is_a_400_not_a_500(browser, client, catalogue, api_key, depth):
    """A 2 KB body nested 320 deep reached Python's recursion limit: a 500 and a long traceback."""
    event = {"event_type": "view", "product_id": str(catalogue[0].pk), "context": nested(depth)}
    for response in (post(browser, [event]), post(client, [event], api_key)):
        assert response.status_code == 400, response.content[:200]
        message = response.json()["errors"][0]["errors"]["context"][0]
        assert f"nested at most {MAX_CONTEXT_DEPTH} levels deep" in message
    assert not Event.objects.exists()


def test_a_context_as_deep_as_allowed_is_stored(browser, catalogue):
    event = {"event_type": "view", "product_id": str(catalogue[0].pk), "context": nested(MAX_CONTEXT_DEPTH)}
    event["context"]["list"] = [[["x"]]]  # lists nest too: level 4
    assert post(browser, [event]).status_code == 200
    assert Event.objects.get().context["a"] == nested(MAX_CONTEXT_DEPTH)["a"]


def test_a_nul_deep_in_a_context_is_still_found(browser, catalogue):
    context = {"a": [{"b": ["ok", {"c\u0000": 1}]}]}
    event = {"event_type": "view", "product_id": str(catalogue[0].pk), "context": context}
    response = post(browser, [event])
    assert response.status_code == 400
    assert "NUL" in response.json()["errors"][0]["errors"]["context"][0]


# Recommendation ids: a browser may claim only the lists it was shown.


@pytest.fixture
def shelf(catalogue):
    """The catalogue, indexed for serving: the API serves lists of it."""
    index_products()
    refresh_statistics()
    return catalogue


def shown_list(client, path="/api/recommendations/new/"):
    """A list the API serves this client: (its recommendation id, its product ids)."""
    body = client.get(path, {"limit": 3}).json()
    assert body["results"], body
    return body["recommendation_id"], [item["id"] for item in body["results"]]


def seen_and_clicked(recommendation_id, products):
    return [
        {"event_type": "impression", "products": products, "recommendation_id": recommendation_id},
        {"event_type": "click", "product_id": products[0], "recommendation_id": recommendation_id},
    ]


def credited(recommendation_id):
    return Event.objects.filter(recommendation_id=recommendation_id).count()


def test_a_browser_claims_the_lists_it_was_shown_and_no_others(browser, shelf):
    """A visitor's first page is served before they have a session: its lists name nobody,
    and the first session to send their id takes them."""
    first_page, products = shown_list(browser)
    assert post(browser, seen_and_clicked(first_page, products)).status_code == 200
    assert credited(first_page) == 2
    later_page, _ = shown_list(browser)  # the visitor now has a session: served to it
    assert post(browser, seen_and_clicked(later_page, products)).status_code == 200
    assert credited(later_page) == 2

    # A script replaying those ids from fresh sessions, or ids it made up, credits nothing;
    # the events are stored without them.
    for recommendation_id in (first_page, later_page, "0a8c3a1f3c33d12f456b"):
        other = Client(enforce_csrf_checks=True)
        other.cookies["csrftoken"] = CSRF_SECRET
        response = post(other, seen_and_clicked(recommendation_id, products))
        assert response.status_code == 200 and response.json()["stored"] == 2
    assert (credited(first_page), credited(later_page)) == (2, 2)
    assert Event.objects.filter(recommendation_id="").count() == 6


def test_a_signed_in_shopper_claims_their_lists_from_any_of_their_sessions(browser, shelf, shopper):
    phone = Client(enforce_csrf_checks=True)
    phone.force_login(shopper)
    recommendation_id, products = shown_list(phone)
    browser.force_login(shopper)  # the same person on another device
    assert post(browser, seen_and_clicked(recommendation_id, products)).status_code == 200
    assert credited(recommendation_id) == 2


def test_an_api_key_sends_recommendation_ids_as_they_are(client, catalogue, api_key):
    """Servers are trusted with the ids they send (a mobile app's own lists, an import)."""
    events = seen_and_clicked("r-from-the-app", [str(catalogue[0].pk)])
    assert post(client, events, api_key).status_code == 200
    assert credited("r-from-the-app") == 2


def test_a_batch_claims_its_lists_with_one_statement(browser, shelf):
    lists = [shown_list(browser) for _ in range(5)]
    events = [
        event
        for recommendation_id, products in lists
        for event in seen_and_clicked(recommendation_id, products)
    ]
    events += seen_and_clicked("never-served", lists[0][1])
    with CaptureQueriesContext(connection) as queries:
        assert post(browser, events).status_code == 200
    served = [q for q in queries.captured_queries if ServedRecommendation._meta.db_table in q["sql"]]
    assert len(served) == 1
    assert all(credited(recommendation_id) == 2 for recommendation_id, _ in lists)
    assert credited("never-served") == 0


def test_the_forged_clicks_of_another_session_do_not_reach_the_dashboard(browser, shelf):
    since = timezone.now() - dt.timedelta(minutes=1)
    recommendation_id, products = shown_list(browser)
    assert post(browser, seen_and_clicked(recommendation_id, products)).status_code == 200
    for _ in range(3):  # fresh cookie jars, as the review's script used
        other = Client(enforce_csrf_checks=True)
        other.cookies["csrftoken"] = CSRF_SECRET
        post(other, seen_and_clicked(recommendation_id, products))
    (funnel,) = block_funnels(since)
    assert (funnel.block, funnel.impressions, funnel.clicks) == ("new_arrivals", 1, 1)


def test_a_browsers_click_or_cart_credits_a_list_only_for_a_product_the_list_showed(browser, shelf):
    """The rule `claim_recommendation` applies to a posted form: a list shown to this session
    is not enough, the product must be in it (a script could otherwise put every cart of the
    visit on the one list it was shown)."""
    body = browser.get("/api/recommendations/new/", {"limit": 2}).json()
    recommendation_id, listed = body["recommendation_id"], [item["id"] for item in body["results"]]
    unlisted = next(str(p.pk) for p in shelf if str(p.pk) not in listed)
    events = [
        {"event_type": "click", "product_id": listed[0], "recommendation_id": recommendation_id},
        {"event_type": "click", "product_id": unlisted, "recommendation_id": recommendation_id},
        {
            "event_type": "add_to_cart",
            "product_id": unlisted,
            "value": 1,
            "recommendation_id": recommendation_id,
        },
    ]
    assert post(browser, events).status_code == 200
    assert [
        (e.event_type, e.product_id) for e in Event.objects.filter(recommendation_id=recommendation_id)
    ] == [("click", listed[0])]
    assert Event.objects.filter(recommendation_id="", product_id=unlisted).count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_click_sent_before_its_list_is_written_still_claims_it(shelf, settings):
    """Lists are written by a thread a moment after they are shown; a click can come first."""
    settings.RECOMMENDATIONS = {**settings.RECOMMENDATIONS, "SERVED_WRITE_DELAY_SECONDS": 30}
    browser = Client(enforce_csrf_checks=True)
    browser.cookies["csrftoken"] = CSRF_SECRET
    recommendation_id, products = shown_list(browser)
    assert not ServedRecommendation.objects.filter(pk=recommendation_id).exists(), "still queued"
    assert post(browser, seen_and_clicked(recommendation_id, products)).status_code == 200
    assert credited(recommendation_id) == 2


# Campaign views: the review used up a capped campaign with five posts from fresh sessions.


def capped_campaign(catalogue, cap=5, name="Mug week"):
    return Campaign.objects.create(
        name=name,
        kind=CampaignKind.PROMOTION,
        product_ids=[str(p.pk) for p in catalogue[:2]],
        impression_cap=cap,
    )


def campaign_view(campaign, recommendation_id=""):
    event = {"event_type": "campaign_view", "context": {"campaign": str(campaign.pk)}}
    if recommendation_id:
        event["recommendation_id"] = recommendation_id
    return event


def fresh_browser():
    client = Client(enforce_csrf_checks=True)
    client.cookies["csrftoken"] = CSRF_SECRET
    return client


def shown_campaigns(client):
    """The campaigns /api/campaigns/for-me/ shows this client: {campaign pk: recommendation id}."""
    return {
        match["id"]: match["recommendation_id"]
        for match in client.get("/api/campaigns/for-me/").json()["results"]
    }


@pytest.mark.parametrize("sender", ["browser", "api_key"])
def test_a_campaign_view_or_click_must_name_its_campaign(catalogue, api_key, sender):
    """Caps and campaign statistics find a campaign in the event's context: without it, the
    event was stored and counted for nothing, and the sender never knew."""
    missing = [
        {"event_type": "campaign_view"},
        {"event_type": "campaign_click", "context": {"page": "/"}},
        {"event_type": "campaign_view", "context": {"campaign": " "}},
    ]
    response = post(fresh_browser(), missing) if sender == "browser" else post(Client(), missing, api_key)
    assert response.status_code == 400, response.content
    errors = [e["errors"] for e in response.json()["errors"]]
    required = (
        "context.campaign is required for {} events: the campaign's id, as /api/campaigns/for-me/ answers it"
    )
    assert errors == [
        {"context": [required.format(kind)]} for kind in ("campaign_view", "campaign_click", "campaign_view")
    ]
    assert not Event.objects.exists()


def test_campaign_views_from_sessions_never_shown_the_campaign_do_not_use_up_its_cap(catalogue):
    capped = capped_campaign(catalogue)
    for _ in range(5):
        assert post(fresh_browser(), [campaign_view(capped)]).status_code == 200
    cache.clear()  # views_so_far is cached for a minute
    assert views_so_far([capped]) == {}
    assert capped.pk in shown_campaigns(fresh_browser()), "still shown to a new visitor"
    # The claims are kept for the record, under a key nothing counts.
    assert {e.context["unverified_campaign"] for e in Event.objects.all()} == {str(capped.pk)}


def test_a_campaign_view_counts_with_the_id_of_the_list_that_showed_it(catalogue):
    capped = capped_campaign(catalogue, cap=2)
    other = capped_campaign(catalogue, cap=2, name="Other week")
    visitor = fresh_browser()
    shown = shown_campaigns(visitor)
    assert set(shown) == {capped.pk, other.pk}
    recommendation_id = shown[capped.pk]
    assert ServedRecommendation.objects.get(pk=recommendation_id).kind == "campaigns"
    assert post(visitor, [campaign_view(capped, recommendation_id)]).status_code == 200
    # Replayed from other sessions, the same id counts for nobody.
    for _ in range(3):
        post(fresh_browser(), [campaign_view(capped, recommendation_id)])
    # A campaign the list did not show cannot borrow its id.
    hidden = capped_campaign(catalogue, name="Hidden week")
    post(visitor, [campaign_view(hidden, recommendation_id)])
    cache.clear()
    assert views_so_far([capped, other, hidden]) == {capped.pk: 1}

    second = fresh_browser()
    assert post(second, [campaign_view(capped, shown_campaigns(second)[capped.pk])]).status_code == 200
    cache.clear()
    assert capped.pk not in shown_campaigns(fresh_browser()), "two visitors saw it: its cap of 2 is reached"


def test_a_campaign_is_hidden_once_the_view_that_reaches_its_cap_is_stored(
    catalogue, django_capture_on_commit_callbacks
):
    """The review's cap of 2 let six new visitors in a row see the campaign: the count was
    read once and cached for a minute. Each view stored now counts at once."""
    capped = capped_campaign(catalogue, cap=2)
    shown = []
    for i in range(6):
        visitor = fresh_browser()
        recommendation_id = shown_campaigns(visitor).get(capped.pk)
        if recommendation_id:
            shown.append(i)
            view = campaign_view(capped, recommendation_id)
            with django_capture_on_commit_callbacks(execute=True):
                assert post(visitor, [view, view]).status_code == 200
                assert post(visitor, [view]).status_code == 200  # the same visitor again
    assert shown == [0, 1]
    assert views_so_far([capped]) == {capped.pk: 2}


def test_the_storefront_block_carries_the_id_its_views_send(catalogue):
    capped = capped_campaign(catalogue, cap=1)
    visitor = fresh_browser()
    html = visitor.get("/").content.decode()
    match = re.search(rf'data-campaign-id="{capped.pk}" data-rec-id="([0-9a-f]+)"', html)
    assert match, "the home page shows the campaign with its list's id"
    assert post(visitor, [campaign_view(capped, match.group(1))]).status_code == 200
    cache.clear()
    assert views_so_far([capped]) == {capped.pk: 1}
