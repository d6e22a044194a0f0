"""Storefront pages answer a database outage with 503 + Retry-After, like the API, through
Django's whole handler (each middleware turns an exception into a 500 response on its own)."""

import pytest
from django.db import OperationalError
from django.http import HttpResponse
from django.urls import include, path

pytestmark = pytest.mark.urls(__name__)


def failing_view(request):
    raise OperationalError("server closed the connection unexpectedly")


def broken_view(request):
    raise ValueError("a bug")


def fine_view(request):
    request.session["seen"] = True
    return HttpResponse("ok")


urlpatterns = [
    path("lost/", failing_view),
    path("broken/", broken_view),
    path("fine/", fine_view),
    path("", include("shop.urls")),
]


class SessionSaveFails:
    """Stands for the session middleware losing the database while saving, after the view."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        self.get_response(request)
        raise OperationalError("terminating connection due to administrator command")


def assert_retry_page(response):
    assert response.status_code == 503
    assert response["Retry-After"].isdigit()
    assert b"retry" in response.content.lower()


@pytest.mark.django_db
def test_a_view_losing_the_connection_is_a_503_page_with_retry_advice(client):
    assert_retry_page(client.get("/lost/"))


@pytest.mark.django_db
def test_an_inner_middleware_losing_the_connection_is_a_503_page(client, settings):
    settings.MIDDLEWARE = [
        settings.MIDDLEWARE[0],
        "tests.reliability.test_page_outage.SessionSaveFails",
        *settings.MIDDLEWARE[1:],
    ]
    client.raise_request_exception = False  # the test client re-raises what Django reported
    assert_retry_page(client.get("/fine/"))


@pytest.mark.django_db
def test_other_errors_are_not_hidden(client):
    client.raise_request_exception = False
    assert client.get("/broken/").status_code == 500


@pytest.mark.django_db
def test_middleware_wraps_the_whole_stack(client, settings):
    assert settings.MIDDLEWARE[0] == "recommendations.middleware.DatabaseUnavailableMiddleware"
    assert client.get("/").status_code == 200
    assert client.get("/fine/").status_code == 200
