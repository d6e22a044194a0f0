"""Opt-out of personalisation: the flag, the host's own check, and no behaviour stored."""

import json

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ImproperlyConfigured
from django.test import RequestFactory, override_settings
from django.urls import reverse

from recommendations.events.tracking import SESSION_KEY, track
from recommendations.models import ApiKey, Event, ServedRecommendation
from recommendations.privacy.optout import is_opted_out, opted_out_user_ids, set_opted_out
from recommendations.serving import products
from recommendations.serving.types import Audience, Options
from shop.models import Category, Product, Store

pytestmark = pytest.mark.django_db
User = get_user_model()


def host_flag(user):
    """A host that keeps the choice on its own user model (here: a marker in last_name)."""
    return user.last_name == "no-personalisation"


HOST_CHECK = {**settings.RECOMMENDATIONS, "OPT_OUT_CHECK": "tests.privacy.test_optout.host_flag"}


@pytest.fixture
def product():
    store = Store.objects.create(name="Clay", slug="clay")
    category = Category.objects.create(name="Mugs")
    return Product.objects.create(title="Mug", slug="mug", category=category, store=store, price=5, stock=3)


@pytest.fixture
def users():
    return User.objects.create_user("private"), User.objects.create_user("open")


def request_for(user):
    request = RequestFactory().get("/product/mug/")
    request.user = user
    request.session = {}
    return request


def test_flag_is_off_by_default_and_remembered(users):
    private, public = users
    assert not is_opted_out(private) and not is_opted_out(None)
    set_opted_out(private)
    assert is_opted_out(private)
    fresh = User.objects.get(pk=private.pk)  # a new request's user object
    assert is_opted_out(fresh) and not is_opted_out(public)
    assert opted_out_user_ids([private.pk, public.pk, None]) == {str(private.pk)}
    set_opted_out(private, False)
    assert not is_opted_out(User.objects.get(pk=private.pk))


def test_the_host_can_keep_the_flag_itself(users):
    private, public = users
    private.last_name = "no-personalisation"
    private.save()
    with override_settings(RECOMMENDATIONS=HOST_CHECK):
        assert is_opted_out(User.objects.get(pk=private.pk))
        assert not is_opted_out(User.objects.get(pk=public.pk))
        assert opted_out_user_ids([private.pk, public.pk]) == {str(private.pk)}
        with pytest.raises(ImproperlyConfigured, match="change the field that function reads"):
            set_opted_out(public)


def test_the_admin_says_its_preferences_are_not_read_when_the_host_keeps_the_flag(users, admin_client):
    """The preferences' list and form took edits that changed nothing, without a word."""
    preference = set_opted_out(users[0])
    pages = [
        reverse("admin:recommendations_personalisationpreference_changelist"),
        reverse("admin:recommendations_personalisationpreference_change", args=[preference.pk]),
        reverse("admin:recommendations_personalisationpreference_add"),
    ]
    for url in pages:
        assert not [str(m) for m in admin_client.get(url).context["messages"]], url
    with override_settings(RECOMMENDATIONS=HOST_CHECK):
        for url in pages:
            shown = [str(m) for m in admin_client.get(url).context["messages"]]
            assert shown == [
                "RECOMMENDATIONS['OPT_OUT_CHECK'] is set, so the engine reads the host's own opt-out "
                "flag, not these rows: a change here changes nothing. Change the field that function "
                "reads instead."
            ], url


def test_no_behaviour_is_stored_for_an_opted_out_user(users, product):
    private, public = users
    set_opted_out(private)
    track(request_for(User.objects.get(pk=private.pk)), "view", product=product)
    track(request_for(public), "view", product=product)
    track(None, "purchase", product=product, user=private)
    assert list(Event.objects.values_list("user_id", flat=True)) == [public.pk]


def test_a_server_batch_drops_only_the_opted_out_users_events(users, product, client):
    private, public = users
    set_opted_out(private)
    _, raw_key = ApiKey.objects.create_key("crm", ["events:write"])
    events = [
        {"event_type": "view", "product_id": product.pk, "user_id": private.pk},
        {"event_type": "view", "product_id": product.pk, "user_id": public.pk},
        {"event_type": "view", "product_id": product.pk, "session_id": "anonymous-1"},
    ]
    response = client.post(
        "/api/events/",
        json.dumps({"events": events}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Api-Key {raw_key}",
    )
    assert response.status_code in (200, 201), response.content
    # The dropped event is reported as opted out: no id collided, so there is no duplicate.
    assert response.json() == {"received": 3, "stored": 2, "duplicates": 0, "opted_out": 1, "bots": 0}
    assert sorted(Event.objects.values_list("session_id", "user_id")) == [
        ("", public.pk),
        ("anonymous-1", None),
    ]


def test_an_opted_out_user_gets_only_non_personal_recommendations(users, product):
    private, _ = users
    track(None, "view", product=product, user=private)  # stored before the opt-out
    assert products.recently_viewed(Audience(user=private), Options()).ids == [str(product.pk)]
    served_to_them = ServedRecommendation.objects.filter(user=private).count()

    set_opted_out(private)
    user = User.objects.get(pk=private.pk)
    audience = Audience(user=user, session_id="their-browser")
    assert (audience.user_id, audience.session_id) == (None, "")
    assert products.recently_viewed(audience, Options()).ids == []
    assert products.for_you(audience, Options()).ids == products.for_you(Audience(), Options()).ids
    assert ServedRecommendation.objects.filter(user=private).count() == served_to_them


@pytest.mark.parametrize("flag", ["preference", "host"])
def test_signing_in_after_opting_out_attaches_no_behaviour_to_the_account(users, product, client, flag):
    """The anonymous events of the browser an opted-out user signs in on are theirs: they are
    dropped, not merged into the account (nor left for a retrain as an anonymous visitor's)."""
    private, _ = users
    private.set_password("pw")
    private.last_name = "no-personalisation" if flag == "host" else ""
    private.save()
    if flag == "preference":
        set_opted_out(private)
    session = client.session
    session[SESSION_KEY] = "their-browser"
    session.save()
    for session_id in ("their-browser", "another-browser"):
        anonymous = request_for(AnonymousUser())
        anonymous.session[SESSION_KEY] = session_id
        track(anonymous, "view", product=product)

    with override_settings(RECOMMENDATIONS=HOST_CHECK if flag == "host" else settings.RECOMMENDATIONS):
        assert client.login(username="private", password="pw")

    assert not Event.objects.filter(user=private).exists()
    assert list(Event.objects.values_list("session_id", "user_id")) == [("another-browser", None)]
