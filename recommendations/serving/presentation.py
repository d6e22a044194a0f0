"""What a surface shows of a recommended product or store, read through the adapters.

The API's JSON and the template tags' cards are built from these dictionaries, so both
show the same title, price, store and link for any host model, with no extra queries
(the rules load products with their category and store relations).

Building a card needs the host's model instance with its store and category: a query and
three model instances per product, the largest part of what a list costs the web worker
once its candidates are known (docs/benchmarks.md). An adapter that names its
`card_values` has its cards built from one row of values each instead (`card_from_row`),
for a third of the CPU. An answer reads its cards only when a surface asks for them
(`ShownObjects`), and product cards are kept between requests
(`CardCache`) when the product adapter names an `updated_field`: the rules' availability
read returns that field for every candidate, and a card is reused while it is unchanged,
for at most `CARD_CACHE_SECONDS` (a store's name or a category path can change without
touching the product). Stock and `is_active` never come from a card: the rules read them
on every request. An update that bypasses `save()` (`QuerySet.update()`) should set the
updated field too, or its cards show the old values until they expire.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from django.core.signals import setting_changed
from django.db import models

from recommendations.adapters import get_product_adapter, get_store_adapter
from recommendations.conf import rec_settings
from recommendations.serving.types import Kind

if TYPE_CHECKING:
    from recommendations.serving.types import Recommendation

Card = dict[str, Any]

#: Sources that fill a list whose own ran out: the shop's (or a category's) popular and newest
#: products, whose reasons say so ("Popular in Hair", "New in Hair").
FILL_SOURCES = frozenset({"trending", "popular", "new"})
#: Sources of a list's own reason, for the lists whose like products are fill too: bought
#: together's "Similar to ..." products were bought with nothing.
OWN_SOURCES = {Kind.BOUGHT_TOGETHER: frozenset({"co_purchase", "co_view"})}


def url_of(obj: models.Model) -> str | None:
    get_url = getattr(obj, "get_absolute_url", None)
    return get_url() if callable(get_url) else None


def store_name(product: models.Model) -> str | None:
    """The product's store name, from the already selected relation."""
    adapter, store_adapter = get_product_adapter(), get_store_adapter()
    if not adapter.store_field or store_adapter is None:
        return None
    store = getattr(product, adapter.store_field, None)
    return str(getattr(store, store_adapter.name_field)) if store is not None else None


def product_card(obj: models.Model) -> Card:
    """Only what a card shows (a whole `ProductRecord` also builds the text the model reads).

    Only strings, numbers and a tuple: a kept card holds nothing the garbage collector must
    scan, so tens of thousands of them do not slow its full collections.
    """
    adapter = get_product_adapter()
    return {
        "id": adapter.key(obj.pk),
        "title": adapter.get_title(obj),
        "price": adapter.get_price(obj),
        "category": tuple(adapter.get_category_path(obj)),
        "store_id": adapter.get_store_id(obj),
        "store": store_name(obj),
        "url": url_of(obj),
    }


def card_from_row(row: tuple) -> Card:
    """A product card from the adapter's `card_values` read for one product (its key first)."""
    adapter = get_product_adapter()
    made = adapter.card_from_values(dict(zip(adapter.card_values, row[1:], strict=True)))
    return {
        "id": adapter.key(row[0]),
        "title": made["title"],
        "price": made["price"],
        "category": tuple(made["category"]),
        "store_id": made["store_id"],
        "store": made["store"],
        "url": made["url"],
    }


def store_card(obj: models.Model) -> Card:
    adapter = get_store_adapter()
    return {
        "id": adapter.key(obj.pk),
        "name": str(getattr(obj, adapter.name_field)),
        "url": url_of(obj),
    }


def fill_heading(kind: str, recommendations: Sequence[Recommendation]) -> str:
    """The heading of a list about a product (bought together, similar) that holds only fill:
    its first product's reason ("Popular in Hair", "Similar to Argan shampoo"), so that a shelf
    titled "Frequently bought together" does not claim products that nobody bought with this
    one. "" when any product is there for the list's own reason, or without reasons
    (`Options.explain` off)."""
    own = OWN_SOURCES.get(kind)
    if not recommendations or any(
        rec.source in own if own else rec.source not in FILL_SOURCES for rec in recommendations
    ):
        return ""
    return recommendations[0].reason


def card_version_field() -> str | None:
    """The product field whose value validates a cached card; None when cards are not kept."""
    if not rec_settings.CARD_CACHE_SECONDS or rec_settings.CARD_CACHE_SIZE <= 0:
        return None
    return get_product_adapter().updated_field


class CardCache:
    """Product cards of this process by product key, each with the updated value it was built
    from and when it expires; the least recently used go first beyond `CARD_CACHE_SIZE`.

    The cards handed out are shared: surfaces copy them (`{**card, ...}`) rather than change them.
    """

    def __init__(self) -> None:
        self._entries: OrderedDict[str, tuple[Any, float, Card]] = OrderedDict()
        self._lock = threading.Lock()

    def get_many(self, versions: dict[str, Any]) -> dict[str, Card]:
        """The cards still valid for these products, given each one's current updated value."""
        now = time.monotonic()
        found = {}
        with self._lock:
            for key, version in versions.items():
                entry = self._entries.get(key)
                if entry is None:
                    continue
                if entry[0] == version and entry[1] > now:
                    found[key] = entry[2]
                    self._entries.move_to_end(key)
                else:
                    del self._entries[key]
        return found

    def put_many(self, cards: dict[str, Card], versions: dict[str, Any]) -> None:
        expires = time.monotonic() + rec_settings.CARD_CACHE_SECONDS
        size = rec_settings.CARD_CACHE_SIZE
        with self._lock:
            for key, card in cards.items():
                self._entries[key] = (versions[key], expires, card)
                self._entries.move_to_end(key)
            while len(self._entries) > size:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


product_cards = CardCache()


class ShownObjects:
    """The host objects of one answer, read from the database when a surface first asks.

    `read(keys)` returns the objects (any order; missing ones are left out), `card` turns one
    into its card; or `read_cards(keys)` returns the cards by key without objects. With
    `versions` (product key -> updated value, from the rules' read), cards come from
    `product_cards` where still valid, and only the others are read.
    """

    def __init__(
        self,
        keys: Iterable[str],
        *,
        card: Callable[[models.Model], Card],
        key: Callable[[Any], str],
        read: Callable[[list[str]], Iterable[models.Model]] | None = None,
        read_cards: Callable[[list[str]], dict[str, Card]] | None = None,
        objects: dict[str, models.Model] | None = None,
        versions: dict[str, Any] | None = None,
    ) -> None:
        self.keys = list(keys)
        self.card, self.key, self.read, self.versions = card, key, read, versions
        self.read_cards = read_cards
        self._objects: dict[str, models.Model] = dict(objects or {})
        self._cards: dict[str, Card] | None = None

    def _load(self, keys: list[str]) -> dict[str, models.Model]:
        wanted = [k for k in keys if k not in self._objects]
        if wanted and self.read is not None:
            self._objects.update({self.key(obj.pk): obj for obj in self.read(wanted)})
        return self._objects

    def objects(self) -> dict[str, models.Model]:
        """Every object of the answer that still exists, by key (one query, the first time)."""
        return self._load(self.keys)

    def cards(self) -> dict[str, Card]:
        """Every card of the answer by key, reading only the objects of cards not kept."""
        if self._cards is None:
            versions = self.versions or {}
            kept = (
                product_cards.get_many({k: versions[k] for k in self.keys if k in versions})
                if versions
                else {}
            )
            missing = [k for k in self.keys if k not in kept]
            made = self._make(missing) if missing else {}
            if versions and made:
                product_cards.put_many({k: c for k, c in made.items() if k in versions}, versions)
            self._cards = {**kept, **made}
        return self._cards

    def _make(self, keys: list[str]) -> dict[str, Card]:
        if self.read_cards is not None:
            return self.read_cards(keys)
        objects = self._load(keys)
        return {k: self.card(objects[k]) for k in keys if k in objects}


def _clear_on_change(*, setting: str, **kwargs: Any) -> None:
    if setting == "RECOMMENDATIONS":
        product_cards.clear()


setting_changed.connect(_clear_on_change)
