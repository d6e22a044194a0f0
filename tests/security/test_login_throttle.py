"""Sign-ins limit password guesses per username and client address: the shop's form, and
the admin's, which passes through the same authentication backend."""

import time

import pytest
from django.test import Client, override_settings

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"


def sign_in(client: Client, username: str, password: str):
    return client.post(LOGIN, {"username": username, "password": password})


@override_settings(LOGIN_FAILURE_LIMIT=3)
def test_after_too_many_failures_the_form_refuses_even_the_right_password(client, alice):
    for _ in range(3):
        assert sign_in(client, "alice", "guess").status_code == 200
    refused = sign_in(client, "alice", "pw")
    assert refused.status_code == 429 and refused["Retry-After"] == "900"
    assert "Too many failed sign-ins for this account. Wait up to 15 minutes" in refused.content.decode()
    assert "_auth_user_id" not in client.session


@override_settings(LOGIN_FAILURE_LIMIT=3)
def test_the_limit_is_per_username_and_address_and_a_success_clears_it(client, alice, bob):
    for _ in range(2):
        sign_in(client, "alice", "guess")
    assert sign_in(client, "alice", "pw").status_code == 302, "under the limit the right password works"
    client.logout()
    for _ in range(3):
        sign_in(client, "alice", "guess")
    assert sign_in(client, "ALICE", "pw").status_code == 429, "the username's case changes nothing"
    assert sign_in(client, "bob", "pw").status_code == 302, "another username from the same address"
    elsewhere = Client(REMOTE_ADDR="198.51.100.7")
    assert sign_in(elsewhere, "alice", "pw").status_code == 302, "the same username from elsewhere"


@override_settings(LOGIN_FAILURE_LIMIT=2, LOGIN_FAILURE_WINDOW_SECONDS=1)
def test_the_window_closes(client, alice):
    for _ in range(2):
        sign_in(client, "alice", "guess")
    assert sign_in(client, "alice", "pw").status_code == 429
    time.sleep(1.1)
    assert sign_in(client, "alice", "pw").status_code == 302


@override_settings(LOGIN_FAILURE_LIMIT=3)
def test_the_admins_sign_in_is_limited_too(client, django_user_model):
    django_user_model.objects.create_user("ops", password="pw", is_staff=True)
    admin_login = "/admin/login/?next=/admin/"
    for _ in range(3):
        failed = client.post(admin_login, {"username": "ops", "password": "guess"})
        assert failed.status_code == 200 and "_auth_user_id" not in client.session
    refused = client.post(admin_login, {"username": "ops", "password": "pw"})
    assert refused.status_code == 200 and "_auth_user_id" not in client.session, "locked: not checked"
    assert sign_in(client, "ops", "pw").status_code == 429, "one count for both forms"
    elsewhere = Client(REMOTE_ADDR="198.51.100.7")
    assert elsewhere.post(admin_login, {"username": "ops", "password": "pw"}).status_code == 302
