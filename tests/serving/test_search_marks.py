"""Words pointed or not: Hebrew points and cantillation and Arabic vowel marks, which writing
mostly leaves out, are left out of what search and campaigns compare, in Python and in SQL alike."""

import importlib

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from recommendations.models import ProductDocument
from recommendations.serving.cache import clear_process_caches
from recommendations.serving.catalog import index_products
from recommendations.text import UNWRITTEN_MARKS, fold_category
from shop.models import Product, Store
from tests.state import clear_all_caches

pytestmark = pytest.mark.django_db

MIGRATION = importlib.import_module(
    "recommendations.migrations.0030_search_and_campaigns_read_words_pointed_or_not"
)
SHALOM_POINTED = "\u05e9\u05c1\u05b8\u05dc\u05d5\u05b9\u05dd"  # "שָׁלוֹם"
SHALOM = "\u05e9\u05dc\u05d5\u05dd"  # "שלום"
KITAB_VOWELLED = "\u0643\u0650\u062a\u064e\u0627\u0628"  # "كِتَاب"
KITAB = "\u0643\u062a\u0627\u0628"  # "كتاب"


def found(client, query: str) -> set[str]:
    response = client.get("/api/search/", {"q": query})
    assert response.status_code == 200, response.content
    return {item["id"] for item in response.json()["results"]}


def test_a_word_pointed_or_not_finds_the_other(catalog, client):
    """The `unaccent` dictionary keeps Hebrew points: "שלום" did not find "שָׁלוֹם"."""
    pointed, plain = catalog.id("Dry shampoo spray"), catalog.id("Argan shampoo")
    Product.objects.filter(pk=pointed).update(title=f"{SHALOM_POINTED} candle")
    Product.objects.filter(pk=plain).update(title=f"{KITAB} stand")
    index_products()
    assert found(client, SHALOM) == found(client, SHALOM_POINTED) == {pointed}
    assert found(client, KITAB_VOWELLED) == found(client, KITAB) == {plain}


def test_a_store_renamed_with_points_is_found_without_them(
    catalog, client, django_capture_on_commit_callbacks
):
    """A renamed store's name is written into its products' documents by SQL
    (`recommendations_search_form`), in the form Python writes."""
    store = Store.objects.get(pk=catalog.stores["Nails"].pk)
    store.name = f"{SHALOM_POINTED} Lacquer"
    with django_capture_on_commit_callbacks(execute=True):
        store.save()  # the store's processor rewrites `placement` in SQL, once it commits
    products = {str(pk) for pk in Product.objects.filter(store=store).values_list("pk", flat=True)}
    assert found(client, f"{SHALOM} lacquer") == products
    placements = set(
        ProductDocument.objects.filter(product_id__in=products).values_list("placement", flat=True)
    )
    index_products(products)  # as Python writes them
    assert set(
        ProductDocument.objects.filter(product_id__in=products).values_list("placement", flat=True)
    ) == (placements)


def test_sql_and_python_fold_alike():
    samples = [
        f"{SHALOM_POINTED} {KITAB_VOWELLED}",
        f"a{UNWRITTEN_MARKS}b",
        "\u05be\u05c0\u05c3\u05c6",  # maqaf, paseq, sof pasuq, nun hafukha: punctuation, kept
        "\uff8f\uff99\uff78 \uff11\uff2c \ufb01",  # half-width katakana, full-width "1L", a ligature
        "\u0130STANBUL Kahve",
        "\u039a\u0391\u03a6\u0395\u03a3",  # "ΚΑΦΕΣ"
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT recommendations_search_form(s), recommendations_fold_categories(ARRAY[s]) "
            "FROM unnest(%s::text[]) AS s",
            [samples],
        )
        in_sql = cursor.fetchall()
    from recommendations.models.search import search_form

    assert in_sql == [(search_form(s), [fold_category(s)]) for s in samples]
    # Either side may fold a name the other folded.
    assert [fold_category(folded) for _, (folded,) in in_sql] == [folded for _, (folded,) in in_sql]


def test_the_migration_removes_the_marks_the_code_does():
    """It runs with the marks written out, whatever the code says later."""
    assert MIGRATION.MARKS == UNWRITTEN_MARKS


def test_documents_stored_before_are_rewritten_in_the_new_form(catalog, client):
    pointed = catalog.id("Dry shampoo spray")
    ProductDocument.objects.filter(product_id=pointed).update(
        title=f"{SHALOM_POINTED} candle", placement=f"Hair {SHALOM_POINTED}"
    )
    assert found(client, SHALOM) == set()  # stored pointed, before the migration
    clear_process_caches()  # what the query matched, and its copy in Django's cache
    clear_all_caches()
    with connection.cursor() as cursor:
        cursor.execute(MIGRATION.Migration.operations[1].sql)
        assert cursor.rowcount == 1  # only the documents whose text changes
    document = ProductDocument.objects.get(product_id=pointed)
    assert (document.title, document.placement) == (f"{SHALOM} candle", f"Hair {SHALOM}")
    assert found(client, SHALOM) == {pointed}


def migrate_to(target: str) -> None:
    executor = MigrationExecutor(connection)
    executor.migrate([("recommendations", target)])


def folded_categories_found(name: str) -> set[str]:
    """Documents whose folded category names hold `name`, through the index when it serves."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT product_id FROM recommendations_productdocument "
            f"WHERE {MIGRATION.FOLD}(categories) && {MIGRATION.FOLD}(ARRAY[%s])",
            [name],
        )
        return {row[0] for row in cursor.fetchall()}


@pytest.mark.django_db(transaction=True)
def test_the_migration_goes_back_and_forth_on_stored_documents_and_again_after_an_interruption():
    """Back to 0029 (the old folding, the function dropped) and forward again on documents
    stored before; and forward once more after an interruption left its function behind, as a
    failed UPDATE or REINDEX does (it runs outside a transaction): `migrate` again finishes it."""
    last = MigrationExecutor(connection).loader.graph.leaf_nodes("recommendations")[0][1]
    ProductDocument.objects.create(
        product_id="1", title="Candle", categories=["\u0130stanbul", SHALOM_POINTED]
    )
    try:
        migrate_to("0029_product_document_folded_categories_index")
        ProductDocument.objects.filter(product_id="1").update(title=f"{SHALOM_POINTED} candle")
        assert folded_categories_found(SHALOM) == set()  # the old folding kept the points
        migrate_to(MIGRATION.__name__.rsplit(".", 1)[1])
        assert ProductDocument.objects.get(product_id="1").title == f"{SHALOM} candle"
        assert folded_categories_found(SHALOM) == folded_categories_found("istanbul") == {"1"}
        migrate_to("0029_product_document_folded_categories_index")
        with connection.cursor() as cursor:  # what an interrupted forward run leaves behind
            cursor.execute(MIGRATION.Migration.operations[0].sql)
            cursor.execute(MIGRATION.FOLDED_NAMES)
            cursor.execute(  # the copy an interrupted REINDEX CONCURRENTLY makes
                f"CREATE INDEX {MIGRATION.INDEX}_ccnew ON {MIGRATION.TABLE} "
                f"USING gin ({MIGRATION.FOLD}(categories))"
            )
        migrate_to(MIGRATION.__name__.rsplit(".", 1)[1])
        assert folded_categories_found(SHALOM) == {"1"}
        with connection.cursor() as cursor:
            cursor.execute("SELECT relname FROM pg_class WHERE relname LIKE %s", [f"{MIGRATION.INDEX}%"])
            assert [name for (name,) in cursor.fetchall()] == [MIGRATION.INDEX]
    finally:
        migrate_to(last)
