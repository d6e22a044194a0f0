"""Load a catalogue (stores, category tree, products) from a public dataset or a CSV/JSONL file.

The dataset readers live in the engine (`recommendations.events.datasets`); this module
writes what they read into the shop's own models. Source ids go into `Store.external_id`
and `Product.sku`, which is how the event importer finds the products again. Re-running
updates names, prices and categories in place where they changed (and nothing else) and
creates nothing twice. A file with any bad row writes nothing. A row repeating an earlier
row's sku is left out (the first row's product is imported) and counted; those with other
values are named in the result. Names (of stores, categories, products and brands) are stored
clean (`recommendations.text.clean_name`: NFKC, control characters as spaces), whichever
reader read them. A category name longer than
`Category.name` holds (120 characters) is cut to it, as titles and brands are.
"""

from __future__ import annotations

import csv
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from recommendations.events.datasets import (
    Catalogue,
    ProductSource,
    RowError,
    StoreSource,
    get_dataset,
)
from recommendations.events.textfiles import error_lines, file_kind, open_text, read_jsonl
from recommendations.progress import Progress
from recommendations.text import clean_name
from shop.models import Category, Product, Store

logger = logging.getLogger(__name__)

#: Stock given to imported products (datasets have none), so they can be recommended.
DEFAULT_STOCK = 100
CATALOG_FIELDS = ("sku", "title", "category", "store", "store_name", "description", "brand", "price")
REQUIRED_FIELDS = ("sku", "title", "category", "store", "price")
MAX_PRICE = Decimal("99999999.99")  # Product.price: 10 digits, 2 after the point
#: Longer category names are cut to this (`Category.name`); names alike up to it are one category.
CATEGORY_NAME_LENGTH = Category._meta.get_field("name").max_length
STORE_NAME_LENGTH = Store._meta.get_field("name").max_length
TITLE_LENGTH = Product._meta.get_field("title").max_length
BRAND_LENGTH = Product._meta.get_field("brand").max_length
WRITE_BATCH = 2000  # rows per INSERT or UPDATE statement
# What a re-import changes on a product it finds by sku.
UPDATED_FIELDS = ["title", "description", "category", "store", "brand", "price", "updated_at"]


@dataclass
class CatalogResult:
    """What an import wrote, and the rows that repeated an earlier row's sku (the first row's
    product is imported): how many, and those with other values ("<file> line N: ...")."""

    stores_created: int = 0
    stores_updated: int = 0
    categories_created: int = 0
    products_created: int = 0
    products_updated: int = 0
    seconds: float = 0.0
    repeated: int = 0
    conflicts: list[str] = field(default_factory=list)


class CatalogImportFailed(Exception):
    """The source had bad rows; nothing was written."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__(
            f"{len(errors)} bad row(s); nothing was imported. Fix them and run again:{error_lines(errors)}"
        )
        self.errors = errors


class UniqueSlugs:
    """Slugs that are unique against those already taken (the table's and this run's)."""

    def __init__(self, taken: Iterable[str], max_length: int) -> None:
        self.taken = set(taken)
        self.max_length = max_length

    def __call__(self, text: str) -> str:
        base = slugify(text)[: self.max_length - 8] or "item"
        slug, n = base, 1
        while slug in self.taken:
            n += 1
            slug = f"{base}-{n}"
        self.taken.add(slug)
        return slug


def import_dataset_catalog(name: str, folder: Path | str, progress: Progress | None = None) -> CatalogResult:
    """Stores, categories and products of a public dataset (see `recommendations.events.datasets`)."""
    progress = progress or Progress()
    progress(f"reading {name}", 0, 1)
    return _write_read(get_dataset(name).catalogue(Path(folder)), progress)


def import_catalog_file(
    path: Path | str, progress: Progress | None = None, *, whole_lines: bool = True
) -> CatalogResult:
    """Products from CSV or JSONL with columns sku, title, category ("Root > Leaf"), store
    (the store's id in your system), price, and optionally store_name, description, brand.
    A CSV file whose last line ends without a line break looks cut short and is refused
    (`open_text`) unless `whole_lines` is False."""
    progress = progress or Progress()
    progress(f"reading {Path(path).name}", 0, 1)
    return _write_read(read_catalog_file(Path(path), whole_lines=whole_lines), progress)


def _write_read(catalogue: Catalogue, progress: Progress) -> CatalogResult:
    """Write a catalogue as read, unless a row was bad; its repeated skus go in the result."""
    if catalogue.errors:
        raise CatalogImportFailed([str(e) for e in catalogue.errors])
    result = write_catalogue(catalogue.stores, catalogue.products, progress)
    result.repeated = catalogue.repeated
    result.conflicts = [str(conflict) for conflict in catalogue.conflicts]
    return result


def _catalog_rows(path: Path, whole_lines: bool) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line, row) of a .csv or .jsonl file; a string in place of the row says what is wrong.
    `whole_lines` is for CSV (`open_text`): a JSON line cut short is not JSON, a bad line."""
    if file_kind(path) == ".jsonl":
        yield from read_jsonl(path)
        return
    with open_text(path, whole_lines=whole_lines) as handle:
        reader = csv.DictReader(handle)
        for row in reader:
            yield reader.line_num, row


def read_catalog_file(path: Path, *, whole_lines: bool = True) -> Catalogue:
    result = Catalogue()
    stores: dict[str, StoreSource] = {}
    for line, row in _catalog_rows(path, whole_lines):
        if isinstance(row, str):
            result.errors.append(RowError(path.name, line, row))
            continue
        values = {k: str(row.get(k) or "").strip() for k in CATALOG_FIELDS}
        missing = [k for k in REQUIRED_FIELDS if not values[k]]
        unknown = sorted(set(row) - set(CATALOG_FIELDS) - {None})
        problems = [f"missing {', '.join(missing)}"] if missing else []
        if unknown or None in row:
            problems.append(f"unknown column(s) {', '.join(map(str, unknown)) or '(extra cells)'}")
        try:
            price = Decimal(values["price"] or "0").quantize(Decimal("0.01"))
            if not 0 <= price <= MAX_PRICE:
                raise InvalidOperation
        except InvalidOperation:
            problems.append(f"price {values['price']!r} is not an amount from 0 to {MAX_PRICE}")
            price = None
        if len(values["sku"]) > 64 or len(values["store"]) > 64:
            problems.append("sku and store must be at most 64 characters")
        category_path = tuple(p.strip() for p in values["category"].split(">") if p.strip())
        if values["category"] and not category_path:
            problems.append(f"category {values['category']!r} names no category (e.g. 'Kitchen > Mugs')")
        nul = [k for k, v in values.items() if "\x00" in v]
        if nul:
            problems.append(f"NUL characters in {', '.join(nul)}")
        if problems:
            result.errors.append(RowError(path.name, line, "; ".join(problems)))
            continue
        stores.setdefault(
            values["store"], StoreSource(values["store"], values["store_name"] or values["store"])
        )
        result.add_product(
            ProductSource(
                source_id=values["sku"],
                title=values["title"][:300],
                category_path=category_path,
                store_source_id=values["store"],
                description=values["description"],
                brand=values["brand"][:120],
                price=price,
            ),
            path.name,
            line,
        )
    result.stores = list(stores.values())
    return result


def _stored_names(path: tuple[str, ...]) -> tuple[str, ...]:
    """A source path's names as `Category.name` holds them: clean, cut to the field's length."""
    return tuple(clean_name(name)[:CATEGORY_NAME_LENGTH] for name in path)


def _ensure_categories(paths: set[tuple[str, ...]], result: CatalogResult) -> dict[tuple[str, ...], Category]:
    """The category of every source path, creating missing nodes parents-first. Nodes are
    looked up by their names as stored (clean, cut), so a re-import finds the nodes it created,
    also those an import made before names were cleaned (a node named exactly so comes first)."""
    existing = list(Category.objects.all())
    nodes = {_stored_names(tuple(c.names)): c for c in existing}
    nodes.update((tuple(c.names), c) for c in existing)
    slugs = UniqueSlugs(Category.objects.values_list("slug", flat=True), 140)
    for names in sorted({_stored_names(path) for path in paths}):
        for depth in range(1, len(names) + 1):
            prefix = names[:depth]
            if prefix not in nodes:
                nodes[prefix] = Category.objects.create(
                    name=prefix[-1], slug=slugs(" ".join(prefix)), parent=nodes.get(prefix[:-1])
                )
                result.categories_created += 1
    return {path: nodes[_stored_names(path)] for path in paths}


def _write_stores(sources: list[StoreSource], result: CatalogResult) -> dict[str, Store]:
    wanted = {s.source_id: s for s in sources}
    names = {source_id: clean_name(s.name)[:STORE_NAME_LENGTH] for source_id, s in wanted.items()}
    existing = {s.external_id: s for s in Store.objects.filter(external_id__in=wanted)}
    changed = []
    for source_id, store in existing.items():
        source = wanted[source_id]
        if (store.name, store.description) != (names[source_id], source.description):
            store.name, store.description = names[source_id], source.description
            changed.append(store)
    Store.objects.bulk_update(changed, ["name", "description"], batch_size=WRITE_BATCH)
    slugs = UniqueSlugs(Store.objects.values_list("slug", flat=True), 220)
    new = [
        Store(
            external_id=source_id,
            name=names[source_id],
            slug=slugs(names[source_id]),
            description=s.description,
        )
        for source_id, s in wanted.items()
        if source_id not in existing
    ]
    Store.objects.bulk_create(new, batch_size=WRITE_BATCH)
    result.stores_created += len(new)
    result.stores_updated += len(changed)
    return {s.external_id: s for s in Store.objects.filter(external_id__in=wanted)}


def _differs(product: Product, values: dict[str, Any]) -> bool:
    """Whether `values` would change the product. A re-import leaves the others alone: a new
    `updated_at` would have the 15-minute task embed each of them again. Relations are
    compared by key, so that no related row is fetched."""
    for name, value in values.items():
        model_field = Product._meta.get_field(name)
        if getattr(product, model_field.attname) != (value.pk if model_field.is_relation else value):
            return True
    return False


@transaction.atomic
def write_catalogue(
    stores: list[StoreSource], products: list[ProductSource], progress: Progress | None = None
) -> CatalogResult:
    """Upsert stores and products by source id, in one transaction; `progress` hears of each
    batch of products written."""
    progress = progress or Progress()
    started = time.monotonic()
    result = CatalogResult()
    store_rows = _write_stores(stores, result)
    unknown_stores = sorted({p.store_source_id for p in products} - store_rows.keys())
    if unknown_stores:
        raise CatalogImportFailed([f"store {s} is used by products but not defined" for s in unknown_stores])
    categories = _ensure_categories({p.category_path for p in products}, result)

    wanted = {p.source_id: p for p in products}
    existing = {p.sku: p for p in Product.objects.filter(sku__in=wanted)}
    slugs = UniqueSlugs(Product.objects.values_list("slug", flat=True), 320)
    new, changed = [], []
    for sku, source in wanted.items():
        values = {
            "title": clean_name(source.title)[:TITLE_LENGTH],
            "description": source.description,
            "category": categories[source.category_path],
            "store": store_rows[source.store_source_id],
            "brand": clean_name(source.brand)[:BRAND_LENGTH],
            "price": source.price if source.price is not None else Decimal("0.00"),
        }
        product = existing.get(sku)
        if product is None:
            new.append(Product(sku=sku, slug=slugs(values["title"]), stock=DEFAULT_STOCK, **values))
        elif _differs(product, values):
            for name, value in values.items():
                setattr(product, name, value)
            changed.append(product)
    # bulk_update() skips `auto_now`: stamp the change so cached recommendation cards refresh.
    now = timezone.now()
    for product in changed:
        product.updated_at = now
    total, done = len(new) + len(changed), 0
    for start in range(0, len(new), WRITE_BATCH):
        done += len(Product.objects.bulk_create(new[start : start + WRITE_BATCH]))
        progress("writing products", done, total)
    for start in range(0, len(changed), WRITE_BATCH):
        batch = changed[start : start + WRITE_BATCH]
        Product.objects.bulk_update(batch, UPDATED_FIELDS)
        done += len(batch)
        progress("writing products", done, total)
    result.products_created, result.products_updated = len(new), len(changed)
    result.seconds = time.monotonic() - started
    logger.info(
        "Catalogue written in %.1fs: %d/%d stores created/updated, %d categories created, "
        "%d/%d products created/updated",
        result.seconds,
        result.stores_created,
        result.stores_updated,
        result.categories_created,
        result.products_created,
        result.products_updated,
    )
    return result
