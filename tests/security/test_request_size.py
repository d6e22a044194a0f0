"""Request size caps enforced by the views themselves, before any work is done."""

import json

import pytest
from django.conf import settings
from django.test import override_settings

from recommendations.models import Event
from tests.security.clients import browser, with_key

pytestmark = pytest.mark.django_db
SMALL_CAP = {**settings.RECOMMENDATIONS, "MAX_BATCH_BYTES": 4000, "MAX_BATCH_EVENTS": 20}


def events(n, product):
    return {"events": [{"event_type": "view", "product_id": product.pk} for _ in range(n)]}


def test_event_batches_are_capped_in_bytes_and_in_events(make_key, products):
    client = with_key(make_key("events:write"))
    with override_settings(RECOMMENDATIONS=SMALL_CAP):
        padded = {
            "events": [{"event_type": "view", "product_id": products[0].pk, "context": {"pad": "x" * 5000}}]
        }
        too_big = client.post("/api/events/", json.dumps(padded), content_type="application/json")
        assert too_big.status_code == 413 and "at most 4000 bytes" in too_big.json()["detail"]
        too_many = client.post(
            "/api/events/", json.dumps(events(21, products[0])), content_type="application/json"
        )
        assert too_many.status_code == 400 and "at most 20" in too_many.json()["detail"]
        assert client.post(
            "/api/events/", json.dumps(events(20, products[0])), content_type="application/json"
        ).status_code in (200, 201)
    assert Event.objects.count() == 20


def test_the_byte_cap_is_checked_before_the_body_is_read(make_key):
    """A client announcing a huge body is refused from its headers alone."""
    client = with_key(make_key("events:write"))
    response = client.post("/api/events/", "{}", content_type="application/json", CONTENT_LENGTH=str(10**9))
    assert response.status_code == 413


def test_lists_and_texts_in_recommendation_requests_are_capped(make_key, products):
    client = with_key(make_key("recommendations:read"))
    ids = [str(products[0].pk)] * 10_000
    rerank = client.post(
        "/api/recommendations/rerank/", {"product_ids": ids}, content_type="application/json"
    )
    assert rerank.status_code == 400 and "product_ids" in rerank.json()
    assert client.get("/api/search/", {"q": "mug" * 1000}).status_code == 400
    assert client.get("/api/recommendations/trending/", {"limit": 10**6}).status_code == 400


def test_bodies_past_djangos_upload_limit_are_a_json_413(make_key, staff):
    """Django refuses them as a view reads them, which DRF does not handle: they were Django's
    HTML 400 page. The events' own byte cap is higher here, so Django's limit refuses first."""
    huge = json.dumps({"product_ids": ["1"] * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE // 4)})
    key, admin = with_key(make_key("recommendations:read", "events:write")), browser(staff)
    caps = {**settings.RECOMMENDATIONS, "MAX_BATCH_BYTES": settings.DATA_UPLOAD_MAX_MEMORY_SIZE * 2}
    with override_settings(RECOMMENDATIONS=caps):
        for client, url in (
            (key, "/api/recommendations/rerank/"),
            (key, "/api/events/"),
            (admin, "/api/campaigns/"),
        ):
            response = client.post(url, huge, content_type="application/json")
            assert response.status_code == 413, url
            assert "DATA_UPLOAD_MAX_MEMORY_SIZE" in response.json()["detail"], url


def test_more_query_parameters_than_django_parses_are_a_json_400(make_key):
    client = with_key(make_key("recommendations:read"))
    query = "&".join(["explain=1"] * (settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1))
    response = client.get(f"/api/recommendations/trending/?{query}")
    assert response.status_code == 400
    assert "DATA_UPLOAD_MAX_NUMBER_FIELDS" in response.json()["detail"]


def test_json_nested_too_deep_is_a_400_not_a_500(staff):
    """Python's json module recurses once per level: a 10 KB body of brackets raised
    RecursionError, a 500, from the re-ranking any browser session may post (and from the
    campaign and experiment APIs)."""
    nested = "[" * 5000 + "]" * 5000
    anonymous, admin = browser(), browser(staff)
    for client, url, field in (
        (anonymous, "/api/recommendations/rerank/", "product_ids"),
        (admin, "/api/campaigns/", "name"),
        (admin, "/api/experiments/", "name"),
    ):
        response = client.post(url, f'{{"{field}": {nested}}}', content_type="application/json")
        assert response.status_code == 400, url
        assert "nested too deeply" in response.json()["detail"], url
