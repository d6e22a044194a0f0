"""The REST surface: every endpoint, permissions, errors, schema and docs."""

import re

import jsonschema
import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from recommendations.models import ApiKey, ServedRecommendation
from recommendations.serving.statistics import refresh_statistics
from shop.models import Product
from tests.serving.conftest import TITLES, add_event

pytestmark = pytest.mark.django_db


@pytest.fixture
def client():
    return APIClient()


def key_client(*scopes: str) -> APIClient:
    _, raw = ApiKey.objects.create_key("test", list(scopes))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")
    return client


def test_for_you_for_the_signed_in_user(client, catalog, model):
    client.force_login(catalog.users["alice"])
    response = client.get("/api/recommendations/for-you/", {"limit": 3, "explain": "1"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["kind"] == "for_you" and body["model_version"] == model.pk
    assert [item["title"] for item in body["results"]] and {i["title"] for i in body["results"]} <= set(
        TITLES["Face"]
    )
    first = body["results"][0]
    assert first["store"] == "Face Store" and first["category"] == ["Beauty", "Face"]
    assert first["reason"] == "Picked for you" and first["recommendation_id"] == body["recommendation_id"]
    assert first["url"].startswith("/product/")
    served = ServedRecommendation.objects.get(pk=body["recommendation_id"])
    assert served.user == catalog.users["alice"] and served.product_ids == [i["id"] for i in body["results"]]


def test_reasons_only_with_explain(client, catalog, model):
    body = client.get("/api/recommendations/trending/").json()
    assert all("reason" not in item for item in body["results"])


ENDPOINTS = [
    "/api/recommendations/for-you/",
    "/api/recommendations/similar/{product}/",
    "/api/recommendations/bought-together/{product}/",
    "/api/recommendations/trending/",
    "/api/recommendations/new/",
    "/api/recommendations/recently-viewed/",
    "/api/recommendations/buy-again/",
    "/api/recommendations/stores/",
    "/api/recommendations/similar-stores/{store}/",
    "/api/recommendations/store-products/{store}/",
    "/api/search/?q=serum",
]


@pytest.mark.parametrize("with_model", [True, False], ids=["model", "no-model"])
@pytest.mark.parametrize("url", ENDPOINTS)
def test_every_endpoint_answers_with_and_without_a_model(client, catalog, request, url, with_model):
    if with_model:
        request.getfixturevalue("model")
    add_event(catalog, "purchase", "Argan shampoo", user="bob")
    add_event(catalog, "purchase", "Argan shampoo", user="bob")
    add_event(catalog, "view", "Vitamin C serum", user="bob")
    refresh_statistics()
    client.force_login(catalog.users["bob"])
    path = url.format(product=catalog.id("Argan shampoo"), store=catalog.stores["Face"].pk)
    response = client.get(path)
    assert response.status_code == 200, response.content
    assert response.json()["results"], f"{path} returned nothing"


def test_other_users_recommendations_need_staff_or_scope(client, catalog, model):
    alice = catalog.users["alice"].pk
    client.force_login(catalog.users["bob"])
    refused = client.get("/api/recommendations/for-you/", {"user": alice})
    assert refused.status_code == 403 and "only get your own" in refused.json()["detail"]
    assert client.get("/api/recommendations/for-you/", {"session_id": "someone-else"}).status_code == 403

    client.force_login(catalog.users["staff"])
    assert client.get("/api/recommendations/for-you/", {"user": alice}).status_code == 200

    # Staff need what the admin's "preview as user" needs: it shows the same lists.
    clerk = get_user_model().objects.create_user("clerk", is_staff=True)
    client.force_login(clerk)
    refused = client.get("/api/recommendations/for-you/", {"user": alice})
    assert refused.status_code == 403 and "recommendations.view_userpreview" in refused.json()["detail"]
    clerk.user_permissions.add(Permission.objects.get(codename="view_userpreview"))
    assert client.get("/api/recommendations/for-you/", {"user": alice}).status_code == 200

    client.force_login(catalog.users["alice"])
    assert client.get("/api/recommendations/for-you/", {"user": alice}).status_code == 200


def test_api_keys_need_the_read_scope(catalog, model):
    alice = catalog.users["alice"].pk
    refused = key_client("events:write").get("/api/recommendations/for-you/", {"user": alice})
    assert refused.status_code == 403 and "recommendations:read" in refused.json()["detail"]
    allowed = key_client("recommendations:read").get("/api/recommendations/for-you/", {"user": alice})
    assert allowed.status_code == 200
    assert {i["title"] for i in allowed.json()["results"][:3]} <= set(TITLES["Face"])


def test_unknown_ids_are_404_with_a_message(client, catalog):
    client.force_login(catalog.users["staff"])
    for path, text in [
        ("/api/recommendations/similar/999999/", "No product with id '999999'"),
        ("/api/recommendations/similar/not-a-number/", "No product with id 'not-a-number'"),
        ("/api/recommendations/bought-together/999999/", "No product"),
        ("/api/recommendations/similar-stores/999999/", "No store with id '999999'"),
        ("/api/recommendations/store-products/999999/", "No store"),
        ("/api/recommendations/for-you/?user=999999", "No user with id '999999'"),
        ("/api/recommendations/for-you/?user=abc", "No user with id 'abc'"),
        # Beyond the key column's range: not a database error, simply no such user or product.
        ("/api/recommendations/for-you/?user=99999999999999999999", "No user with id"),
        ("/api/recommendations/similar/-99999999999999999999/", "No product with id"),
    ]:
        response = client.get(path)
        assert response.status_code == 404, path
        assert text in response.json()["detail"], path


@pytest.mark.parametrize("debug", [False, True])
def test_paths_that_name_no_endpoint_are_a_json_404(client, catalog, settings, debug):
    """Django answered these with its HTML 404 page, and a POST without its trailing slash with
    APPEND_SLASH's redirect (301; under DEBUG a RuntimeError, a 500)."""
    settings.DEBUG = debug
    docs = "The API's endpoints are listed at /api/docs/."
    slash = "API paths end in /: did you mean {}/?"
    for method, path, hint in [
        ("get", "/api/campaigns/abc/audience/", docs),
        ("get", "/api/recommendations/similar/", docs),
        ("delete", "/api/recommendations/nothing-here", docs),
        ("post", "/api/events", slash.format("/api/events")),
        ("get", "/api/recommendations/trending", slash.format("/api/recommendations/trending")),
    ]:
        response = getattr(client, method)(path)
        assert response.status_code == 404, path
        assert response.json() == {"detail": f"Not found: {method.upper()} {path}. {hint}"}


def test_paths_outside_the_apis_own_segments_are_left_to_the_host(client):
    """The JSON 404 answers only under the API's own first segments: a host's paths of its own
    under `api/`, after the include, still reach the host's URLs."""
    response = client.get("/api/host-endpoint/")
    assert response.status_code == 404
    assert not response.headers["Content-Type"].startswith("application/json")


def test_a_store_named_with_leading_zeros_is_not_like_itself(client, catalog, model):
    for title in catalog.products:  # every store is popular, this one too
        add_event(catalog, "purchase", title, session="shopper")
    refresh_statistics()
    hair = catalog.stores["Hair"].pk

    def similar(key: str) -> list[tuple[str, str]]:
        body = client.get(f"/api/recommendations/similar-stores/{key}/", {"explain": "1"}).json()
        return [(item["id"], item["reason"]) for item in body["results"]]

    found = similar(f"0{hair}")
    assert str(hair) not in [store for store, _ in found]
    assert found == similar(str(hair))
    assert {reason for _, reason in found} == {"Similar to Hair Store"}


@pytest.mark.parametrize("with_model", [True, False], ids=["model", "no-model"])
def test_a_store_with_nothing_to_buy_is_not_recommended(client, catalog, request, with_model):
    """The hair store is the most popular, but its products are sold out or withdrawn: no list
    of stores sends shoppers there, until one is back in stock."""
    if with_model:
        request.getfixturevalue("model")
    for title in catalog.products:
        add_event(catalog, "purchase", title, session="shopper")
    for title in TITLES["Hair"]:
        add_event(catalog, "purchase", title, session="fan")
    refresh_statistics()
    hair, face = str(catalog.stores["Hair"].pk), catalog.stores["Face"].pk
    Product.objects.filter(store=catalog.stores["Hair"]).update(stock=0)
    Product.objects.filter(title="Argan shampoo").update(stock=4, is_active=False)

    def listed() -> dict[str, list[str]]:
        paths = {
            "stores": "/api/recommendations/stores/",
            "similar": f"/api/recommendations/similar-stores/{face}/",
        }
        return {
            name: [item["id"] for item in client.get(path).json()["results"]] for name, path in paths.items()
        }

    assert all(hair not in ids and ids for ids in listed().values())
    Product.objects.filter(title="Keratin conditioner").update(stock=2)
    assert all(hair in ids for ids in listed().values())


def test_naming_a_user_costs_no_query_of_its_own(catalog, model):
    """The user's row is looked for in the same query as their history."""
    client = key_client("recommendations:read")
    add_event(catalog, "view", "Vitamin C serum", user="bob")
    for user, status in ((catalog.users["bob"].pk, 200), (999999, 404)):
        with CaptureQueriesContext(connection) as queries:
            response = client.get("/api/recommendations/for-you/", {"user": user, "explain": 1})
        assert response.status_code == status, response.content
        reads = [q["sql"] for q in queries.captured_queries if '"auth_user"' in q["sql"]]
        assert len(reads) == 1 and "recommendations_event" in reads[0]
        if status == 200:  # the same read gave the user's history
            assert response.json()["results"][0]["reason"] == "Because you viewed Vitamin C serum"


def test_a_hosts_opt_out_check_is_only_asked_about_users_that_exist(catalog, settings):
    settings.RECOMMENDATIONS = {
        **settings.RECOMMENDATIONS,
        "OPT_OUT_CHECK": "tests.serving.test_api.host_check",
    }
    client = key_client("recommendations:read")
    assert client.get("/api/recommendations/for-you/", {"user": 999999}).status_code == 404
    assert client.get("/api/recommendations/for-you/", {"user": catalog.users["bob"].pk}).status_code == 200


def host_check(user) -> bool:
    """A host's check that reads its own user row (and fails for users that do not exist)."""
    return get_user_model()._default_manager.get(pk=user.pk).last_name == "no-personalisation"


def test_bad_parameters_are_400_listing_each(client, catalog):
    response = client.get("/api/recommendations/trending/", {"limit": "0", "explain": "maybe", "limt": "5"})
    assert response.status_code == 400
    errors = response.json()
    assert set(errors) == {"limt"}  # unknown names first: a typo is never silently ignored
    response = client.get("/api/recommendations/trending/", {"limit": "0", "explain": "maybe"})
    assert set(response.json()) == {"limit", "explain"}
    assert client.get("/api/search/").status_code == 400
    # Only the lists that keep to a category take one; the others say so rather than ignore it.
    trending = client.get("/api/recommendations/trending/", {"category": "Hair"})
    assert trending.status_code == 200 and {r["category"][-1] for r in trending.json()["results"]} == {"Hair"}
    similar = client.get(f"/api/recommendations/similar/{catalog.id('Argan shampoo')}/", {"category": "Face"})
    assert similar.status_code == 400 and "Unknown parameter" in similar.json()["category"][0]
    long_query = client.get("/api/search/", {"q": "x" * 300})
    assert long_query.status_code == 400 and "q" in long_query.json()


def test_a_format_no_renderer_writes_is_a_406_naming_those_it_does(client, catalog):
    """DRF answered `?format=xml` with a 404 "Not found." of an endpoint that exists, and an
    Accept header it cannot satisfy with a 406 that did not say what it could send."""
    client.force_login(catalog.users["staff"])
    for url in ("/api/recommendations/trending/", "/api/campaigns/for-me/", "/api/campaigns/"):
        response = client.get(url, {"format": "xml"})
        assert response.status_code == 406, url
        assert response.json()["detail"] == "No format 'xml' here: use one of json, api.", url
        response = client.get(url, HTTP_ACCEPT="application/xml")
        assert response.status_code == 406, url
        assert "accept one of application/json, text/html (or */*)" in response.json()["detail"], url
    # The schema, drf-spectacular's view, negotiates as the engine's do (it was DRF's 404).
    schema = client.get("/api/schema/", {"format": "xml"})
    assert schema.status_code == 406 and b"here: use one of yaml, json." in schema.content
    # The events' body is read before the format is negotiated: a good batch meets the 406.
    view = {"events": [{"event_type": "view", "product_id": catalog.id("Argan shampoo")}]}
    assert client.post("/api/events/?format=xml", view, format="json").status_code == 406


def test_a_wrong_method_or_body_type_is_told_what_to_send(client, catalog):
    """DRF's 405 and 415 named what was wrong ('Method "GET" not allowed.'), not what to send."""
    client.force_login(catalog.users["staff"])
    for method, url, allowed in (
        ("get", "/api/recommendations/rerank/", "POST"),
        ("post", "/api/recommendations/for-you/", "GET"),
        ("get", "/api/events/", "POST"),
        ("post", "/api/campaigns/1/", "GET or PUT or PATCH or DELETE"),
    ):
        response = getattr(client, method)(url)
        assert response.status_code == 405, url
        assert response.json()["detail"] == f'Method "{method.upper()}" not allowed here: use {allowed}.', url
    response = client.post("/api/recommendations/rerank/", "x", content_type="text/plain")
    assert response.status_code == 415
    assert response.json()["detail"] == (
        'Unsupported media type "text/plain" in request. Send Content-Type: application/json or '
        "application/x-www-form-urlencoded or multipart/form-data."
    )


def test_rerank_endpoint(client, catalog, model):
    client.force_login(catalog.users["alice"])
    given = catalog.ids("Argan shampoo", "Clay face mask", "Red nail polish")
    response = client.post("/api/recommendations/rerank/", {"product_ids": given}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["results"][0]["title"] == "Clay face mask"
    # What no list shows now is left out, as its schema says.
    Product.objects.filter(title="Red nail polish").update(stock=0)
    available = client.post("/api/recommendations/rerank/", {"product_ids": given}, format="json")
    assert {item["title"] for item in available.json()["results"]} == {"Argan shampoo", "Clay face mask"}
    unknown = client.post("/api/recommendations/rerank/", {"product_ids": [*given, "999999"]}, format="json")
    assert unknown.status_code == 404 and "999999" in unknown.json()["detail"]
    empty = client.post("/api/recommendations/rerank/", {"product_ids": []}, format="json")
    assert empty.status_code == 400 and "product_ids" in empty.json()
    for body in ("null", "false", "[1, 2]"):
        wrong = client.post("/api/recommendations/rerank/", body, content_type="application/json")
        assert wrong.status_code == 400 and "Send a JSON object" in wrong.json()["non_field_errors"][0], body


def test_exclude_parameter(client, catalog, model):
    client.force_login(catalog.users["alice"])
    first = client.get("/api/recommendations/for-you/", {"limit": 1}).json()["results"][0]["id"]
    again = client.get("/api/recommendations/for-you/", {"limit": 3, "exclude": f"{first},999"}).json()
    assert first not in [item["id"] for item in again["results"]]
    # Spelled as a URL may spell it ("06" for 6), an id is left out all the same; the store
    # lists take store ids.
    again = client.get("/api/recommendations/for-you/", {"limit": 3, "exclude": f"0{first},x"}).json()
    assert first not in [item["id"] for item in again["results"]]
    store = client.get("/api/recommendations/stores/", {"limit": 1}).json()["results"][0]["id"]
    others = client.get("/api/recommendations/stores/", {"exclude": f"00{store}"}).json()["results"]
    assert others and store not in [item["id"] for item in others]


def test_a_parameter_given_twice_is_a_400_not_the_last_one(client, catalog, model):
    """A query string keeps the last of a repeated name: `?exclude=1&exclude=2`, how HTTP
    libraries send a list, excluded only 2. Lists (re-ranking's product_ids) may repeat."""
    first, second = catalog.ids("Argan shampoo", "Vitamin C serum")
    repeated = client.get(f"/api/recommendations/trending/?exclude={first}&exclude={second}&limit=2&limit=3")
    assert repeated.status_code == 400
    assert set(repeated.json()) == {"exclude", "limit"}
    assert "separated by commas" in repeated.json()["exclude"][0]
    assert client.get("/api/campaigns/for-me/?limit=1&limit=2").status_code == 400
    form = client.post(
        "/api/recommendations/rerank/",
        f"product_ids={first}&product_ids={second}",
        content_type="application/x-www-form-urlencoded",
    )
    assert form.status_code == 200 and {item["id"] for item in form.json()["results"]} == {first, second}


def test_search_endpoint_tolerates_typos(client, catalog):
    body = client.get("/api/search/", {"q": "shampo", "explain": "true"}).json()
    assert {item["title"] for item in body["results"]} == {"Argan shampoo", "Dry shampoo spray"}
    assert body["results"][0]["reason"] == "Close to “shampo”"  # a near spelling, not the word


def test_schema_documents_the_endpoints_and_docs_work_offline(client, catalog):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    for path in (
        "/api/recommendations/for-you/",
        "/api/recommendations/similar/{product_id}/",
        "/api/search/",
    ):
        assert path in schema["paths"], path
    params = {p["name"] for p in schema["paths"]["/api/search/"]["get"]["parameters"]}
    assert {"q", "limit", "explain", "user"} <= params and "category" not in params
    trending = {p["name"] for p in schema["paths"]["/api/recommendations/trending/"]["get"]["parameters"]}
    assert "category" in trending
    # What every call may answer, besides its own responses.
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            if path.startswith(
                ("/api/recommendations/", "/api/search/", "/api/events/", "/api/campaigns/for-me/")
            ):
                assert {"401", "429"} <= set(operation["responses"]), (method, path)
    assert {"403", "404"} <= set(schema["paths"]["/api/recommendations/rerank/"]["post"]["responses"])
    for page in ("/api/docs/", "/api/redoc/"):
        html = client.get(page).content.decode()
        assert "drf_spectacular_sidecar" in html and "cdn." not in html, page
        # Pages to read: OPTIONS was a 500 from the Swagger page (a client's or crawler's probe).
        assert client.options(page).status_code == 405, page


def json_schema(node):
    """OpenAPI 3.0's schema objects as JSON Schema: `nullable: true` becomes "or null", and an
    object takes only the properties it names (drf-spectacular leaves that open)."""
    if isinstance(node, list):
        return [json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: json_schema(value) for key, value in node.items()}
    if "properties" in node:
        node.setdefault("additionalProperties", False)
    if node.pop("nullable", False):
        return {"anyOf": [node, {"type": "null"}]}
    return node


class PublishedSchema:
    """/api/schema/ as a client generated from it reads it: each answer must be a documented
    status and media type of its operation, and a JSON body must match that response's schema,
    with no field the schema does not name."""

    def __init__(self, document: dict):
        self.document = document
        self.components = json_schema(document["components"])
        self.checked: set[tuple[str, str, int]] = set()

    def operation(self, method: str, path: str) -> tuple[str, dict]:
        # A literal path (campaigns/for-me/) wins over a template (campaigns/{id}/).
        for template in sorted(self.document["paths"], key=lambda t: t.count("{")):
            if re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", template), path):
                return template, self.document["paths"][template][method]
        raise AssertionError(f"{method.upper()} {path} is not in the schema")

    def check(self, response, status: int) -> None:
        method, path = response.request["REQUEST_METHOD"].lower(), response.request["PATH_INFO"]
        where = f"{method.upper()} {path}"
        assert response.status_code == status, (where, response.content[:500])
        template, operation = self.operation(method, path)
        documented = operation["responses"].get(str(status))
        assert documented is not None, f"{where}: {status} is not documented"
        self.checked.add((method, template, status))
        if not response.content:
            assert "content" not in documented, f"{where}: documents a body, answered none"
            return
        media_type = response["Content-Type"].split(";")[0]
        content = documented.get("content", {})
        assert media_type in content, f"{where}: {status} {media_type} is not documented"
        if media_type == "application/json":
            schema = {"allOf": [json_schema(content[media_type]["schema"])], "components": self.components}
            errors = [e.message for e in jsonschema.Draft4Validator(schema).iter_errors(response.json())]
            assert not errors, (where, status, errors)


def test_every_answer_matches_the_published_schema(catalog, model, settings):
    """Every operation, its success and the errors it really answers, against /api/schema/."""
    schema = PublishedSchema(APIClient().get("/api/schema/", HTTP_ACCEPT="application/json").json())
    alice, staff, anonymous = APIClient(), APIClient(), APIClient()
    alice.force_login(catalog.users["alice"])
    staff.force_login(catalog.users["staff"])
    read_key, events_key = key_client("recommendations:read"), key_client("events:write")
    audiences_key = key_client("audiences:read")
    bad_key = APIClient()
    bad_key.credentials(HTTP_AUTHORIZATION="Api-Key not-a-key")
    product, store = catalog.id("Argan shampoo"), catalog.stores["Face"].pk
    add_event(catalog, "purchase", "Argan shampoo", user="alice")
    add_event(catalog, "view", "Vitamin C serum", user="alice")
    refresh_statistics()

    # Recommendations and search: each list, then each kind of refusal.
    for path in ENDPOINTS:
        url = path.format(product=product, store=store)
        schema.check(alice.get(url), 200)
        schema.check(alice.get(f"{url}{'&' if '?' in url else '?'}explain=1"), 200)
    schema.check(alice.post("/api/recommendations/rerank/", {"product_ids": [product]}, format="json"), 200)
    schema.check(anonymous.get("/api/recommendations/trending/", {"limit": "0", "limt": "1"}), 400)
    schema.check(read_key.get("/api/recommendations/for-you/", {"user": 999999}), 404)
    schema.check(alice.get("/api/recommendations/similar/999999/"), 404)
    schema.check(alice.get("/api/recommendations/for-you/", {"user": catalog.users["bob"].pk}), 403)
    schema.check(events_key.get("/api/recommendations/trending/"), 403)
    schema.check(bad_key.get("/api/recommendations/trending/"), 401)
    schema.check(alice.post("/api/recommendations/rerank/", {"product_ids": []}, format="json"), 400)
    schema.check(alice.post("/api/recommendations/rerank/", {"product_ids": ["999999"]}, format="json"), 404)
    schema.check(alice.post("/api/recommendations/rerank/", "x", content_type="text/plain"), 415)
    past_upload_limit = {"product_ids": ["1"] * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE // 4)}
    schema.check(alice.post("/api/recommendations/rerank/", past_upload_limit, format="json"), 413)
    schema.check(alice.get("/api/search/"), 400)
    schema.check(alice.get("/api/recommendations/trending/", {"format": "xml"}), 406)
    schema.check(read_key.get("/api/search/", {"q": "x", "user": 999999}), 404)

    # Events.
    events = {"events": [{"event_type": "view", "product_id": product}]}
    schema.check(events_key.post("/api/events/", events, format="json"), 200)
    schema.check(events_key.post("/api/events/", {"events": [{"event_type": "?"}]}, format="json"), 400)
    schema.check(events_key.post("/api/events/", "not json", content_type="application/json"), 400)
    schema.check(read_key.post("/api/events/", events, format="json"), 403)
    too_big = {"events": [{"event_type": "view", "product_id": "1" * 1_000_000}]}
    schema.check(events_key.post("/api/events/", too_big, format="json"), 413)

    # Campaigns: a promotion with no end date, shown to anyone.
    promotion = {"name": "Face week", "kind": "promotion", "category_names": ["Face"]}
    created = staff.post("/api/campaigns/", promotion, format="json")
    schema.check(created, 201)
    campaign = f"/api/campaigns/{created.json()['id']}/"
    for_me = anonymous.get("/api/campaigns/for-me/")
    schema.check(for_me, 200)
    assert [match["ends_at"] for match in for_me.json()["results"]] == [None]
    schema.check(read_key.get("/api/campaigns/for-me/", {"user": 999999}), 404)
    schema.check(alice.get("/api/campaigns/for-me/", {"user": catalog.users["bob"].pk}), 403)
    schema.check(alice.get("/api/campaigns/for-me/", {"limit": "0"}), 400)
    schema.check(staff.post("/api/campaigns/", {**promotion, "priority": "high"}, format="json"), 400)
    schema.check(staff.post("/api/campaigns/", "name=x", content_type="text/plain"), 415)
    schema.check(audiences_key.post("/api/campaigns/", promotion, format="json"), 403)
    schema.check(audiences_key.get("/api/campaigns/"), 200)
    schema.check(anonymous.get("/api/campaigns/"), 403)
    schema.check(bad_key.get("/api/campaigns/"), 401)
    schema.check(staff.get(campaign), 200)
    schema.check(staff.get("/api/campaigns/999999/"), 404)
    schema.check(staff.put(campaign, {**promotion, "priority": 2}, format="json"), 200)
    schema.check(staff.patch(campaign, {"discount_text": "-10%"}, format="json"), 200)
    schema.check(staff.patch(campaign, {"starts_at": "soon"}, format="json"), 400)
    schema.check(staff.patch("/api/campaigns/999999/", {"name": "x"}, format="json"), 404)
    schema.check(staff.get(f"{campaign}audience/"), 200)
    schema.check(audiences_key.get(f"{campaign}audience/", {"format": "csv"}), 200)
    schema.check(audiences_key.get(f"{campaign}audience/", {"format": "csv", "limit": "abc"}), 400)
    schema.check(staff.get(f"{campaign}audience/", {"limit": "abc"}), 400)
    schema.check(read_key.get(f"{campaign}audience/"), 403)
    schema.check(staff.get("/api/campaigns/999999/audience/"), 404)
    schema.check(audiences_key.delete(campaign), 403)
    schema.check(staff.delete(campaign), 204)
    schema.check(staff.delete(campaign), 404)

    # Experiments, through their lifecycle.
    variants = [{"key": "a", "traffic_share": "50", "is_control": True}, {"key": "b", "traffic_share": "50"}]
    body = {"key": "home", "name": "Home page", "variants": variants}
    created = staff.post("/api/experiments/", body, format="json")
    schema.check(created, 201)
    experiment = f"/api/experiments/{created.json()['id']}/"
    uneven = [{**variants[0], "traffic_share": "60"}, variants[1]]
    schema.check(staff.post("/api/experiments/", {**body, "variants": uneven}, format="json"), 400)
    schema.check(staff.post("/api/experiments/", "key=x", content_type="text/plain"), 415)
    schema.check(audiences_key.get("/api/experiments/"), 403)
    schema.check(staff.get("/api/experiments/"), 200)
    schema.check(staff.get(experiment), 200)
    schema.check(staff.get("/api/experiments/999999/"), 404)
    schema.check(staff.put(experiment, {**body, "name": "Home"}, format="json"), 200)
    schema.check(staff.patch(experiment, {"description": "Which list sells more"}, format="json"), 200)
    schema.check(staff.post(f"{experiment}start/"), 200)
    schema.check(staff.post(f"{experiment}start/"), 400)
    schema.check(staff.post("/api/experiments/999999/start/"), 404)
    schema.check(staff.get(f"{experiment}results/"), 200)
    schema.check(staff.get("/api/experiments/999999/results/"), 404)
    schema.check(staff.delete(experiment), 400)
    schema.check(staff.post(f"{experiment}stop/", {"promote": "z"}, format="json"), 400)
    schema.check(staff.post(f"{experiment}stop/", "promote=a", content_type="text/plain"), 415)
    schema.check(audiences_key.post(f"{experiment}stop/", {}, format="json"), 403)
    schema.check(staff.post(f"{experiment}stop/", {"promote": "b"}, format="json"), 200)
    schema.check(staff.get(f"{experiment}results/"), 200)
    schema.check(staff.delete(experiment), 204)

    # Too many requests.
    settings.RECOMMENDATIONS = {
        **settings.RECOMMENDATIONS,
        "API_THROTTLE_RATES": {"api_key": "1/minute", "user": "1/minute", "anonymous": "1/minute"},
    }
    throttled = key_client("recommendations:read")
    schema.check(throttled.get("/api/recommendations/trending/"), 200)
    schema.check(throttled.get("/api/recommendations/trending/"), 429)

    # Every operation was seen to succeed: a new endpoint cannot escape this test.
    operations = {(method, path) for path, methods in schema.document["paths"].items() for method in methods}
    succeeded = {(method, path) for method, path, status in schema.checked if status < 300}
    assert operations == succeeded, operations - succeeded


def test_browsable_api_renders(client, catalog):
    response = client.get("/api/recommendations/trending/", HTTP_ACCEPT="text/html")
    assert response.status_code == 200 and b"Trending" in response.content


def test_lists_render_as_drfs_json_and_indent_on_request(client, catalog, model):
    import datetime as dt
    from decimal import Decimal

    from django.utils.translation import gettext_lazy
    from rest_framework.renderers import JSONRenderer

    from recommendations.api.renderers import FastJSONRenderer

    odd = {
        "price": Decimal("1.20"),
        "at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        "name": gettext_lazy("Shop"),
        "product_ids": {0: ["Not a valid string."]},
    }
    assert FastJSONRenderer().render(odd) == JSONRenderer().render(odd)
    response = client.get("/api/recommendations/trending/")
    assert response["Content-Type"] == "application/json" and response.json()["results"]
    assert response.content.startswith(b'{"recommendation_id":"')  # compact, as DRF writes it
    indented = client.get("/api/recommendations/trending/", HTTP_ACCEPT="application/json; indent=2")
    assert indented.content.startswith(b'{\n  "recommendation_id"')


@pytest.mark.parametrize(
    ("accept", "query"),
    [
        ("", ""),
        ("*/*", ""),
        ("application/json", ""),
        ("application/json; indent=2", ""),
        ("text/html,application/xhtml+xml,*/*;q=0.8", ""),
        ("*/*", "?format=api"),
        ("application/xml", ""),
    ],
)
def test_the_negotiation_shortcut_chooses_as_drf_does(rf, accept, query):
    from rest_framework.exceptions import NotAcceptable
    from rest_framework.negotiation import DefaultContentNegotiation
    from rest_framework.request import Request

    from recommendations.api.negotiation import FirstRendererNegotiation
    from recommendations.api.recommendations import TrendingView

    renderers = [renderer() for renderer in TrendingView.renderer_classes]
    headers = {"HTTP_ACCEPT": accept} if accept else {}
    request = Request(rf.get(f"/api/recommendations/trending/{query}", **headers))

    def choose(negotiation) -> tuple[type, str] | str:
        try:
            renderer, media_type = negotiation().select_renderer(request, renderers)
        except NotAcceptable:  # DRF refuses what it cannot render (406): so must the shortcut
            return "406"
        return type(renderer), media_type

    assert choose(FirstRendererNegotiation) == choose(DefaultContentNegotiation)
