"""Errors the services raise for bad requests; surfaces turn them into 404 and 400."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models

from recommendations.adapters import get_product_adapter, get_store_adapter
from recommendations.serving.compiled import KeyedQuery, KeyIn, keyed_query
from recommendations.sql import key_value


class NotFound(LookupError):
    """An id that names nothing (product, store, user)."""


class InvalidParameters(ValueError):
    """Bad parameters, keyed by parameter name, each with a message that says what to send."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def _get(queryset: models.QuerySet, key: Any) -> models.Model | None:
    try:
        return queryset.filter(pk=key).first()
    except (ValueError, TypeError, ValidationError):  # not even a valid key for this model
        return None


def lookup(queryset: models.QuerySet, key: Any, *, shape: str) -> models.Model | None:
    """The row of `queryset` with this key, holding only its key (other fields load on first
    use), or None. Every request that names a product, store or user asks, so the query is
    compiled once per `shape` (`compiled.keyed_query`: the queryset must not change)."""
    value = key_value(queryset.model, key)
    if value is None:
        return None
    found = lookup_query(queryset, shape=shape).objects([value])
    return found[0] if found else None


def lookup_query(queryset: models.QuerySet, *, shape: str) -> KeyedQuery:
    """`lookup`'s compiled query: the keys of the rows of `queryset` among the keys it is given."""
    model = queryset.model
    build = lambda keys: queryset.select_related(None).filter(KeyIn(model, keys)).only("pk").order_by()  # noqa: E731
    return keyed_query(("lookup", shape, model), build)


def _key_of(queryset: models.QuerySet | None, key: Any, shape: str) -> str | None:
    found = lookup(queryset, key, shape=shape) if queryset is not None else None
    return str(found.pk) if found is not None else None


def require_product(product_id: str) -> None:
    """`NotFound` naming the id unless the host has this product (available or not)."""
    if _key_of(get_product_adapter().index_queryset(), product_id, "product") is None:
        raise NotFound(f"No product with id {product_id!r}.")


def _stores() -> models.QuerySet | None:
    adapter = get_store_adapter()
    return adapter.index_queryset() if adapter is not None else None


def require_store(store_id: str) -> str:
    """The store's key as the engine writes it ("7" for "007"); `NotFound` unless the host has
    this store (also when the shop has no stores)."""
    key = _key_of(_stores(), store_id, "store")
    if key is None:
        raise NotFound(f"No store with id {store_id!r}.")
    return key


def product_key(product_id: str) -> str:
    """The product's key as the engine writes it ("7" for "007") without reading the
    database; `NotFound` when it cannot name a product. Whether the product exists is checked
    later (`rules.finalize` with `seed`)."""
    return _normalised(get_product_adapter(), product_id, "product")


def store_key(store_id: str) -> str:
    """`product_key` for a store (`rules.finalize` with `store_id` checks it exists);
    `NotFound` also when the shop has no stores."""
    return _normalised(get_store_adapter(), store_id, "store")


def excluded_keys(ids: Iterable[str], *, stores: bool = False) -> frozenset[str]:
    """Product (or store) ids to leave out, as the engine writes them ("6" for "06", a UUID in
    lower case), so that `?exclude=` takes any spelling a URL takes. An id that cannot name
    one is kept as given: it leaves out nothing."""
    adapter = get_store_adapter() if stores else get_product_adapter()
    return frozenset(key if (engine := _engine_key(adapter, key)) is None else engine for key in ids)


def _normalised(adapter: Any, key: str, what: str) -> str:
    engine = _engine_key(adapter, key)
    if engine is None:
        raise NotFound(f"No {what} with id {key!r}.")
    return engine


def _engine_key(adapter: Any, key: str) -> str | None:
    """The key as the engine writes it, or None when it cannot name one of the adapter's
    objects (malformed, out of range, or no adapter: a shop without stores)."""
    value = key_value(adapter.model, key) if adapter is not None else None
    return None if value is None else adapter.key(value)


def get_store(store_id: str) -> models.Model:
    """The host store with this id, or `NotFound` (also when the shop has no stores)."""
    stores = _stores()
    store = _get(stores, store_id) if stores is not None else None
    if store is None:
        raise NotFound(f"No store with id {store_id!r}.")
    return store


def valid_product_ids(product_ids: list[str]) -> list[str]:
    """The products' keys as the engine writes them (`product_key`), in the given order without
    repeats, after checking that every one is a product; `NotFound` lists the rest. A key
    spelled otherwise ("06", an upper-case UUID) names its product, as it does in a URL."""
    adapter = get_product_adapter()
    keys = {given: key for given in product_ids if (key := _engine_key(adapter, given)) is not None}
    found: set[str] = set()
    if keys:
        found = {adapter.key(pk) for pk in adapter.by_keys(set(keys.values())).values_list("pk", flat=True)}
    unknown = [given for given in product_ids if keys.get(given) not in found]
    if unknown:
        raise NotFound(f"No product with id(s): {', '.join(unknown[:20])}.")
    return list(dict.fromkeys(keys[given] for given in product_ids))
