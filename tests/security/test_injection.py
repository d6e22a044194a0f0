"""SQL injection: every text parameter of every operation gets classic injection strings.

The operations and their parameters come from the OpenAPI schema, so a new endpoint is
covered without editing this test. Every answer must be a clean 2xx/4xx (never a 500, which
would mean the text reached the database in a form it could not handle), and afterwards
every table is still there with its rows."""

import json
from urllib.parse import quote

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.db import connection
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer

from recommendations.models import Campaign, Event, Experiment
from shop.models import Product
from tests.security.clients import browser

pytestmark = pytest.mark.django_db
PAYLOADS = [
    "' OR '1'='1",
    "1; DROP TABLE recommendations_event; --",
    '") ; DELETE FROM shop_product; --',
    "%' UNION SELECT password, username FROM auth_user --",
    "1' AND 1=(SELECT pg_sleep(3))--",
    "nul\x00byte",
    "\\'; TRUNCATE auth_user CASCADE; --",
]
SPEC = json.loads(OpenApiJsonRenderer().render(SchemaGenerator().get_schema(request=None, public=True)))


def takes_text(operation):
    params = operation.get("parameters", [])
    return "requestBody" in operation or any(p["schema"].get("type") == "string" for p in params)


OPERATIONS = [
    (method.upper(), path, operation)
    for path, methods in SPEC["paths"].items()
    for method, operation in methods.items()
    if method != "delete" and takes_text(operation)
]


def resolve(schema):
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        schema = SPEC["components"]["schemas"][name]
    return schema


def body_with(schema, text):
    """A body shaped as the schema says, with `text` in every string (enums keep a valid value)."""
    schema = resolve(schema)
    if "allOf" in schema or "oneOf" in schema:
        return body_with((schema.get("allOf") or schema["oneOf"])[0], text)
    kind = schema.get("type")
    if "enum" in schema:
        return schema["enum"][0]
    if kind == "object":
        fields = schema.get("properties", {})
        readonly = {name for name, field in fields.items() if resolve(field).get("readOnly")}
        return {name: body_with(field, text) for name, field in fields.items() if name not in readonly}
    if kind == "array":
        return [body_with(schema.get("items", {}), text)]
    return {"integer": 1, "number": 1.5, "boolean": True}.get(kind, text)


@pytest.fixture
def world(products, staff):
    """Rows an injection would destroy: users, products, events, a campaign and an experiment."""
    for product in products:
        Event.objects.create(
            event_type="view", product_id=str(product.pk), session_id="s", timestamp="2026-01-01T00:00Z"
        )
    campaign = Campaign.objects.create(name="Spring", product_ids=[str(products[0].pk)])
    experiment = Experiment.objects.create(key="ranker", name="Ranker")
    return {"id": campaign.pk, "experiment": experiment.pk, "staff": staff}


def requests_for(method, path, operation, ids):
    """(url, body) pairs: one per text parameter and payload, plus one body per payload."""
    params = operation.get("parameters", [])
    integer_paths = {
        p["name"]: ids["experiment" if "experiments" in path else "id"] for p in params if p["in"] == "path"
    }
    required = {p["name"]: "mug" for p in params if p["in"] == "query" and p.get("required")}
    body_schema = (
        operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
    )
    for payload in PAYLOADS:
        texts = [p for p in params if p["schema"].get("type") == "string"]
        for param in texts:
            values = {**integer_paths, **({param["name"]: payload} if param["in"] == "path" else {})}
            url = path.format(**{k: quote(str(v), safe="") for k, v in values.items()})
            query = {**required, **({param["name"]: payload} if param["in"] == "query" else {})}
            yield url, query, None
        if body_schema is not None:
            yield path.format(**integer_paths), required, body_with(body_schema, payload)


@pytest.mark.parametrize(
    ("method", "path", "operation"), OPERATIONS, ids=[f"{m} {p}" for m, p, _ in OPERATIONS]
)
def test_injection_strings_are_answered_cleanly_and_change_nothing(world, method, path, operation):
    client = browser(world["staff"])
    users, products, events = get_user_model().objects.count(), Product.objects.count(), Event.objects.count()
    sent = 0
    for url, query, body in requests_for(method, path, operation, world):
        if method == "GET":
            response = client.get(url, query)
        else:
            target = f"{url}?{'&'.join(f'{k}={quote(v)}' for k, v in query.items())}" if query else url
            response = client.generic(method, target, json.dumps(body or {}), content_type="application/json")
        sent += 1
        assert response.status_code < 500, (url, query, body, response.content[:300])
    assert sent
    assert (get_user_model().objects.count(), Product.objects.count()) == (users, products)
    assert Event.objects.count() >= events and Campaign.objects.filter(pk=world["id"]).exists()
    with connection.cursor() as cursor:
        for model in apps.get_app_config("recommendations").get_models():
            cursor.execute("SELECT to_regclass(%s)", [model._meta.db_table])
            assert cursor.fetchone()[0] is not None, model._meta.db_table
