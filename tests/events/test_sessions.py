"""Anonymous history joins the account at login; streams are cut into visits."""

import numpy as np
import pytest
from django.contrib.sessions.models import Session
from django.test import Client

from recommendations.events.sessions import sessionise
from recommendations.models import Event
from tests.events.conftest import CSRF_SECRET

GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


@pytest.mark.django_db
def test_anonymous_events_merge_into_the_user_at_login(browser, catalogue, shopper):
    events = {
        "csrf_token": CSRF_SECRET,
        "events": [{"event_type": "view", "product_id": str(p.pk)} for p in catalogue[:2]],
    }
    assert browser.post("/api/events/", events, content_type="application/json").status_code == 200
    other_browser = Client()
    other_browser.cookies["csrftoken"] = CSRF_SECRET
    other_browser.post("/api/events/", events, content_type="application/json")  # another visitor's events
    assert Event.objects.filter(user__isnull=True).count() == 4

    assert browser.login(username="shopper", password="pw")

    mine = Event.objects.filter(user=shopper)
    assert mine.count() == 2
    assert Event.objects.filter(user__isnull=True).count() == 2
    # The engine's session id survives the session-key change at login: later events join the same visit.
    browser.cookies["csrftoken"] = CSRF_SECRET  # login rotates the token
    browser.post(
        "/api/events/",
        {"csrf_token": CSRF_SECRET, "events": [{"event_type": "view", "product_id": str(catalogue[2].pk)}]},
        content_type="application/json",
    )
    assert Event.objects.filter(user=shopper).values("session_id").distinct().count() == 1


@pytest.mark.django_db
def test_a_crawler_posting_the_beacon_gets_no_session(catalogue):
    crawler = Client(enforce_csrf_checks=True, HTTP_USER_AGENT=GOOGLEBOT)
    crawler.cookies["csrftoken"] = CSRF_SECRET
    events = {
        "csrf_token": CSRF_SECRET,
        "events": [{"event_type": "view", "product_id": str(catalogue[0].pk)}],
    }
    for _ in range(3):
        response = crawler.post("/api/events/", events, content_type="application/json")
        assert response.status_code == 200
        assert response.json() == {"received": 1, "stored": 0, "duplicates": 0, "opted_out": 0, "bots": 1}
    assert not Event.objects.exists()  # a crawler's views would count in trending and pairs
    assert not Session.objects.exists() and "sessionid" not in crawler.cookies


def test_sessionise_cuts_on_gaps_per_actor_in_any_order():
    minute = 60
    actors = np.array([2, 1, 1, 1, 2, 1])
    times = np.array([0, 50 * minute, 0, 10 * minute, 31 * minute, 45 * minute])
    visits = sessionise(actors, times, gap_seconds=30 * minute)
    # actor 1: 0, 10, 45, 50 min -> visits {0, 10} and {45, 50}; actor 2: 0 and 31 min -> two visits
    assert visits.tolist() == [2, 1, 0, 0, 3, 1]
    assert sessionise(np.array([]), np.array([]), 60).tolist() == []
