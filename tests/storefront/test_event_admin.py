"""The event browser and the admin registrations of the engine's and the shop's tables."""

import datetime as dt
import re

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from recommendations.admin.filters import ProductFilter
from recommendations.admin.pagination import EstimatedCountPaginator
from recommendations.models import AuditEntry, DailyEventCount, Event, ProductPair, ServedRecommendation
from shop.models import Order, Product
from tests.storefront.conftest import event, plan_of

URL = reverse("admin:recommendations_event_changelist")


@pytest.fixture
def log(catalogue, shopper, django_user_model):
    other = django_user_model.objects.create_user("other", email="other@example.com")
    return {
        "shopper_view": event("view", product=catalogue[0], user=shopper),
        "shopper_buy": event("purchase", product=catalogue[1], user=shopper, value=1, revenue=13),
        "other_view": event("view", product=catalogue[1], user=other, days_ago=3),
        "anonymous_search": event("search", session="abcdef123456", query="mug", recommendation_id="r1"),
    }


def listed(response) -> set[int]:
    return {e.pk for e in response.context["cl"].result_list}


def test_lists_events_with_product_titles_and_who(admin_client, log, catalogue):
    response = admin_client.get(URL)
    assert response.status_code == 200
    assert listed(response) == {e.pk for e in log.values()}
    html = response.content.decode()
    assert catalogue[0].title in html and "visitor abcdef12" in html


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"event_type__exact": "view"}, {"shopper_view", "other_view"}),
        ({"user": "shopper"}, {"shopper_view", "shopper_buy"}),
        ({"user": "OTHER@example.com"}, {"other_view"}),
        ({"product": "PRODUCT_1"}, {"shopper_buy", "other_view"}),
        ({"session": "abcdef"}, {"anonymous_search"}),
        ({"attributed": "yes"}, {"anonymous_search"}),
        ({"user": "shopper", "event_type__exact": "purchase"}, {"shopper_buy"}),
        ({"user": "nobody"}, set()),
        # Typed text that is no id or no text PostgreSQL can hold matches nothing (was a 500).
        ({"user": "²"}, set()),
        ({"user": "①"}, set()),
        ({"user": "99999999999999999999"}, set()),
        ({"user": "shop\x00per"}, set()),
        ({"product": "1\x00"}, set()),
        ({"session": "abc\x00"}, set()),
    ],
)
def test_filters(admin_client, log, catalogue, params, expected):
    params = {k: (str(catalogue[1].pk) if v == "PRODUCT_1" else v) for k, v in params.items()}
    response = admin_client.get(URL, params)
    assert response.status_code == 200
    assert listed(response) == {log[name].pk for name in expected}


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ("r1", {"anonymous_search"}),  # a recommendation id
        ("MUG", {"anonymous_search"}),  # within a search's query, in any case
        ("r", set()),  # ids match whole, not in part
        ("nothing like it", set()),
    ],
)
def test_search_finds_ids_whole_and_text_within_queries(admin_client, log, catalogue, term, expected):
    response = admin_client.get(URL, {"q": term})
    assert listed(response) == {log[name].pk for name in expected}
    assert "exact event id or recommendation id, a product id (in any case)" in response.content.decode()


def test_search_finds_an_event_and_a_products_events_by_their_ids(admin_client, log, catalogue):
    by_event = admin_client.get(URL, {"q": log["other_view"].event_id})
    assert listed(by_event) == {log["other_view"].pk}
    by_product = admin_client.get(URL, {"q": str(catalogue[1].pk)})
    assert listed(by_product) == {log["shopper_buy"].pk, log["other_view"].pk}


def test_search_and_filter_find_a_product_id_typed_in_another_case(admin_client, log):
    """A host's product keys may be SKUs in mixed case, which staff type as they come. (This
    shop's keys are integers, whose titles the list reads: the list's queries run here.)"""
    model_admin = admin.site._registry[Event]
    request = admin_client.get(URL).wsgi_request
    sku = Event.objects.create(event_type="view", product_id="Mug-Blue-XL", timestamp=timezone.now())
    for term in ("mug-blue-xl", "MUG-BLUE-XL"):
        found, _ = model_admin.get_search_results(request, Event.objects.all(), term)
        assert list(found) == [sku], term
    assert not model_admin.get_search_results(request, Event.objects.all(), "mug-blue")[0].exists()
    by_product = ProductFilter(request, {"product": ["mug-BLUE-xl"]}, Event, model_admin)
    assert list(by_product.queryset(request, Event.objects.all())) == [sku]


def test_a_search_and_the_product_filter_read_indexes_not_the_whole_log(admin_client, log):
    """With sequential scans priced out, a search the indexes cannot answer still reads the
    tables row by row: the plan shows it whatever the size of the test's log."""
    model_admin = admin.site._registry[Event]
    request = admin_client.get(URL).wsgi_request
    searches = [
        model_admin.get_search_results(request, Event.objects.all(), term)[0]
        for term in ("nothing like it", "r1")
    ]
    by_product = ProductFilter(request, {"product": ["Mug-Blue-XL"]}, Event, model_admin)
    for found in [*searches, by_product.queryset(request, Event.objects.all())]:
        plan = plan_of(*found.query.sql_with_params())
        assert "Seq Scan" not in plan, plan


def test_a_typed_filter_keeps_the_search_sort_and_other_filters(admin_client, log):
    params = {"q": "mug", "o": "-2", "event_type__exact": "view", "session": "abc"}
    html = admin_client.get(URL, params).content.decode()
    user_form = html.split('name="user"')[0].rsplit("<form", 1)[1]  # the "by user" box's form
    for key, value in params.items():
        assert f'<input type="hidden" name="{key}" value="{value}">' in user_form, key


def test_date_filter_keeps_recent_events(admin_client, log):
    # What the "Today" link of Django's date filter sends: local midnight with its offset.
    midnight = timezone.localtime(log["shopper_view"].timestamp).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    response = admin_client.get(URL, {"timestamp__gte": str(midnight)})
    assert log["other_view"].pk not in listed(response)
    assert log["shopper_view"].pk in listed(response)


def test_an_events_and_an_audit_entrys_headings_show_local_time(admin_client, log, settings):
    """The page's heading says the time the fields beside it say: the shop's, not UTC."""
    settings.TIME_ZONE = "Asia/Shanghai"
    entry = AuditEntry.objects.create(action="retention", source="task")
    for obj, name in ((log["shopper_view"], "event"), (entry, "auditentry")):
        moment = obj.timestamp if name == "event" else obj.created_at
        response = admin_client.get(reverse(f"admin:recommendations_{name}_change", args=[obj.pk]))
        heading = response.context["subtitle"]
        assert heading.endswith(f" at {timezone.localtime(moment):%Y-%m-%d %H:%M}"), heading
        assert f"<h2>{heading}</h2>" in response.content.decode()


def test_events_are_read_only(admin_client, log):
    change = reverse("admin:recommendations_event_change", args=[log["shopper_view"].pk])
    response = admin_client.post(change, {"event_type": "purchase"})
    assert response.status_code in (200, 403)
    assert Event.objects.get(pk=log["shopper_view"].pk).event_type == "view"
    assert admin_client.get(reverse("admin:recommendations_event_add")).status_code == 403


def test_links_lead_only_to_pages_the_staff_user_may_open(admin_client, log, catalogue, shopper):
    """A product in the event browser, and the preview's "All events of this shopper", linked
    to pages that answered 403 to staff who may see the events, or the preview, only."""
    staff = get_user_model().objects.create_user("analyst", is_staff=True)
    staff.user_permissions.set(
        Permission.objects.filter(codename__in=["view_event", "view_userpreview"]).exclude(
            content_type__app_label="shop"
        )
    )
    client = Client()
    client.force_login(staff)
    product_url = reverse("admin:shop_product_change", args=[catalogue[0].pk])
    events_url = reverse("admin:recommendations_event_changelist") + f"?user={shopper.pk}"
    preview = reverse("admin:recommendations_userpreview_changelist") + "?user=shopper"
    assert product_url in admin_client.get(URL).content.decode()
    assert events_url in admin_client.get(preview).content.decode()
    listed_page = client.get(URL).content.decode()
    assert catalogue[0].title in listed_page and product_url not in listed_page
    staff.user_permissions.remove(Permission.objects.get(codename="view_event"))
    assert events_url not in client.get(preview).content.decode()


def test_every_model_is_registered_and_its_list_renders(admin_client, catalogue, log):
    from django.apps import apps

    missing = [
        model._meta.label
        for app in ("recommendations", "shop")
        for model in apps.get_app_config(app).get_models()
        if not admin.site.is_registered(model)
    ]
    assert missing == []
    for app in ("recommendations", "shop"):
        for model in apps.get_app_config(app).get_models():
            url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
            assert admin_client.get(url).status_code == 200, url


def test_a_filter_value_with_a_nul_character_is_answered_without_an_error(admin_client, log):
    """PostgreSQL text cannot hold NUL: `?event_type__exact=%00` on a list was a 500 (a
    DataError). The engine's lists list no rows; Django sends a value a filter cannot take (a
    boolean's) back to the list, "?e=1"."""
    for model in admin.site._registry:
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        changelist = admin_client.get(url).context.get("cl")
        for spec in changelist.filter_specs if changelist else []:
            for parameter in spec.expected_parameters():
                status = admin_client.get(url, {parameter: "a\x00b"}).status_code
                assert status in (200, 302), (url, parameter, status)
    response = admin_client.get(URL, {"event_type__exact": "view\x00"})
    assert response.status_code == 200 and listed(response) == set()


@pytest.fixture
def growing_tables(log):
    """A row in each table that grows with traffic."""
    ServedRecommendation.objects.create(id="s1", kind="for_you", source="popular", product_ids=["1"])
    DailyEventCount.objects.create(day=dt.date(2024, 3, 5), event_type="view", product_id="1", count=4)
    ProductPair.objects.create(kind="bought", product_id="1", other_id="2", count=3, score=0.5)


@pytest.mark.parametrize("model", [Event, ServedRecommendation, DailyEventCount, ProductPair])
def test_lists_of_growing_tables_neither_count_every_row_nor_read_every_date(
    admin_client, growing_tables, model
):
    """Django counts every matching row to number the pages (51-92 ms at 315,000 events),
    and its date drill-down read every row's month (DISTINCT DATE_TRUNC, 88-106 ms)."""
    changelist_without_full_count_or_dates(admin_client, model)


def changelist_without_full_count_or_dates(admin_client, model):
    """`model`'s admin list, checked to count at most `exact_up_to` rows and read no dates."""
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(url)
    assert response.status_code == 200 and len(response.context["cl"].result_list) >= 1
    statements = [query["sql"] for query in queries]
    counts = [sql for sql in statements if "COUNT(" in sql]
    assert counts and all(f"LIMIT {EstimatedCountPaginator.exact_up_to + 1}" in sql for sql in counts), counts
    assert not [sql for sql in statements if "DATE_TRUNC" in sql]
    return response


@pytest.fixture
def orders_and_audit(catalogue, shopper):
    """Orders, products (`catalogue`) and audit entries: tables that grow with the shop."""
    for name in ("Sam", "Kim", "Lee"):
        Order.objects.create(
            user=shopper,
            name=name,
            email="s@example.com",
            address="1 High St",
            city="Leeds",
            postcode="LS1",
            total=9,
        )
    AuditEntry.objects.create(action="erase_user", source="admin", counts={"events": 2})


@pytest.mark.parametrize("model", [Order, Product, AuditEntry])
def test_lists_of_orders_products_and_audit_entries_neither_count_every_row_nor_read_every_date(
    admin_client, orders_and_audit, model
):
    """As the engine's growing tables: their date drill-down read every row's month."""
    response = changelist_without_full_count_or_dates(admin_client, model)
    # The dates are still filtered, through the index.
    assert "created_at__gte" in response.content.decode()
    # And a page is read newest first from an index, not every row sorted (an incremental
    # sort only orders rows of the same time by id).
    plan = plan_of(*response.context["cl"].queryset[:100].query.sql_with_params(), sorts=False)
    assert not re.search(r"(?<!Incremental )Sort  \(", plan), plan


def test_the_shops_lists_say_about_how_long_they_are_when_the_count_is_estimated(
    admin_client, orders_and_audit, monkeypatch
):
    monkeypatch.setattr(EstimatedCountPaginator, "exact_up_to", 2)
    page = admin_client.get(reverse("admin:shop_order_changelist"))
    assert page.context["cl"].paginator.estimated
    assert f"about {page.context['cl'].result_count:,} orders" in page.content.decode()
    counted = admin_client.get(reverse("admin:shop_order_changelist"), {"q": "Sam"})
    assert not counted.context["cl"].paginator.estimated and "1 order" in counted.content.decode()


def test_a_list_longer_than_it_counts_says_about_how_long_it_is(admin_client, log, monkeypatch):
    monkeypatch.setattr(EstimatedCountPaginator, "exact_up_to", 2)
    monkeypatch.setattr(admin.site._registry[Event], "list_per_page", 3)
    first = admin_client.get(URL)
    cl = first.context["cl"]
    assert cl.paginator.estimated and cl.result_count > 2  # the planner's figure, at least what was counted
    assert f"about {cl.result_count:,} events" in first.content.decode()
    second = admin_client.get(URL, {"p": 2})
    assert len(listed(first) | listed(second)) == 4
    filtered = admin_client.get(URL, {"event_type__exact": "view"})  # counted in full: 2 rows
    assert not filtered.context["cl"].paginator.estimated and "2 events" in filtered.content.decode()


def test_product_pairs_are_listed_in_the_order_of_their_index(admin_client, growing_tables):
    """Another order sorted every pair for each page (57 ms at 389,000 pairs)."""
    page = admin_client.get(reverse("admin:recommendations_productpair_changelist"))
    plan = plan_of(*page.context["cl"].queryset[:50].query.sql_with_params())
    assert "rec_pair_lookup" in plan and "\n  ->  Sort" not in plan, plan


def test_an_event_of_a_key_no_product_can_have_is_listed_without_its_title(admin_client, log, catalogue):
    """Every way in refuses "p1" for integer keys, but a row written straight into the table
    may hold it: the event browser and the dashboard list it (looking its title up failed
    the whole page)."""
    stray = Event.objects.create(
        event_type="view", product_id="p1", session_id="sql-import", timestamp=timezone.now()
    )
    response = admin_client.get(URL)
    assert response.status_code == 200 and stray.pk in listed(response)
    assert catalogue[0].title in response.content.decode()  # the other events keep theirs
    dashboard = admin_client.get(reverse("admin:recommendations_dashboard_changelist"), {"days": 7})
    assert dashboard.status_code == 200
