"""Storefront pages answer a database outage with 503 + Retry-After, like the API."""

import pytest
from django.db import OperationalError
from django.test import RequestFactory

from recommendations.middleware import DatabaseUnavailableMiddleware


def failing_view(request):
    raise OperationalError("server closed the connection unexpectedly")


def test_lost_connection_becomes_503_with_retry_advice():
    middleware = DatabaseUnavailableMiddleware(failing_view)
    response = middleware(RequestFactory().get("/product/tea/"))
    assert response.status_code == 503
    assert response["Retry-After"].isdigit()
    assert b"retry" in response.content.lower()


def test_other_errors_are_not_hidden():
    def broken(request):
        raise ValueError("a bug")

    with pytest.raises(ValueError):
        DatabaseUnavailableMiddleware(broken)(RequestFactory().get("/"))


@pytest.mark.django_db
def test_middleware_wraps_the_whole_stack(client, settings):
    assert settings.MIDDLEWARE[0] == "recommendations.middleware.DatabaseUnavailableMiddleware"
    assert client.get("/").status_code == 200
