"""API authentication: hashed keys with scopes, revocation, session + CSRF, throttling."""

import hashlib
import json
import re
import time
from collections import Counter

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.core.cache import cache
from django.db import connection
from django.test import Client, override_settings

from recommendations.models import ApiKey, Event
from tests.security.clients import browser, with_key
from tests.state import UNREACHABLE_CACHES

pytestmark = pytest.mark.django_db
EVENTS = "/api/events/"
FOR_YOU = "/api/recommendations/for-you/"


def batch(product):
    return json.dumps({"events": [{"event_type": "view", "product_id": product.pk}]})


def post_events(client, product, **extra):
    return client.post(EVENTS, batch(product), content_type="application/json", **extra)


def test_keys_are_stored_only_as_a_hash(make_key):
    raw = make_key("events:write")
    key = ApiKey.objects.get()
    assert key.key_hash == hashlib.sha256(raw.encode()).hexdigest()
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {ApiKey._meta.db_table}")
        row = " ".join(map(str, cursor.fetchone()))
    assert raw not in row and raw.split(".", 1)[1] not in row


def test_a_new_keys_raw_value_travels_only_in_the_page_that_shows_it(admin_client):
    """The admin shows a new key on the answer to its form, uncached. As a message for the
    next page it travelled in the `messages` cookie (signed, not encrypted: readable by anyone
    who sees the browser's cookies or a proxy's log of them, and sent with every request to
    the site until shown) or, with session messages, in the session row."""
    response = admin_client.post(
        "/admin/recommendations/apikey/add/", {"name": "warehouse", "scopes": ["events:write"]}
    )
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    raw = re.search(r"[0-9a-f]{8}\.[A-Za-z0-9_-]{43}", response.content.decode()).group()
    assert ApiKey.objects.get_for_raw_key(raw) == ApiKey.objects.get()
    secret = raw.split(".", 1)[1]
    assert secret not in str(response.cookies) and secret not in str(admin_client.cookies)
    assert not any(secret in str(s.get_decoded()) for s in Session.objects.all())
    assert secret not in admin_client.get("/admin/recommendations/apikey/").content.decode()


def test_each_scope_opens_only_its_own_door(make_key, products):
    writer, reader = with_key(make_key("events:write")), with_key(make_key("recommendations:read"))
    assert post_events(writer, products[0]).status_code in (200, 201)
    assert writer.get(FOR_YOU).status_code == 403
    assert post_events(reader, products[0]).status_code == 403
    assert reader.get(FOR_YOU).status_code == 200
    assert with_key(make_key()).get("/api/campaigns/").status_code == 403  # audiences:read missing
    assert Event.objects.count() == 1


@pytest.mark.parametrize("scheme", ["api-key", "API-KEY", "Api-Key"])
def test_the_scheme_is_matched_in_any_case(make_key, products, scheme):
    """RFC 7235: "api-key <key>" was ignored, and the batch refused as a browser's without CSRF."""
    raw = make_key("events:write")
    assert post_events(Client(), products[0], HTTP_AUTHORIZATION=f"{scheme} {raw}").status_code == 200
    assert Client(HTTP_AUTHORIZATION=f"{scheme} deadbeef.not-a-key").get(FOR_YOU).status_code == 401


def test_revoked_unknown_and_malformed_keys_get_the_same_401(make_key, products):
    raw = make_key("events:write", "recommendations:read")
    ApiKey.objects.get().revoke()
    answers = []
    # A NUL byte, which PostgreSQL refuses in a query, is no key either (it was a 500).
    for presented in (raw, raw[:-2] + "xx", "deadbeef.not-a-key", "nodot", "\x00" * 8 + ".x"):
        response = with_key(presented).get(FOR_YOU)
        assert response.status_code == 401
        assert response["WWW-Authenticate"] == "Api-Key"
        answers.append(response.json())
    assert all(answer == answers[0] for answer in answers), "a revoked key must look like an unknown one"
    assert post_events(with_key(raw), products[0]).status_code == 401 and not Event.objects.exists()


def test_a_verified_key_is_trusted_briefly_and_revocation_is_immediate_in_this_process(
    make_key, admin_client
):
    from django.test.utils import CaptureQueriesContext

    from recommendations.models import api_keys

    raw = make_key("recommendations:read")
    client = with_key(raw)
    assert client.get(FOR_YOU).status_code == 200
    with CaptureQueriesContext(connection) as executed:
        assert client.get(FOR_YOU).status_code == 200
    assert not [q for q in executed.captured_queries if ApiKey._meta.db_table in q["sql"]]
    # Revoked in the admin (a bulk update): refused at once, not after the cache expires.
    key = ApiKey.objects.get()
    admin_client.post("/admin/recommendations/apikey/", {"action": "revoke", "_selected_action": [key.pk]})
    assert client.get(FOR_YOU).status_code == 401
    # Another process's revocation is seen when this process's entry expires.
    other = with_key(second := make_key("recommendations:read"))
    assert other.get(FOR_YOU).status_code == 200
    ApiKey.objects.filter(prefix=second.split(".")[0]).update(revoked_at="2026-01-01T00:00:00Z")
    assert other.get(FOR_YOU).status_code == 200  # still trusted for up to VERIFIED_KEY_SECONDS
    for digest, (_, cached) in list(api_keys._verified.items()):
        api_keys._verified[digest] = (0.0, cached)  # expired
    assert other.get(FOR_YOU).status_code == 401


def test_the_storefront_session_reads_its_own_recommendations(alice):
    assert browser(alice).get(FOR_YOU).status_code == 200


def test_session_posts_need_the_csrf_token(alice, products):
    """The beacon is session-authenticated, so another site must not be able to post events."""
    for user in (alice, None):
        forged = Client(enforce_csrf_checks=True)
        if user is not None:
            forged.force_login(user)
        response = post_events(forged, products[0])
        assert response.status_code == 403 and "CSRF" in response.json()["detail"]
        wrong = browser(user)
        wrong.defaults["HTTP_X_CSRFTOKEN"] = "x" * 32
        assert post_events(wrong, products[0]).status_code == 403
        assert post_events(browser(user), products[0]).status_code in (200, 201)
    assert Event.objects.count() == 2


def throttled(**rates):
    return override_settings(RECOMMENDATIONS={**settings.RECOMMENDATIONS, "API_THROTTLE_RATES": rates})


def test_throttling_counts_per_key(make_key):
    first, second = with_key(make_key("recommendations:read")), with_key(make_key("recommendations:read"))
    with throttled(api_key="3/minute", user="100/minute", anonymous="100/minute"):
        assert [first.get(FOR_YOU).status_code for _ in range(4)] == [200, 200, 200, 429]
        assert second.get(FOR_YOU).status_code == 200
        assert int(first.get(FOR_YOU)["Retry-After"]) > 0


def test_a_rate_of_none_is_not_limited_nor_counted(make_key):
    client = with_key(make_key("recommendations:read"))
    with throttled(api_key=None, user="1/minute", anonymous="1/minute"):
        assert [client.get(FOR_YOU).status_code for _ in range(3)] == [200, 200, 200]
    assert not [key for key in cache._cache if "throttle_" in key]  # LocMemCache's own store


def test_rates_set_for_some_kinds_keep_the_default_for_the_others(make_key, alice):
    """A host that lifts only the anonymous limit still serves signed-in shoppers and API keys,
    each counted at its own rate (given, or the default)."""
    anonymous, shopper = browser(), browser(alice)
    server = with_key(make_key("recommendations:read"))
    with override_settings(
        RECOMMENDATIONS={
            **settings.RECOMMENDATIONS,
            "API_THROTTLE_RATES": {"anonymous": None, "user": "2/minute"},
        }
    ):
        assert [anonymous.get(FOR_YOU).status_code for _ in range(3)] == [200, 200, 200]
        assert [shopper.get(FOR_YOU).status_code for _ in range(3)] == [200, 200, 429]
        assert [server.get(FOR_YOU).status_code for _ in range(3)] == [200, 200, 200]
    counted = {
        key.split("throttle_recommendations_")[1].rsplit("_", 1)[0]
        for key in cache._cache
        if "throttle_" in key
    }
    assert counted == {"user", "api_key"}  # the key at its default rate, 6000/minute


def test_a_throttled_client_is_served_again_when_its_window_closes(make_key):
    client = with_key(make_key("recommendations:read"))
    with throttled(api_key="2/second", user="100/minute", anonymous="100/minute"):
        assert [client.get(FOR_YOU).status_code for _ in range(3)] == [200, 200, 429]
        assert 0 < float(client.get(FOR_YOU)["Retry-After"]) <= 1
        time.sleep(1.1)
        assert [client.get(FOR_YOU).status_code for _ in range(3)] == [200, 200, 429]


def test_a_cache_outage_lifts_the_limits_and_says_so(make_key, settings, caplog):
    """Rates are counted in Django's cache: with it unreachable the API still answers (the
    lists computed rather than read from the cache), unthrottled, and each miss is logged."""
    client = with_key(make_key("recommendations:read"))
    settings.CACHES = UNREACHABLE_CACHES
    with throttled(api_key="2/minute", user="100/minute", anonymous="100/minute"):
        assert [client.get(FOR_YOU).status_code for _ in range(3)] == [200, 200, 200]
    assert caplog.text.count("Request not rate-limited: Django's cache could not be reached") == 3


def test_on_redis_a_request_is_counted_in_one_round_trip_and_every_window_expires(make_key, redis_cache):
    client = with_key(make_key("recommendations:read"))

    def calls() -> Counter:
        stats = redis_cache.info("commandstats")
        return Counter({name.removeprefix("cmdstat_"): entry["calls"] for name, entry in stats.items()})

    with throttled(api_key="3/minute", user="100/minute", anonymous="100/minute"):
        assert client.get(FOR_YOU).status_code == 200  # opens the window (and loads the script)
        before = calls()
        assert client.get(FOR_YOU).status_code == 200
        sent = calls() - before
        # One script call (its INCR runs in the server), not Django's EXISTS then INCR.
        assert sent["evalsha"] == 1 and sent["exists"] == 0 and sent["get"] == sent["set"] == 0
        assert [client.get(FOR_YOU).status_code for _ in range(2)] == [200, 429]
        assert 55 < int(client.get(FOR_YOU)["Retry-After"]) <= 60
    counters = list(redis_cache.scan_iter(f"{settings.CACHES['default']['KEY_PREFIX']}:*throttle_*"))
    assert len(counters) == 2 and all(0 < redis_cache.ttl(key) <= 60 for key in counters)


def test_throttling_counts_per_anonymous_client_and_ignores_forged_forwarding_headers():
    with throttled(api_key="100/minute", user="100/minute", anonymous="3/minute"):
        client = Client(REMOTE_ADDR="203.0.113.9")
        assert [client.get(FOR_YOU).status_code for _ in range(3)] == [200, 200, 200]
        # A client inventing a new X-Forwarded-For per request is still the same client.
        for n in range(3):
            assert client.get(FOR_YOU, HTTP_X_FORWARDED_FOR=f"198.51.100.{n}").status_code == 429
        assert Client(REMOTE_ADDR="203.0.113.10").get(FOR_YOU).status_code == 200
