"""The Python ways in: recommendations.track() and the host's domain signals."""

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.test import RequestFactory
from django.utils import timezone

import recommendations
from recommendations.events import signals
from recommendations.events.tracking import SESSION_KEY
from recommendations.events.validation import EventValidationError
from recommendations.models import Event, ServedRecommendation
from recommendations.serving.attribution import new_recommendation_id
from tests.hostapp.adapters import HOST_SETTINGS


@pytest.fixture
def request_for(rf: RequestFactory):
    """A request as the host's view sees it: a session and a user."""
    from django.contrib.auth.models import AnonymousUser
    from django.contrib.sessions.backends.db import SessionStore

    def make(user=None, path="/product/mug/"):
        request = rf.get(path, HTTP_USER_AGENT="Mozilla/5.0 (iPhone)", HTTP_REFERER="https://search.example/")
        request.session = SessionStore()
        request.user = user or AnonymousUser()
        return request

    return make


@pytest.mark.django_db
def test_track_fills_user_session_and_context_from_the_request(request_for, catalogue, shopper):
    request = request_for(shopper)
    event_id = recommendations.track(
        request, "view", product=catalogue[0], recommendation_id="r-1", position=3
    )
    event = Event.objects.get(event_id=event_id)
    assert event.user_id == shopper.pk
    assert event.session_id == request.session[SESSION_KEY]
    assert event.product_id == str(catalogue[0].pk)
    assert event.store_id == str(catalogue[0].store_id)
    assert event.recommendation_id == "r-1"
    assert event.context == {
        "page": "/product/mug/",
        "referrer": "https://search.example/",
        "user_agent": "Mozilla/5.0 (iPhone)",
        "device": "mobile",
        "position": 3,
    }


@pytest.mark.django_db
def test_track_keeps_one_session_id_per_browser_and_stores_an_event_id_once(request_for, catalogue):
    request = request_for()
    recommendations.track(request, "view", product=catalogue[0], event_id="fixed-1")
    recommendations.track(request, "view", product=catalogue[0], event_id="fixed-1")
    recommendations.track(request, "search", query="mugs", products=catalogue[:2])
    assert Event.objects.count() == 2
    assert len(set(Event.objects.values_list("session_id", flat=True))) == 1


@pytest.mark.django_db
def test_a_naive_timestamp_is_in_the_shops_time_zone_as_the_orm_reads_it(catalogue, shopper, settings):
    """track(timestamp=datetime(...)) without a tzinfo is the shop's local time, where a
    model's DateTimeField would put it, not UTC (8 hours later in Shanghai)."""
    settings.TIME_ZONE = "Asia/Shanghai"
    local = timezone.localtime() - dt.timedelta(hours=10)  # read as UTC it is still in the past
    naive = local.replace(tzinfo=None, microsecond=0)
    event_id = recommendations.track(None, "view", product=catalogue[0], user=shopper, timestamp=naive)
    stored = Event.objects.get(event_id=event_id).timestamp
    assert stored == naive.replace(tzinfo=ZoneInfo("Asia/Shanghai"))
    assert timezone.localtime(stored).replace(tzinfo=None) == naive


@pytest.mark.django_db
def test_a_crawler_gets_no_session_and_its_events_are_not_stored(client, catalogue):
    """A crawler's searches and views are no shopper's: stored, they would count in trending,
    pairs and the analytics."""
    from django.contrib.sessions.models import Session

    for _ in range(3):
        client.cookies.clear()
        client.get("/search/?q=mug", HTTP_USER_AGENT="Mozilla/5.0 (compatible; Googlebot/2.1)")
    assert Session.objects.count() == 0 and not Event.objects.exists()
    client.get("/search/?q=mug", HTTP_USER_AGENT="Mozilla/5.0 (iPhone)")  # a shopper gets one
    assert Session.objects.count() == 1
    assert list(Event.objects.values_list("event_type", flat=True)) == ["search"]


@pytest.mark.django_db
def test_a_user_agent_is_only_a_guess_shoppers_purchases_and_signed_in_events_are_kept(
    request_for, catalogue, shopper
):
    """A phone named like a crawler (Cubot) is a shopper; and should a real shopper's agent match
    a pattern, what the server records of them (a purchase, a signed-in visit) is still kept."""
    from recommendations.events.bots import is_bot_agent

    cubot = "Mozilla/5.0 (Linux; Android 11; Cubot Note 20 Pro) AppleWebKit/537.36 Chrome/120 Mobile Safari/537.36"
    assert not is_bot_agent(cubot)
    assert is_bot_agent("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)")
    anonymous, signed_in = request_for(), request_for(shopper)
    for request in (anonymous, signed_in):
        request.META["HTTP_USER_AGENT"] = "Mozilla/5.0 (compatible; bingbot/2.0)"
    recommendations.track(anonymous, "view", product=catalogue[0])
    recommendations.track(anonymous, "purchase", product=catalogue[0], value=1, revenue=5)
    recommendations.track(signed_in, "view", product=catalogue[1])
    assert sorted(Event.objects.values_list("event_type", "user_id")) == [
        ("purchase", None),
        ("view", shopper.pk),
    ]


@pytest.mark.django_db
def test_track_rejects_bad_input_and_writes_nothing(request_for, catalogue):
    with pytest.raises(EventValidationError, match="product_id: no product has the primary key '424242'"):
        recommendations.track(request_for(), "view", product=424242)
    with pytest.raises(EventValidationError, match="rating needs a value from 1 to 5"):
        recommendations.track(request_for(), "rating", product=catalogue[0], value=0)
    assert not Event.objects.exists()


def served_to(products, **audience):
    """The id of a list of `products` shown to that user (or session)."""
    return ServedRecommendation.objects.create(
        id=new_recommendation_id(),
        kind="similar",
        source="test",
        product_ids=[str(p.pk) for p in products],
        **audience,
    ).pk


@pytest.mark.django_db
def test_product_viewed_and_cart_signals_carry_their_recommendation(request_for, catalogue, shopper):
    request = request_for(shopper)
    shelf = served_to(catalogue[:2], user=shopper)
    signals.product_viewed.send(sender=None, request=request, product=catalogue[0], recommendation_id=shelf)
    signals.added_to_cart.send(
        sender=None, request=request, product=catalogue[1], quantity=3, recommendation_id=shelf
    )
    signals.removed_from_cart.send(
        sender=None, request=request, product=catalogue[1], quantity=2, recommendation_id=shelf
    )
    view = Event.objects.get(event_type="view")
    cart = Event.objects.get(event_type="add_to_cart")
    removal = Event.objects.get(event_type="remove_from_cart")
    assert (view.product_id, view.recommendation_id, view.user_id) == (
        str(catalogue[0].pk),
        shelf,
        shopper.pk,
    )
    assert (cart.product_id, cart.value, cart.recommendation_id) == (str(catalogue[1].pk), 3, shelf)
    assert (removal.product_id, removal.value, removal.recommendation_id, removal.user_id) == (
        str(catalogue[1].pk),
        2,
        shelf,
        shopper.pk,
    )


@pytest.mark.django_db
def test_signals_sent_with_a_request_check_the_browsers_recommendation_id(request_for, catalogue, shopper):
    """A host takes the id from `?rec=` or a form's field: any visitor could put another
    visitor's list there, or a list that never showed the product."""
    mug, knife = catalogue[0], catalogue[1]
    forged = [
        served_to([mug], session_id="someone-else"),
        served_to([knife], user=shopper),  # theirs, but without the mug
        "0a8c3a1f3c33d12f456b",
    ]
    for recommendation_id in forged:
        request = request_for(shopper)
        signals.product_viewed.send(
            sender=None, request=request, product=mug, recommendation_id=recommendation_id
        )
        signals.added_to_cart.send(
            sender=None, request=request, product=mug, recommendation_id=recommendation_id
        )
        signals.removed_from_cart.send(
            sender=None, request=request, product=mug, recommendation_id=recommendation_id
        )
    assert Event.objects.count() == 3 * len(forged), "each still counts"
    assert set(Event.objects.values_list("recommendation_id", flat=True)) == {""}, "credited to no list"

    # Server code without a request (a task replaying a log) is trusted, as track() is.
    signals.product_viewed.send(sender=None, user=shopper, product=mug, recommendation_id="r-from-a-task")
    assert Event.objects.filter(recommendation_id="r-from-a-task").count() == 1


@pytest.mark.django_db
def test_order_placed_lines_may_carry_the_recommendation_that_sold_them(request_for, catalogue, shopper):
    """Trusted as given: the host kept on the cart line the id `claim_recommendation` returned."""
    lines = [
        signals.OrderLine(catalogue[0], 2, Decimal("10.00"), "r-cart"),
        (catalogue[1], 1, Decimal("11.50"), "r-other"),
        (catalogue[2], 1, Decimal("12.00")),
    ]
    signals.order_placed.send(sender=None, request=request_for(shopper), order_id=78, lines=lines)
    purchases = Event.objects.filter(event_type="purchase")
    assert {p.product_id: (p.revenue, p.recommendation_id) for p in purchases} == {
        str(catalogue[0].pk): (Decimal("20.00"), "r-cart"),
        str(catalogue[1].pk): (Decimal("11.50"), "r-other"),
        str(catalogue[2].pk): (Decimal("12.00"), ""),
    }


@pytest.mark.django_db
def test_every_host_signal_takes_a_user_where_there_is_no_request(catalogue, shopper):
    """Code without a request (a Celery task, a management command, a webhook) sends the same
    signals with `user=`, and the events are the user's."""
    signals.product_viewed.send(sender=None, user=shopper, product=catalogue[0])
    signals.added_to_cart.send(sender=None, user=shopper, product=catalogue[1], quantity=2)
    signals.removed_from_cart.send(sender=None, user=shopper, product=catalogue[1])
    signals.searched.send(sender=None, user=shopper, query="steel mug", results=catalogue[:2])
    signals.order_placed.send(sender=None, user=shopper, order_id=5, lines=[(catalogue[1], 2, Decimal("3"))])
    signals.review_added.send(sender=None, user=shopper, product=catalogue[1], rating=4)
    recorded = Event.objects.order_by("event_type")
    assert [(e.event_type, e.user_id, e.product_id) for e in recorded] == [
        ("add_to_cart", shopper.pk, str(catalogue[1].pk)),
        ("purchase", shopper.pk, str(catalogue[1].pk)),
        ("rating", shopper.pk, str(catalogue[1].pk)),
        ("remove_from_cart", shopper.pk, str(catalogue[1].pk)),
        ("search", shopper.pk, ""),
        ("view", shopper.pk, str(catalogue[0].pk)),
    ]


@pytest.mark.django_db
def test_order_placed_signal_records_each_line_once_even_when_resent(catalogue, shopper):
    lines = [(catalogue[0], 2, Decimal("10.00")), (catalogue[1], 1, Decimal("11.50"))]
    for _ in range(2):
        signals.order_placed.send(sender=None, order_id=77, lines=lines, user=shopper)
    purchases = Event.objects.filter(event_type="purchase").order_by("product_id")
    assert [(p.product_id, p.value, p.revenue) for p in purchases] == [
        (str(catalogue[0].pk), 2, Decimal("20.00")),
        (str(catalogue[1].pk), 1, Decimal("11.50")),
    ]
    assert all(p.user_id == shopper.pk and p.context["order_id"] == "77" for p in purchases)


@pytest.mark.django_db
def test_searched_and_review_added_signals(request_for, catalogue, shopper):
    request = request_for(shopper)
    signals.searched.send(sender=None, request=request, query="steel mug", results=catalogue[:3])
    signals.review_added.send(sender=None, request=request, product=catalogue[2], rating=5, text="Lovely")
    search = Event.objects.get(event_type="search")
    assert search.query == "steel mug"
    assert search.context["products"] == [str(p.pk) for p in catalogue[:3]]
    assert search.context["results_count"] == 3
    rating = Event.objects.get(event_type="rating")
    assert (rating.value, rating.context["text"], rating.user_id) == (5, "Lovely", shopper.pk)


def test_track_is_importable_without_loading_models():
    import subprocess
    import sys

    code = "import recommendations, sys; assert 'recommendations.models' not in sys.modules; print('ok')"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "ok", result.stderr


@pytest.mark.django_db
def test_a_host_with_uuid_keys_and_other_field_names(request_for):
    from django.test import override_settings

    from tests.hostapp.models import Gadget, Section, Seller

    seller = Seller.objects.create(shop_name="Sound Co")
    gadget = Gadget.objects.create(
        name="Earbuds", section=Section.objects.create(label="Audio"), seller=seller, cost_cents=1
    )
    with override_settings(RECOMMENDATIONS=HOST_SETTINGS):
        recommendations.track(request_for(), "view", product=str(gadget.code).upper())
        with pytest.raises(EventValidationError, match="no product has the primary key 'not-a-uuid'"):
            recommendations.track(request_for(), "view", product="not-a-uuid")
    event = Event.objects.get()
    assert (event.product_id, event.store_id) == (str(gadget.code), str(seller.pk))


@pytest.mark.django_db
def test_events_stored_before_their_agent_was_called_a_crawlers_are_forgotten_by_the_command(
    catalogue, shopper, settings
):
    """A pattern added later stops new events at ingestion; `forget_crawlers` deletes the ones
    already stored, by the same rule (a signed-in user's events and purchases stay)."""
    from io import StringIO

    from django.core.management import call_command

    spy = {"user_agent": "ShopSpy/3.1 (+https://shopspy.example)"}
    now = timezone.now()
    gone = [
        Event.objects.create(
            event_type=kind, product_id=str(catalogue[0].pk), session_id="s1", context=spy, timestamp=now
        )
        for kind in ("view", "search", "click")
    ]
    kept = [
        Event.objects.create(
            event_type="purchase",
            product_id=str(catalogue[0].pk),
            session_id="s1",
            context=spy,
            timestamp=now,
        ),
        Event.objects.create(
            event_type="view", product_id=str(catalogue[1].pk), user=shopper, context=spy, timestamp=now
        ),
        Event.objects.create(
            event_type="view",
            product_id=str(catalogue[1].pk),
            session_id="s2",
            context={"user_agent": "Mozilla/5.0 (iPhone)"},
            timestamp=now,
        ),
        Event.objects.create(
            event_type="view", product_id=str(catalogue[1].pk), session_id="s3", timestamp=now
        ),
    ]
    out = StringIO()
    call_command("forget_crawlers", stdout=out)  # ShopSpy is no crawler yet
    assert Event.objects.count() == 7 and "Deleted 0 event(s) of 0 crawler user agent(s)" in out.getvalue()

    settings.RECOMMENDATIONS = {**settings.RECOMMENDATIONS, "BOT_USER_AGENT_PATTERNS": [r"shopspy"]}
    call_command("forget_crawlers", stdout=out)
    assert "Deleted 3 event(s) of 1 crawler user agent(s)" in out.getvalue()
    assert sorted(Event.objects.values_list("pk", flat=True)) == sorted(e.pk for e in kept)
    assert not Event.objects.filter(pk__in=[e.pk for e in gone]).exists()
