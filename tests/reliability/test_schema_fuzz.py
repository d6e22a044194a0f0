"""Schema fuzzing: schemathesis drives every operation of the OpenAPI schema with generated
valid and invalid input (25 examples per operation). No answer may be a 500, and input the
schema calls invalid must be refused with a 4xx."""

import json

import pytest
import schemathesis
from django.conf import settings
from django.core import signals
from django.core.cache import cache
from django.core.handlers.wsgi import WSGIHandler
from django.db import close_old_connections
from django.test import override_settings
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import negative_data_rejection, not_a_server_error

from recommendations.models import ApiKey, Scope
from shop.models import Category, Product, Store

UNTHROTTLED = {
    **settings.RECOMMENDATIONS,
    "API_THROTTLE_RATES": {"api_key": "100000/second", "user": "100000/second", "anonymous": "100000/second"},
}

# The schema the API publishes at /api/schema/, generated in-process; requests go to the app
# through WSGI, on the test's database transaction.
schema = schemathesis.openapi.from_dict(
    json.loads(OpenApiJsonRenderer().render(SchemaGenerator().get_schema(request=None, public=True)))
)
schema.app = WSGIHandler()
schema.config.phases.update(phases=["examples", "fuzzing"])


@schemathesis.check
def invalid_input_refused(ctx, response, case):
    """Schemathesis' negative-data check, except for blank query values: DRF, like any HTML
    form handling, reads `?user=` as "not given", so the request is valid as sent."""
    if any(value == "" for value in (case.query or {}).values()):
        return None
    return negative_data_rejection(ctx, response, case)


@pytest.fixture
def api_key(db):
    """A key with every scope, so the fuzzer reaches each operation's validation."""
    store = Store.objects.create(name="Clay", slug="clay")
    category = Category.objects.create(name="Mugs")
    for i in range(3):
        Product.objects.create(
            title=f"Mug {i}", slug=f"mug-{i}", category=category, store=store, price=5, stock=3
        )
    _, raw = ApiKey.objects.create_key("fuzzer", [scope.value for scope in Scope])
    cache.clear()
    # As Django's test client does: the request signals must not close the test's connection.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    with override_settings(RECOMMENDATIONS=UNTHROTTLED):
        yield raw
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.mark.django_db
@schema.parametrize()
@hypothesis_settings(
    max_examples=25,
    derandomize=True,  # the same cases on every run: a red CI is reproducible
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
    ],
)
def test_every_operation_answers_without_server_errors(case, api_key):
    case.call_and_validate(
        headers={"Authorization": f"Api-Key {api_key}"},
        checks=[not_a_server_error, invalid_input_refused],
    )
