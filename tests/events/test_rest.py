"""POST /api/events/: authentication, the all-or-nothing batch, and every error it answers."""

import datetime as dt
import json

import pytest
from django.test import Client, override_settings

from recommendations.models import ApiKey, Event, ServedRecommendation
from tests.events.conftest import CSRF_SECRET

URL = "/api/events/"


def post(client, body, key=None, **extra):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    if key:
        extra["HTTP_AUTHORIZATION"] = f"Api-Key {key}"
    return client.post(URL, data, content_type=extra.pop("content_type", "application/json"), **extra)


def view(product, **fields):
    return {"event_type": "view", "product_id": str(product.pk), **fields}


@pytest.mark.django_db
def test_api_key_batch_is_stored_with_every_field(client, catalogue, api_key, shopper):
    events = [
        view(catalogue[0], event_id="e-1", session_id="s1", user_id=shopper.pk, context={"page": "/p/"}),
        {
            "event_id": "e-2",
            "event_type": "purchase",
            "product_id": catalogue[1].pk,
            "value": 2,
            "revenue": "25.50",
            "timestamp": "2024-05-01T10:00:00Z",
        },
        {
            "event_type": "impression",
            "products": [str(p.pk) for p in catalogue[:3]],
            "recommendation_id": "r-9",
        },
        {"event_type": "search", "query": "blue mug"},
        {"event_type": "rating", "product_id": str(catalogue[2].pk), "value": 4, "context": {"text": "Nice"}},
        {"event_type": "store_view", "store_id": str(catalogue[0].store_id)},
    ]
    response = post(client, {"events": events}, api_key)
    assert response.status_code == 200, response.content
    assert response.json() == {"received": 6, "stored": 6, "duplicates": 0, "opted_out": 0, "bots": 0}
    first = Event.objects.get(event_id="e-1")
    assert (first.user_id, first.session_id, first.store_id) == (shopper.pk, "s1", str(catalogue[0].store_id))
    purchase = Event.objects.get(event_id="e-2")
    assert purchase.value == 2 and str(purchase.revenue) == "25.50"
    assert purchase.timestamp == dt.datetime(2024, 5, 1, 10, tzinfo=dt.UTC)
    impression = Event.objects.get(event_type="impression")
    assert impression.context["products"] == [str(p.pk) for p in catalogue[:3]]
    assert impression.recommendation_id == "r-9"


@pytest.mark.django_db
def test_replayed_batch_is_stored_once(client, catalogue, api_key):
    batch = {"events": [view(catalogue[0], event_id="same-1"), view(catalogue[1], event_id="same-2")]}
    assert post(client, batch, api_key).json()["stored"] == 2
    assert post(client, batch, api_key).json() == {
        "received": 2,
        "stored": 0,
        "duplicates": 2,
        "opted_out": 0,
        "bots": 0,
    }
    assert Event.objects.count() == 2


@pytest.mark.django_db
def test_keys_sent_as_text_or_numbers_are_stored_in_their_own_type(client, catalogue, api_key, shopper):
    events = [view(catalogue[0], user_id=str(shopper.pk)), view(catalogue[1], user_id=shopper.pk)]
    events.append({"event_type": "view", "product_id": catalogue[2].pk, "user_id": f" {shopper.pk} "})
    assert post(client, {"events": events}, api_key).json()["stored"] == 3
    assert set(Event.objects.values_list("user_id", "product_id")) == {
        (shopper.pk, str(product.pk)) for product in catalogue[:3]
    }


@pytest.mark.django_db
def test_session_with_csrf_header_writes_as_the_signed_in_user(browser, catalogue, shopper):
    browser.force_login(shopper)
    response = post(
        browser, {"events": [view(catalogue[0])]}, HTTP_X_CSRFTOKEN=CSRF_SECRET, HTTP_USER_AGENT="Firefox"
    )
    assert response.status_code == 200, response.content
    event = Event.objects.get()
    assert event.user_id == shopper.pk and event.session_id
    assert event.context["user_agent"] == "Firefox"


@pytest.mark.django_db
def test_session_may_send_the_token_in_the_body_as_text_plain(browser, catalogue):
    """What navigator.sendBeacon does: no headers, a text/plain body."""
    body = {"csrf_token": CSRF_SECRET, "events": [view(catalogue[0])]}
    response = post(browser, body, content_type="text/plain;charset=UTF-8")
    assert response.status_code == 200, response.content
    assert Event.objects.get().user_id is None


@pytest.mark.django_db
def test_session_without_a_matching_csrf_token_is_refused(browser, catalogue, shopper):
    browser.force_login(shopper)
    assert post(browser, {"events": [view(catalogue[0])]}).status_code == 403
    response = post(browser, {"events": [view(catalogue[0])]}, HTTP_X_CSRFTOKEN="B" * 32)
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    anonymous = Client(enforce_csrf_checks=True)  # anonymous visitors need the token too
    refused = post(anonymous, {"events": [view(catalogue[0])]})
    assert refused.status_code == 403
    assert refused.json()["detail"].startswith("CSRF failed: CSRF cookie not set. Send the csrftoken")
    assert not Event.objects.exists()


@pytest.mark.django_db
def test_session_may_not_claim_another_user_or_session(catalogue, shopper):
    browser = Client()
    response = post(browser, {"events": [view(catalogue[0], user_id=shopper.pk, session_id="x")]})
    assert response.status_code == 400
    assert set(response.json()["errors"][0]["errors"]) == {"user_id", "session_id"}


@pytest.mark.django_db
@pytest.mark.parametrize("skew", [dt.timedelta(minutes=10), -dt.timedelta(days=400)], ids=["fast", "slow"])
def test_a_wrong_device_clock_is_corrected_by_the_batchs_sent_at(browser, catalogue, skew):
    """The beacon times events by the shopper's clock and sends that clock's time with the batch:
    a clock 10 minutes fast is not refused as "in the future", one 400 days slow is not backdated."""
    server_now = dt.datetime.now(dt.UTC)
    device_now = server_now + skew
    events = [view(catalogue[0], timestamp=(device_now - dt.timedelta(seconds=30)).isoformat())]
    body = {"csrf_token": CSRF_SECRET, "sent_at": device_now.isoformat(), "events": events}
    response = post(browser, body, content_type="text/plain;charset=UTF-8")
    assert response.status_code == 200, response.content
    stored = Event.objects.get().timestamp
    assert abs(stored - (server_now - dt.timedelta(seconds=30))) < dt.timedelta(seconds=5)


@pytest.mark.django_db
def test_times_in_milliseconds_and_a_wrong_sent_at_are_named_as_such(client, catalogue, api_key):
    """JavaScript's Date.now() counts milliseconds: the answer was "year 58889 is out of range".
    An event refused only once moved by a wrong sent_at was "in the future", with no word of it."""
    now = dt.datetime.now(dt.UTC)
    millis = int(now.timestamp() * 1000)
    response = post(client, {"events": [view(catalogue[0], timestamp=millis)]}, api_key)
    assert response.status_code == 400
    assert response.json()["errors"][0]["errors"]["timestamp"] == [
        f"{millis} is out of range as unix seconds; send seconds (milliseconds / 1000) or ISO 8601"
    ]
    response = post(client, {"events": [view(catalogue[0])], "sent_at": millis}, api_key)
    assert response.status_code == 400 and "send seconds (milliseconds / 1000)" in response.json()["detail"]
    a_century_ago = (now - dt.timedelta(days=36524)).isoformat()
    body = {"events": [view(catalogue[0], timestamp=now.isoformat())], "sent_at": a_century_ago}
    (message,) = post(client, body, api_key).json()["errors"][0]["errors"]["timestamp"]
    assert "in the future once moved by" in message and "the server's clock minus sent_at" in message
    assert not Event.objects.exists()


@pytest.mark.django_db
def test_a_store_block_is_measured_by_store_impressions_and_clicks(browser, catalogue):
    stores = [str(catalogue[0].store_id), str(catalogue[1].store_id)]
    # Shown on the visitor's first page, before they had a session: their first batch claims it.
    ServedRecommendation.objects.create(id="r-stores", kind="stores", source="test", product_ids=stores)
    events = [
        {"event_type": "impression", "stores": stores, "recommendation_id": "r-stores"},
        {"event_type": "click", "store_id": stores[1], "recommendation_id": "r-stores"},
    ]
    response = post(browser, {"events": events}, HTTP_X_CSRFTOKEN=CSRF_SECRET)
    assert response.status_code == 200, response.content
    assert Event.objects.get(event_type="impression").context["stores"] == stores
    click = Event.objects.get(event_type="click")
    assert (click.store_id, click.product_id, click.recommendation_id) == (stores[1], "", "r-stores")

    bad = [
        {"event_type": "impression", "stores": ["999999"]},
        {"event_type": "click", "recommendation_id": "r"},
    ]
    errors = post(browser, {"events": bad}, HTTP_X_CSRFTOKEN=CSRF_SECRET).json()["errors"]
    assert "999999" in errors[0]["errors"]["stores"][0]
    assert "store_id" in errors[1]["errors"]["product_id"][0]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("header", "status"),
    [("Api-Key nope.nope", 401), ("Api-Key", 401), ("Api-Key a b", 401)],
)
def test_bad_api_keys_are_refused(client, catalogue, header, status):
    response = post(client, {"events": [view(catalogue[0])]}, HTTP_AUTHORIZATION=header)
    assert response.status_code == status
    assert not Event.objects.exists()


@pytest.mark.django_db
def test_revoked_key_and_missing_scope_are_refused(client, catalogue):
    _, reader_raw = ApiKey.objects.create_key("reader", ["recommendations:read"])
    response = post(client, {"events": [view(catalogue[0])]}, reader_raw)
    assert response.status_code == 403 and "events:write" in response.json()["detail"]
    writer, writer_raw = ApiKey.objects.create_key("writer", ["events:write"])
    writer.revoke()
    assert post(client, {"events": [view(catalogue[0])]}, writer_raw).status_code == 401


@pytest.mark.django_db
def test_invalid_events_get_per_event_per_field_errors_and_nothing_is_written(client, catalogue, api_key):
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
    events = [
        view(catalogue[0], event_id="ok-1"),
        {"event_type": "teleport", "product_id": str(catalogue[0].pk)},
        {"event_type": "view", "product_id": "999999"},
        view(catalogue[0], timestamp=future),
        {"event_type": "rating", "product_id": str(catalogue[0].pk), "value": 9},
        {"event_type": "view", "product_id": str(catalogue[0].pk), "colour": "red"},
        {"event_type": "view"},
        "not an object",
        {"event_type": "impression", "products": ["999999"]},
        view(catalogue[0], revenue="lots", event_id="bad id with spaces"),
    ]
    response = post(client, {"events": events}, api_key)
    assert response.status_code == 400
    body = response.json()
    assert "9 of 10 events are invalid" in body["detail"]
    errors = {e["index"]: e["errors"] for e in body["errors"]}
    assert set(errors) == {1, 2, 3, 4, 5, 6, 7, 8, 9}
    assert "teleport" in errors[1]["event_type"][0]
    assert "999999" in errors[2]["product_id"][0]
    assert "future" in errors[3]["timestamp"][0]
    assert "1 to 5" in errors[4]["value"][0]
    assert "colour" in errors[5]["non_field_errors"][0]
    assert "required" in errors[6]["product_id"][0]
    assert "object" in errors[7]["non_field_errors"][0]
    assert "999999" in errors[8]["products"][0]
    assert set(errors[9]) == {"revenue", "event_id"}
    assert not Event.objects.exists()


@pytest.mark.django_db
def test_what_postgresql_cannot_store_is_refused_by_field_not_by_the_database(client, catalogue, api_key):
    """A NUL character (text and jsonb refuse it) and a time before 1970 (before year 1 it cannot
    even be read back) get the batch's 400 naming the event and field, not a 500 at COPY time."""
    events = [
        view(catalogue[0], event_id="ok-1"),
        {"event_type": "search", "query": "a\u0000b"},
        view(catalogue[0], context={"review": {"text\u0000": "fine"}}),
        view(catalogue[0], session_id="s\u0000", recommendation_id="r\u0000"),
        {"event_type": "view", "product_id": f"{catalogue[0].pk}\u0000"},
        view(catalogue[0], timestamp="0001-01-01T00:00:00+05:00"),
        view(catalogue[0], timestamp=0),
    ]
    response = post(client, {"events": events}, api_key)  # json.dumps writes NUL as \\u0000
    assert response.status_code == 400, response.content[:300]
    errors = {e["index"]: e["errors"] for e in response.json()["errors"]}
    assert set(errors) == {1, 2, 3, 4, 5, 6}
    assert "NUL" in errors[1]["query"][0] and "NUL" in errors[2]["context"][0]
    assert set(errors[3]) == {"session_id", "recommendation_id"}
    assert "product" in errors[4]["product_id"][0]
    assert "1970" in errors[5]["timestamp"][0] and "1970" in errors[6]["timestamp"][0]
    assert not Event.objects.exists()


@pytest.mark.django_db
def test_keys_beyond_their_integer_columns_are_unknown_keys_not_a_500(client, catalogue, api_key):
    """PostgreSQL refused the whole lookup ("bigint out of range") for one key too large for
    its column (products and stores: bigint; users: integer), and the batch was a 500."""
    beyond_bigint, beyond_integer = str(2**63), str(2**31)
    events = [
        {"event_type": "store_view", "store_id": "99999999999999999999"},
        {"event_type": "impression", "products": [str(catalogue[0].pk), "99999999999999999999"]},
        {"event_type": "view", "product_id": beyond_bigint},
        view(catalogue[0], user_id=beyond_integer),
    ]
    response = post(client, {"events": events}, api_key)
    assert response.status_code == 400, response.content[:300]
    errors = [e["errors"] for e in response.json()["errors"]]
    assert errors == [
        {"store_id": ["no store has the primary key '99999999999999999999'"]},
        {"products": ["unknown product(s): 99999999999999999999"]},
        {"product_id": [f"no product has the primary key '{beyond_bigint}'"]},
        {"user_id": [f"no user has the primary key '{beyond_integer}'"]},
    ]
    assert not Event.objects.exists()


@pytest.mark.django_db
@override_settings(
    RECOMMENDATIONS={"PRODUCT_MODEL": "shop.Product", "STORE_MODEL": "shop.Store", "MAX_BATCH_BYTES": 2000}
)
def test_oversize_body_is_413_before_parsing(client, catalogue, api_key):
    body = {"events": [view(catalogue[0], context={"pad": "x" * 3000})]}
    response = post(client, body, api_key)
    assert response.status_code == 413
    assert "2000 bytes" in response.json()["detail"]
    # The cap holds before authentication too: no key, still 413.
    assert post(client, body).status_code == 413


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        ("[1, 2]", '"events" list'),
        ('{"events": {}}', '"events" list'),
        ('{"events": []}', "empty"),
        ('{"events": [], "extra": 1}', "Unknown top-level"),
        ('{"events": [{"event_type": "search", "query": "q"}], "sent_at": "soon"}', "sent_at 'soon' is not"),
        ('{"events": [{"event_type": "search", "query": "q", "value": NaN}]}', "not valid JSON"),
    ],
)
def test_malformed_bodies_are_400(client, api_key, body, message):
    response = post(client, body, api_key)
    assert response.status_code == 400
    assert message in response.json()["detail"]


@pytest.mark.django_db
def test_more_than_max_batch_events_is_refused(client, catalogue, api_key):
    events = [view(catalogue[0]) for _ in range(501)]
    response = post(client, {"events": events}, api_key)
    assert response.status_code == 400 and "at most 500" in response.json()["detail"]


@pytest.mark.django_db
@override_settings(
    RECOMMENDATIONS={
        "PRODUCT_MODEL": "shop.Product",
        "API_THROTTLE_RATES": {"api_key": "2/minute", "user": "2/minute", "anonymous": "2/minute"},
    }
)
def test_requests_are_throttled_per_key(client, catalogue, api_key):
    _, other_key = ApiKey.objects.create_key("other", ["events:write"])
    statuses = [post(client, {"events": [view(catalogue[0])]}, api_key).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert post(client, {"events": [view(catalogue[0])]}, other_key).status_code == 200


@pytest.mark.django_db
def test_openapi_schema_documents_the_endpoint(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    operation = json.loads(response.content)["paths"]["/api/events/"]["post"]
    assert set(operation["responses"]) >= {"200", "400", "413"}
    schema_ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert schema_ref.endswith("EventBatchSchema")
