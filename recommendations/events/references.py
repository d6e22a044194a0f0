"""What events refer to: the products, stores and users they name, and the lists they credit.

Validation (`validation.validate_batch`, `columns.validate_columns`) checks an event's shape
without the database; these look up what a whole batch names with one round trip, and say
which events name something that does not exist or a list their sender may not claim.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from typing import Any

import psycopg
from django.contrib.auth import get_user_model
from django.db import connection, models

from recommendations.adapters import get_product_adapter, get_product_model, get_store_model
from recommendations.events.rows import EventRow
from recommendations.models.marketing import CAMPAIGN_CONTEXT_KEY, CAMPAIGN_LIST_KIND, UNVERIFIED_CAMPAIGN_KEY
from recommendations.serving.attribution import lists_served_to
from recommendations.sql import key_value, raw_connection

# The types of the events that name a campaign (in their context).
CAMPAIGN_EVENT_TYPES = frozenset({"campaign_view", "campaign_click"})


def existing_references(
    product_keys: set[str], store_keys: set[str], user_keys: set[str]
) -> tuple[dict[str, tuple[Any, Any]], dict[str, tuple[Any, Any]], dict[str, tuple[Any, Any]]]:
    """Which of these product, store and user keys name existing rows, in one round trip: each
    found key -> (its primary key as the database returns it, for a product also its store's).
    The product's store comes with the same query, so every product event knows its store."""
    products, stores, users = _existing_keys(
        (get_product_model(), product_keys, get_product_adapter().store_field),
        (get_store_model(), store_keys, None),
        (get_user_model(), user_keys, None),
    )
    return products, stores, users


def _existing_keys(
    *lookups: tuple[type[models.Model] | None, set[str], str | None],
) -> list[dict[str, tuple[Any, Any]]]:
    """For each (model, keys, extra field): each key naming an existing row -> (its primary key
    as the database returns it, the value of the extra field).

    One `= ANY(array)` query per model, about three times faster than the ORM's `pk__in` with
    hundreds of keys, and all of them sent in one round trip (psycopg's pipeline mode): this
    runs for every batch. Without a model (no store model configured) every key is accepted.
    """
    results: list[dict[str, tuple[Any, Any]]] = []
    queries: list[tuple[int, dict[str, Any], str, list[Any]]] = []
    quote = connection.ops.quote_name
    for model, keys, extra_field in lookups:
        results.append({key: (key, None) for key in keys})
        if model is None or not keys:
            continue
        pk_field = model._meta.pk
        # A key that cannot name a row (malformed, beyond its integer column) is not looked for.
        canonical = {key: value for key in keys if (value := key_value(model, key)) is not None}
        columns = [quote(pk_field.column)]
        if extra_field:
            columns.append(quote(model._meta.get_field(extra_field).column))
        sql = (
            f"SELECT {', '.join(columns)} FROM {quote(model._meta.db_table)} "
            f"WHERE {columns[0]} = ANY(%b::{pk_field.db_type(connection)}[])"  # binary: no escaping
        )
        queries.append((len(results) - 1, canonical, sql, [list(set(canonical.values()))]))
    if not queries:
        return results
    conn = raw_connection(connection)
    cursors = [psycopg.Cursor(conn) for _ in queries]
    pipelined = len(queries) > 1 and psycopg.Pipeline.is_supported()
    with conn.pipeline() if pipelined else nullcontext():
        for cursor, (_, _, sql, params) in zip(cursors, queries, strict=True):
            cursor.execute(sql, params)
    for cursor, (index, canonical, _, _) in zip(cursors, queries, strict=True):
        with cursor:  # fetchall: rows made in C, not one Python call each
            found = {str(row[0]): (row[0], row[1] if len(row) > 1 else None) for row in cursor.fetchall()}
        results[index] = {key: found[str(pk)] for key, pk in canonical.items() if str(pk) in found}
    return results


def check_references(rows: Sequence[EventRow]) -> tuple[list[EventRow], dict[int, dict[str, list[str]]]]:
    """Check that products, stores and users exist: one query per kind for the whole batch.

    Returns the rows with keys in canonical form (e.g. a UUID in lower case, a user's primary
    key as the database types it) and the errors by position in `rows`.
    """
    product_keys = {r.product_id for r in rows if r.product_id}
    store_keys = {r.store_id for r in rows if r.store_id}
    for row in rows:
        product_keys.update(row.context.get("products", ()))
        store_keys.update(row.context.get("stores", ()))
    product_lookup, stores, users = existing_references(
        product_keys, store_keys, {str(r.user_id) for r in rows if r.user_id is not None}
    )
    products = {key: (str(pk), store) for key, (pk, store) in product_lookup.items()}

    errors: dict[int, dict[str, list[str]]] = {}
    checked: list[EventRow] = []
    for position, row in enumerate(rows):
        (event_id, event_type, user_id, session_id, product_id, store_id, query, value, revenue, timestamp,
         context, recommendation_id) = row  # fmt: skip
        product = products.get(product_id) if product_id else None
        store = stores.get(store_id) if store_id else None
        user = users.get(str(user_id)) if user_id is not None else None
        listed = context.get("products")
        listed_stores = context.get("stores")
        if (
            (product_id and product is None)
            or (store_id and store is None)
            or (user_id is not None and user is None)
            or (listed is not None and not products.keys() >= set(listed))
            or (listed_stores is not None and not stores.keys() >= set(listed_stores))
        ):
            errors[position] = _unknown_references(row, products, stores, users)
            checked.append(row)
            continue
        if store is not None:
            store_id = str(store[0])
        if product is not None:
            product_id = product[0]
            if not store_id and product[1] is not None:
                store_id = str(product[1])
        if listed is not None and any(products[k][0] != k for k in listed):
            context = {**context, "products": [products[k][0] for k in listed]}
        if listed_stores is not None and any(str(stores[k][0]) != k for k in listed_stores):
            context = {**context, "stores": [str(stores[k][0]) for k in listed_stores]}
        checked.append(
            EventRow(
                event_id,
                event_type,
                user[0] if user is not None else None,
                session_id,
                product_id,
                store_id,
                query,
                value,
                revenue,
                timestamp,
                context,
                recommendation_id,
            )
        )
    return checked, errors


def _unknown_references(
    row: EventRow, products: Mapping[str, Any], stores: Mapping[str, Any], users: Mapping[str, Any]
) -> dict[str, list[str]]:
    """The messages for an event that names objects that do not exist."""
    problems: dict[str, list[str]] = {}
    if row.product_id and row.product_id not in products:
        problems["product_id"] = [f"no product has the primary key {row.product_id!r}"]
    missing = [key for key in row.context.get("products") or () if key not in products]
    if missing:
        problems["products"] = [f"unknown product(s): {', '.join(missing[:5])}"]
    if row.store_id and row.store_id not in stores:
        problems["store_id"] = [f"no store has the primary key {row.store_id!r}"]
    missing = [key for key in row.context.get("stores") or () if key not in stores]
    if missing:
        problems["stores"] = [f"unknown store(s): {', '.join(missing[:5])}"]
    if row.user_id is not None and str(row.user_id) not in users:
        problems["user_id"] = [f"no user has the primary key {str(row.user_id)!r}"]  # a UUID too
    return problems


def claimable_by_browser(rows: list[EventRow], *, user_id: Any, session_id: str) -> list[EventRow]:
    """The rows of a browser session (`session_id`, signed in as `user_id` or None) with only
    what it may claim: each keeps its `recommendation_id` only if that names a list shown to
    this session or user (`serving.attribution.lists_served_to`: one statement for the whole
    batch) and, for an event about a product (a click, a cart change), a list of products
    that showed it (`ServedList.holds_product`, as `claim_recommendation`); a campaign view or
    click keeps its campaign only if that list showed it (`targeting.show_campaigns`).

    Dashboards and experiments credit a list with the impressions, clicks and carts that name
    it, and impression caps count the visitors who viewed a campaign: with any id it has seen,
    a script could add clicks to another visitor's list, or from many fresh sessions use up a
    campaign's cap. What the session cannot claim is dropped and the event stored without it
    (a campaign under `UNVERIFIED_CAMPAIGN_KEY`, which nothing counts), rather than refused: a
    batch is all or nothing, and a click sent the moment its page showed may name a list
    another web process has not written yet; refusing it would lose the visitor's views and
    clicks for the lack of a credit.
    """
    ids = {row.recommendation_id for row in rows if row.recommendation_id}
    campaigns = any(row.event_type in CAMPAIGN_EVENT_TYPES for row in rows)
    if not ids and not campaigns:
        return rows
    served = lists_served_to(ids, user_id=user_id, session_id=session_id)
    claimed = []
    for row in rows:
        shown = served.get(row.recommendation_id)
        if row.recommendation_id and (
            shown is None or (row.product_id and not shown.holds_product(row.product_id))
        ):
            row = row._replace(recommendation_id="")
        campaign = row.context.get(CAMPAIGN_CONTEXT_KEY) if row.event_type in CAMPAIGN_EVENT_TYPES else None
        if campaign is not None and not (
            shown is not None and shown.kind == CAMPAIGN_LIST_KIND and str(campaign) in shown.item_ids
        ):
            context = {key: value for key, value in row.context.items() if key != CAMPAIGN_CONTEXT_KEY}
            row = row._replace(context={**context, UNVERIFIED_CAMPAIGN_KEY: campaign})
        claimed.append(row)
    return claimed
