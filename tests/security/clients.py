"""HTTP clients as the API's callers are: a storefront browser and a server with an API key."""

from django.middleware.csrf import _get_new_csrf_string
from django.test import Client


def browser(user=None, **headers) -> Client:
    """A browser with a session (if `user`) and a valid CSRF cookie + header, as the storefront has."""
    client = Client(enforce_csrf_checks=True, **headers)
    token = _get_new_csrf_string()
    client.cookies["csrftoken"] = token
    client.defaults["HTTP_X_CSRFTOKEN"] = token
    if user is not None:
        client.force_login(user)
    return client


def with_key(raw: str, **headers) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Api-Key {raw}", **headers)
