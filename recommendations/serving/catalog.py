"""Keeps the engine's search index (`ProductDocument`) in step with the host's catalogue.

Everything is read through the product adapter (`to_record`), so any host model works.
`index_products()` upserts the given products (or all) and deletes documents of products
that no longer exist. `SearchIndexProcessor` (installed in the app's `ready()`) calls it for
the products a transaction saved or deleted once it commits; `StoreSearchProcessor` and
`CategorySearchProcessor` rewrite, in place, the store names and category paths of the
products of saved stores and categories (the paths kept with their popularity too);
`refresh_serving` rebuilds it all.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Sequence
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connection, models, transaction
from django.db.models import TextField
from django.db.models.functions import Cast
from django.db.models.signals import post_save, pre_delete
from django.utils import timezone

from recommendations.adapters import ProductRecord, get_product_adapter, get_store_adapter, get_store_model
from recommendations.models import ProductDocument, ProductPopularity
from recommendations.models.search import SEARCH_FORM, search_form
from recommendations.progress import Progress
from recommendations.signal_processors import PendingKeysProcessor, Receiver

logger = logging.getLogger(__name__)
BATCH_SIZE = 2000
UPDATE_FIELDS = [
    "title",
    "text",
    "brand",
    "categories",
    "store_id",
    "store_name",
    "placement",
    "price",
    "created_at",
    "updated_at",
]


def _placement(categories: list[str], store_name: str) -> str:
    """A document's `placement`: its categories and its store's name, the empty ones left out,
    in `search_form` as the other searched text (`_placement_sql` is the same in SQL)."""
    return search_form(" ".join(part for part in (*categories, store_name) if part))


def _placement_sql(categories: str = "d.categories", store_name: str = "d.store_name") -> str:
    parts = f"array_remove(array_append({categories}, {store_name}), '')"
    return f"{SEARCH_FORM}(concat_ws(' ', VARIADIC {parts}))"


def _categories(path: Iterable[str]) -> list[str]:
    return [c[:200] for c in path]


def _document(record: ProductRecord, store_names: dict[str, str]) -> ProductDocument:
    categories = _categories(record.category_path)
    store_name = store_names.get(record.store_id or "", "")
    return ProductDocument(
        product_id=record.id,
        title=search_form(record.title)[:500],
        text=search_form(record.text),
        brand=search_form(record.brand)[:200],
        categories=categories,
        store_id=record.store_id or "",
        store_name=store_name,
        placement=_placement(categories, store_name),
        price=record.price,
        created_at=record.created_at,
    )


def index_products(keys: Iterable[str] | None = None, progress: Progress | None = None) -> int:
    """Write search documents for these products (all when None); returns how many.

    Products among `keys` that the host no longer has (or no longer indexes) lose their
    document. Each batch is one transaction, so a failure leaves earlier batches in place
    and no batch half-written. `progress` hears of each batch written.
    """
    progress = progress or Progress()
    started = time.monotonic()
    since = timezone.now()
    adapter = get_product_adapter()
    queryset = adapter.index_queryset()
    wanted = None if keys is None else {str(k) for k in keys}
    if wanted is not None:
        queryset = queryset.filter(pk__in=list(wanted))
    total = queryset.count()
    seen: set[str] = set()
    batch: list[ProductRecord] = []
    store_names: dict[str, str] = {}
    for record in adapter.records(queryset):
        batch.append(record)
        seen.add(record.id)
        if len(batch) >= BATCH_SIZE:
            _write(batch, store_names)
            batch = []
            progress("search index", len(seen), total)
    _write(batch, store_names)
    progress("search index", len(seen), total)
    if wanted is None:  # every document written now has a newer `updated_at`
        stale = ProductDocument.objects.filter(updated_at__lt=since)
    else:
        stale = ProductDocument.objects.filter(product_id__in=wanted - seen)
    removed, _ = stale.delete()
    logger.info(
        "Indexed %d products for search (%d removed) in %.1f s",
        len(seen),
        removed,
        time.monotonic() - started,
    )
    return len(seen)


def _write(batch: list[ProductRecord], store_names: dict[str, str]) -> None:
    """Upsert the batch's documents; `store_names` keeps the names read so far (one read per
    store however many batches it has products in)."""
    if not batch:
        return
    _read_store_names({r.store_id for r in batch if r.store_id} - store_names.keys(), store_names)
    documents = [_document(record, store_names) for record in batch]
    with transaction.atomic():
        ProductDocument.objects.bulk_create(
            documents, update_conflicts=True, unique_fields=["product_id"], update_fields=UPDATE_FIELDS
        )


def _read_store_names(store_ids: set[str], into: dict[str, str]) -> None:
    adapter = get_store_adapter()
    if adapter is None or not store_ids:
        return
    into.update({store_id: "" for store_id in store_ids})  # a store the host no longer has
    into.update({store.id: store.name for store in adapter.records(adapter.by_keys(store_ids))})


class SearchIndexProcessor(PendingKeysProcessor):
    """Rewrites the search documents of saved or deleted products when their transaction commits.

    A product is a few small statements, so this runs in the saving process, with no broker.
    A failure is logged and never fails the save: the next save or `refresh_serving` fixes it.
    """

    def process(self, keys: list[str]) -> None:
        try:
            with transaction.atomic():  # all or nothing, and a failure cannot break a caller's transaction
                index_products(keys)
        except Exception:  # the product is saved either way; its document catches up later
            logger.exception(
                "Could not update the search documents of product(s) %s; the products are saved. "
                "Run `python manage.py refresh_serving` once the cause is fixed.",
                ", ".join(keys[:10]),
            )


def _write_placement(column: str, values: dict[str, Any], of_key: str, params: Sequence[Any] = ()) -> int:
    """Give the documents of each key of `values` that key's value as their `column` (the
    store's name, or the categories) and their `placement` with it, in one UPDATE of the
    documents that hold another value; returns how many changed. `of_key` is the SQL (with
    its `params`) that holds when document `d` is one of key `v.key`."""
    if not values:
        return 0
    value_type = ProductDocument._meta.get_field(column).db_type(connection)
    rows = json.dumps([{"key": key, "value": value} for key, value in values.items()])
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {ProductDocument._meta.db_table} AS d "
            f"SET {column} = v.value, placement = {_placement_sql(**{column: 'v.value'})}, "
            "updated_at = now() "
            f"FROM jsonb_to_recordset(%s::jsonb) AS v(key text, value {value_type}) "
            f"WHERE ({of_key}) AND d.{column} IS DISTINCT FROM v.value",
            [rows, *params],
        )
        return cursor.rowcount


def write_store_names(store_ids: list[str]) -> int:
    """Write these stores' names into their products' search documents, in place; returns
    how many changed."""
    adapter = get_store_adapter()
    if adapter is None:
        return 0
    names = {store_id: "" for store_id in store_ids}  # a deleted store: its name goes
    names.update({store.id: store.name for store in adapter.records(adapter.by_keys(store_ids))})
    return _write_placement("store_name", names, "d.store_id = v.key")


def _products_under(category_ids: list[str]) -> tuple[models.QuerySet, str]:
    """The indexed products in these categories and in every category under them, and the
    name of their category column."""
    adapter = get_product_adapter()
    category = adapter.model._meta.get_field(adapter.category_field).attname
    categories = sorted(adapter.categories_under(category_ids))
    return adapter.index_queryset().filter(**{f"{category}__in": categories}).order_by(), category


def write_category_paths(category_ids: list[str]) -> int:
    """Write the category paths of these categories, and of every category under them, into
    their products' search documents, in place; returns how many changed.

    A category's path is read through the adapter from one of its products (the same for
    all of them), so it is what `index_products()` writes, however the host builds it.
    """
    adapter = get_product_adapter()
    products, category = _products_under(category_ids)
    first = products.order_by(category, "pk").distinct(category).values_list("pk", category)
    category_of = {adapter.key(pk): adapter.key(category_id) for pk, category_id in first}
    paths = {
        category_of[record.id]: _categories(record.category_path)
        for record in adapter.records(products.filter(pk__in=list(category_of)))
    }
    documents = products.values_list(Cast("pk", TextField()), Cast(category, TextField()))
    sql, params = documents.query.sql_with_params()
    changed = _write_placement("categories", paths, f"(d.product_id, v.key) IN ({sql})", params)
    if changed:
        # Trending in a category reads the paths kept beside each product's popularity: copied
        # too, or the renamed category had no trending products until the hourly refresh.
        keys_sql, keys_params = products.values_list(Cast("pk", TextField())).query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {ProductPopularity._meta.db_table} AS p SET categories = d.categories "
                f"FROM {ProductDocument._meta.db_table} AS d WHERE d.product_id = p.product_id "
                f"AND p.categories IS DISTINCT FROM d.categories AND p.product_id IN ({keys_sql})",
                keys_params,
            )
    return changed


class PlacementProcessor(PendingKeysProcessor):
    """Rewrites, once a transaction that saved or deleted objects of the watched model (a
    store, a category) commits, what those objects put in their products' search documents:
    a renamed store or category is found under its new name at once. One UPDATE of the
    documents that hold another value, so any other change writes nothing, and 100,000
    products are renamed in the database, not product by product in the request. A failure
    is logged and never fails the save; `refresh_serving` rewrites every document."""

    #: What `write` writes, for the log: "names of store(s)".
    written = ""

    def handle_change(self, sender: type[models.Model], instance: models.Model, **kwargs: Any) -> None:
        if not kwargs.get("created"):  # a new store or category has no products yet
            super().handle_change(sender, instance, **kwargs)

    def write(self, keys: list[str]) -> int:
        """Write into the search documents; returns how many changed."""
        raise NotImplementedError

    def process(self, keys: list[str]) -> None:
        try:
            with transaction.atomic():  # a failure cannot break a caller's transaction
                changed = self.write(keys)
        except Exception:  # saved either way
            logger.exception(
                "Could not write the %s %s into the search documents; they are saved. "
                "Run `python manage.py refresh_serving` once the cause is fixed.",
                self.written,
                ", ".join(keys[:10]),
            )
            return
        if changed:
            logger.info(
                "Wrote the %s %s into %d search documents", self.written, ", ".join(keys[:10]), changed
            )


class StoreSearchProcessor(PlacementProcessor):
    """Writes saved stores' names into their products' search documents."""

    written = "names of store(s)"

    def watched_model(self) -> type[models.Model]:
        store_model = get_store_model()
        assert store_model is not None, "installed only for a shop with a store model"
        return store_model

    def write(self, keys: list[str]) -> int:
        return write_store_names(keys)


class CategorySearchProcessor(PlacementProcessor):
    """Writes saved categories' paths into the search documents of their products and of
    the products in the categories under them (a renamed parent renames its children's paths).

    A deleted category changes its products' paths with no save of theirs: the database's
    `SET_NULL` empties their category, and the categories under it go too (`CASCADE`) or
    become roots (`SET_NULL`). Its products cannot be found by category once it is gone, so
    they are looked up before (`pre_delete`) and their documents rewritten whole
    (`index_products`) once the deletion commits."""

    written = "paths of category(ies)"

    def __init__(self) -> None:
        super().__init__()
        # Hears no signal: it rewrites the documents of the products `handle_delete` hands it.
        self.products = SearchIndexProcessor()

    def watched_model(self) -> type[models.Model]:
        category_model = get_product_adapter().category_model()
        assert category_model is not None, "installed only for products with a category ForeignKey"
        return category_model

    def receivers(self) -> list[Receiver]:
        return [(post_save, self.handle_change, "save"), (pre_delete, self.handle_delete, "delete")]

    def handle_delete(
        self, sender: type[models.Model], instance: models.Model, using: str = DEFAULT_DB_ALIAS, **kwargs: Any
    ) -> None:
        """Before a category is deleted: hand on the products in it and in the categories
        under it. A failure is logged and never fails the deletion."""
        try:
            with transaction.atomic(using=using):  # a failed query cannot break the deletion's transaction
                adapter = get_product_adapter()
                products, _ = _products_under([adapter.key(instance.pk)])
                keys = [adapter.key(pk) for pk in products.values_list("pk", flat=True)]
        except Exception:
            logger.exception(
                "Could not find the products of deleted category %s; their search documents keep "
                "its path. Run `python manage.py refresh_serving` once the cause is fixed.",
                instance.pk,
            )
            return
        self.products.pend(keys, using)

    def write(self, keys: list[str]) -> int:
        return write_category_paths(keys)
