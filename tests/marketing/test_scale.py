"""Campaigns cost what a page shows, whatever the size of their scope and their number.

A page read the stock of every product of every running campaign's scope, one parameter per
product: 0.6 s with 30 campaigns over 12,000 products, and an error past 65,535 (a
statement's limit of parameters). A cold cache read each campaign's stores and categories on
its own, the categories by a seq scan of the search index.
"""

import pytest
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from recommendations.marketing.products import offer, scope_product_ids
from recommendations.marketing.targeting import PRODUCTS_PER_MATCH, campaign_status
from recommendations.models import Campaign, ProductDocument
from shop.models import Product, Store
from tests.state import clear_all_caches

FOR_ME = "/api/campaigns/for-me/"
# More products than a statement may have parameters (65,535).
BIG_STORE = 70_000


@pytest.fixture
def admin_client(django_user_model) -> Client:
    client = Client()
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.com", "pw"))
    return client


@pytest.fixture
def warehouse(shop) -> Store:
    """A store of 70,000 products in stock, written by one INSERT (the ORM's bulk_create took 10
    s; the scope of a store needs no search index)."""
    store = Store.objects.create(name="Warehouse", slug="warehouse")
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {Product._meta.db_table} (title, slug, description, category_id, store_id, "
            "brand, price, stock, is_active, created_at, updated_at, image_url) "
            "SELECT 'Crate ' || i, 'crate-' || i, '', %s, %s, '', 1, 5, true, now(), now(), '' "
            "FROM generate_series(1, %s) AS i",
            [shop.categories["Garden"].pk, store.pk, BIG_STORE],
        )
    return store


def test_a_campaign_of_more_products_than_a_statement_has_parameters_is_shown(shop, warehouse, admin_client):
    crates = Campaign.objects.create(name="Crates", store_ids=[str(warehouse.pk)])
    with CaptureQueriesContext(connection) as page:
        response = Client().get(FOR_ME)
    assert response.status_code == 200, response.content
    (match,) = response.json()["results"]
    assert match["id"] == crates.pk and len(match["product_ids"]) == PRODUCTS_PER_MATCH
    # The stock of the products shown is read, not that of the 70,000.
    assert max(len(query["sql"]) for query in page.captured_queries) < 5_000
    home = Client().get("/")
    assert home.status_code == 200 and "Crates" in home.content.decode()

    changelist = admin_client.get(reverse("admin:recommendations_campaign_changelist"))
    assert changelist.status_code == 200 and "shown now" in changelist.content.decode()
    preview = admin_client.get(reverse("admin:recommendations_campaign_preview", args=[crates.pk]))
    assert preview.status_code == 200 and "problem" not in preview.context
    assert len(offer(crates)) == len(scope_product_ids(crates)) == BIG_STORE


def test_a_campaign_whose_first_products_are_sold_out_offers_the_rest(shop, warehouse):
    """Stock is read for a campaign's first products, and further only while those are sold
    out: one left in stock at the end of 70,000 still shows the campaign."""
    crates = Campaign.objects.create(name="Crates", store_ids=[str(warehouse.pk)])
    last = max(Product.objects.filter(store=warehouse).values_list("pk", flat=True), key=str)
    Product.objects.filter(store=warehouse).exclude(pk=last).update(stock=0)
    assert campaign_status([crates])[crates.pk] == "shown"
    (match,) = Client().get(FOR_ME).json()["results"]
    assert match["product_ids"] == [str(last)]


def campaigns_of_every_kind(shop, copies: int) -> None:
    """Promotions of categories (one in upper case), stores and products, `copies` of each."""
    for i in range(copies):
        Campaign.objects.create(name=f"Tea {i}", category_names=["TEA"])
        Campaign.objects.create(
            name=f"Coffee {i}", category_names=["Coffee"], store_ids=[str(shop.stores["Garden"].pk)]
        )
        Campaign.objects.create(name=f"Garden {i}", product_ids=shop.ids("Garden")[:2])


@pytest.mark.parametrize("with_model", [False, True], ids=["affinity", "model"])
@pytest.mark.parametrize("cold", [True, False], ids=["cold cache", "warm cache"])
def test_the_queries_of_a_page_do_not_grow_with_the_campaigns(shop, admin_client, request, cold, with_model):
    """Each campaign's stores and categories were read on their own on a cold cache (79 queries
    for 30 campaigns); the campaigns' scopes, their stock and their directions (with a model)
    are now read together."""
    if with_model:
        request.getfixturevalue("model")
    visitor = Client()
    visitor.force_login(shop.users["tea_lover"])
    pages = [(visitor, FOR_ME), (admin_client, reverse("admin:recommendations_campaign_changelist"))]

    def queries() -> list[int]:
        counts = []
        for client, url in pages:
            client.get(url)  # the process's own state (the model version, experiments) is read once
            if cold:
                clear_all_caches()
            with CaptureQueriesContext(connection) as captured:
                assert client.get(url).status_code == 200
            counts.append(len(captured))
        return counts

    campaigns_of_every_kind(shop, 1)
    few = queries()
    campaigns_of_every_kind(shop, 6)
    assert queries() == few
    shown = visitor.get(FOR_ME, {"limit": 20}).json()["results"]
    assert len(shown) == 20 and {match["name"].split()[0] for match in shown} == {"Tea", "Coffee", "Garden"}
    assert {match["method"] for match in shown} == {"model" if with_model else "affinity"}


def test_a_campaigns_categories_are_found_through_the_index(shop):
    """Folding each document's categories in the query read every document; the folded
    categories are indexed, and both the scope and the check of the names given use it."""
    drinks = Campaign.objects.create(name="Drinks", category_names=["COFFEE", "tea"])
    with CaptureQueriesContext(connection) as captured:
        assert set(scope_product_ids(drinks)) == {*shop.ids("Coffee"), *shop.ids("Tea")}
        drinks.full_clean()  # checks that the categories are known
    table = ProductDocument._meta.db_table
    reads = [q["sql"] for q in captured.captured_queries if table in q["sql"]]
    assert len(reads) == 2
    for sql in reads:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_seqscan = off")  # 12 documents: a scan would be cheaper
            cursor.execute(f"EXPLAIN {sql}")
            plan = "\n".join(row for (row,) in cursor.fetchall())
        assert "rec_doc_categories_folded" in plan, plan
