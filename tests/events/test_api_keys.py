"""API keys: only a hash is stored, the raw key is shown once in the admin, revoking works."""

import hashlib
import re

import pytest
from django.contrib.admin.models import LogEntry

from recommendations.models import ApiKey


@pytest.mark.django_db
def test_only_a_hash_is_stored_and_the_raw_key_finds_its_row():
    api_key, raw = ApiKey.objects.create_key("shop backend", ["events:write"])
    assert raw.startswith(api_key.prefix + ".")
    stored = ApiKey.objects.filter(pk=api_key.pk).values().get()
    assert raw not in str(stored)
    assert stored["key_hash"] == hashlib.sha256(raw.encode()).hexdigest()
    assert ApiKey.objects.get_for_raw_key(raw) == api_key
    assert ApiKey.objects.get_for_raw_key(raw + "x") is None
    assert ApiKey.objects.get_for_raw_key("garbage") is None
    api_key.revoke()
    assert ApiKey.objects.get_for_raw_key(raw) is None


@pytest.mark.django_db
def test_admin_shows_the_new_key_once_and_revokes_keys(admin_client):
    response = admin_client.post(
        "/admin/recommendations/apikey/add/",
        {"name": "warehouse", "scopes": ["events:write", "audiences:read"]},
    )
    assert response.status_code == 200  # the key is on this page, not carried to the next
    api_key = ApiKey.objects.get()  # one row, made by create_key
    assert (api_key.name, api_key.scopes) == ("warehouse", ["events:write", "audiences:read"])
    added = LogEntry.objects.get()
    assert (added.object_id, added.object_repr) == (str(api_key.pk), str(api_key))
    shown = response.content.decode()
    assert "Copy the key now" in shown
    raw = re.search(r'id="raw-key" type="text" readonly value="([^"]+)"', shown).group(1)
    assert ApiKey.objects.get_for_raw_key(raw) == api_key
    page = admin_client.get(f"/admin/recommendations/apikey/{api_key.pk}/change/").content.decode()
    assert raw not in page and api_key.prefix in page

    response = admin_client.post(
        "/admin/recommendations/apikey/",
        {"action": "revoke", "_selected_action": [api_key.pk]},
        follow=True,
    )
    assert "Revoked 1 API key(s)" in response.content.decode()
    api_key.refresh_from_db()
    assert not api_key.is_active


@pytest.mark.django_db
def test_revoking_from_the_list_of_active_keys_counts_the_keys_it_revoked(admin_client):
    """The action's selection carries the list's filter: "Revoked at: empty" selects no key
    once they are revoked, so the keys are counted before."""
    keys = [ApiKey.objects.create_key(name, ["events:write"])[0] for name in ("a", "b", "c")]
    keys[2].revoke()
    selected = {"action": "revoke", "_selected_action": [k.pk for k in keys]}
    active_only = admin_client.post(
        "/admin/recommendations/apikey/?revoked_at__isempty=1", selected, follow=True
    )
    assert [str(m) for m in active_only.context["messages"]] == ["Revoked 2 API key(s)."]
    again = admin_client.post("/admin/recommendations/apikey/", selected, follow=True)
    assert [str(m) for m in again.context["messages"]] == ["Revoked 0 API key(s); 3 were already revoked."]
    assert not ApiKey.objects.filter(revoked_at__isnull=True).exists()
