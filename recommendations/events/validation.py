"""Validation of incoming behaviour events, in plain Python.

Every way in (track(), host signals, the REST batch, the beacon, importers) hands raw dicts
to `validate_batch`, which either returns typed `EventRow`s or raises one
`EventValidationError` listing every problem per event and per field. It is deliberately
not a DRF serializer: a 500-event batch must validate in a few milliseconds, so each field
is checked with plain comparisons, and products, stores and users are looked up with one
query each for the whole batch.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import math
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from itertools import repeat
from types import MappingProxyType
from typing import Any, NamedTuple

import orjson
import psycopg
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import connection, models

from recommendations.adapters import get_product_adapter, get_product_model, get_store_model
from recommendations.conf import rec_settings
from recommendations.models.events import EventType, new_event_id
from recommendations.models.marketing import CAMPAIGN_CONTEXT_KEY, CAMPAIGN_LIST_KIND, UNVERIFIED_CAMPAIGN_KEY
from recommendations.serving.attribution import lists_served_to
from recommendations.sql import raw_connection

EVENT_TYPES = frozenset(EventType.values)
# Types that are about one product and make no sense without it.
PRODUCT_EVENT_TYPES = frozenset(
    {"view", "click", "add_to_cart", "remove_from_cart", "purchase", "rating", "favourite"}
)
QUANTITY_EVENT_TYPES = frozenset({"add_to_cart", "remove_from_cart", "purchase"})
CAMPAIGN_EVENT_TYPES = frozenset({"campaign_view", "campaign_click"})
# What a browser session may say: what the beacon (views, impressions, clicks), campaigns.js
# (campaign views and clicks) and a storefront's own scripts (a favourite, a cart or a search
# handled in JS) see. Purchases and ratings are the server's facts (an order placed, a review
# saved): sent by a browser they would put any revenue on the dashboard and on experiments.
BROWSER_EVENT_TYPES = frozenset(
    {
        "view",
        "store_view",
        "impression",
        "click",
        "campaign_view",
        "campaign_click",
        "favourite",
        "add_to_cart",
        "remove_from_cart",
        "search",
    }
)
# Where the server records the types a browser may not send, for the browser's 400.
SERVER_EVENT_SOURCES = {"purchase": "the order_placed signal", "rating": "the review_added signal"}
MAX_LISTED_PRODUCTS = 200
MAX_REVENUE = Decimal("9999999999.99")
CENT = Decimal("0.01")
EVENT_ID_PATTERN = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")
# Ids a browser session chooses are stored as `browser:<hash of session and id>`
# (`session_event_id`), apart from the ids server code and importers derive from their data.
BROWSER_EVENT_NAMESPACE = "browser"
# Ids one per line, all checked by one match: the ids of a whole import batch in a single C call.
EVENT_ID_LINES_PATTERN = re.compile(r"(?:[A-Za-z0-9_.:\-]{1,64}\n)*")
STRING_LIMITS = {"session_id": 64, "store_id": 64, "query": 255, "recommendation_id": 64}
NO_STRINGS = MappingProxyType(dict.fromkeys(STRING_LIMITS, ""))  # an event with none of them
# PostgreSQL stores no NUL character in text or jsonb: refused here, by field, not by the COPY.
NUL = "\x00"
NUL_ERROR = "must not contain NUL characters (\\u0000)"
# A context is a flat object (page, referrer, kind, position), an order's or a review's
# details a level or two down at most. Deeper is refused, from every sender: without a bound,
# a 2 KB body nested 320 deep took the server's recursion limit (a 500).
MAX_CONTEXT_DEPTH = 8
# Keys of a context that list products or stores: capped by count (MAX_LISTED_PRODUCTS), so
# left out of its size (MAX_BROWSER_CONTEXT_BYTES).
LISTED_KEYS = ("products", "stores")
# Times up to here are mistakes (a zero, a missing year); before year 1 PostgreSQL cannot read
# them back.
EARLIEST_EVENT = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
KNOWN_FIELDS = frozenset(
    {
        "event_id",
        "event_type",
        "user_id",
        "session_id",
        "product_id",
        "store_id",
        "query",
        "value",
        "revenue",
        "timestamp",
        "context",
        "recommendation_id",
        "products",
        "stores",
    }
)


class EventRow(NamedTuple):
    """One valid event, in the column order of the events table."""

    event_id: str
    event_type: str
    user_id: Any
    session_id: str
    product_id: str
    store_id: str
    query: str
    value: float | None
    revenue: Decimal | None
    timestamp: dt.datetime
    context: dict[str, Any]
    recommendation_id: str


# EventRow(*values) without a Python call per row: bulk paths build hundreds of thousands.
EVENT_ROW = functools.partial(tuple.__new__, EventRow)


@dataclass(frozen=True)
class Origin:
    """Who sends the events, which decides what they may say about themselves.

    A browser session may not claim to be another user or session: the server fills
    `user_id` and `session_id` from the request. Server code, API keys and importers are
    `trusted` and may set them per event. `context` is merged under each event's context
    (the user agent of the request, for example).

    `sent_at` is the sender's clock when it sent the batch (the batch's `sent_at`). Event
    timestamps come from that same clock, which on a phone or PC may be minutes or days off,
    so each one is moved by the difference between `sent_at` and the server's clock. Without
    it (server code, importers) timestamps are stored as given.
    """

    trusted: bool = True
    user_id: Any = None
    session_id: str = ""
    context: Mapping[str, Any] = field(default_factory=dict)
    sent_at: dt.datetime | None = None


@dataclass
class EventValidationError(Exception):
    """Some events of a batch are invalid; nothing of the batch was written.

    `errors` holds one entry per invalid event: its position (`index` in the batch, or
    `line` in a file), its `event_id` when it had one, and `{field: [messages]}`.
    """

    errors: list[dict[str, Any]]
    total: int

    @property
    def summary(self) -> str:
        return f"{len(self.errors)} of {self.total} events are invalid; nothing was stored."

    def __str__(self) -> str:
        shown = "; ".join(_describe(e) for e in self.errors[:10])
        more = f" (and {len(self.errors) - 10} more)" if len(self.errors) > 10 else ""
        return f"{self.summary} {shown}{more}"


def _describe(error: dict[str, Any]) -> str:
    where = f"line {error['line']}" if "line" in error else f"event {error['index']}"
    fields = ", ".join(f"{name}: {' '.join(msgs)}" for name, msgs in error["errors"].items())
    return f"{where}: {fields}"


def stable_event_id(namespace: str, *parts: object) -> str:
    """A deterministic event id from source data, so re-sending or re-importing stores nothing twice.

    Readable (`amazon-beauty:A1YJEY40YUW4SE:B004756YJA`) when it fits and no part contains a
    colon; otherwise the namespace and a hash of the parts.
    """
    texts = [str(p) for p in parts]
    readable = ":".join((namespace, *texts))
    if len(readable) <= 64 and readable.count(":") == len(texts) and EVENT_ID_PATTERN.fullmatch(readable):
        return readable
    return hashed_event_id(namespace, "\x1f".join(texts))


def session_event_id(session_id: str, event_id: str) -> str:
    """The id stored for an `event_id` a browser session chose: its own namespace and a hash.

    Server code and importers derive ids from their data (`order:<order pk>:<product pk>`),
    which a visitor can guess. Stored as sent, a browser's ids would share that space, and a
    visitor could claim the ids of orders not yet placed so that their purchases are never
    stored. Hashed with the session, they cannot collide with another sender's ids, and a
    session's retries (the beacon's) still store each event once.
    """
    return hashed_event_id(BROWSER_EVENT_NAMESPACE, f"{session_id}\x1f{event_id}")


def hashed_event_id(namespace: str, text: str) -> str:
    """The namespace and a blake2b of `text`: the form of `stable_event_id` when the readable
    one does not fit (a hashed id must stay the same across imports)."""
    return f"{namespace[:39]}:{hashlib.blake2b(text.encode(), digest_size=12).hexdigest()}"


def stable_event_ids(namespace: str, keys: Sequence[Sequence[str]]) -> list[str]:
    """`stable_event_id(namespace, *key)` for each key, for a whole batch given by key part:
    `keys` holds one column (of strings) per part, all as long.

    Readable ids are joined in C and checked at once: one pattern match over all of them, and
    no colon in any part. A batch where that fails goes id by id.
    """
    if not keys:
        return []
    parts: list[Iterable[str]] = [repeat(f"{namespace}:"), keys[0]]
    for column in keys[1:]:
        parts += [repeat(":"), column]
    texts = all(set(map(type, column)) <= {str} for column in keys)
    if texts and ":" not in namespace and not any(":" in "".join(column) for column in keys):
        readable = list(map("".join, zip(*parts, strict=False)))  # strict=False: repeat() never ends
        if EVENT_ID_LINES_PATTERN.fullmatch("\n".join(readable) + "\n"):
            return readable
    return [stable_event_id(namespace, *key) for key in zip(*keys, strict=True)]


def parse_timestamp(value: Any) -> dt.datetime:
    """ISO 8601 text (naive means UTC) or unix seconds; raises ValueError with a usable message."""
    if isinstance(value, str):  # the usual case first
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{value[:40]!r} is not an ISO 8601 date-time") from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    if isinstance(value, bool):
        raise ValueError("must be an ISO 8601 date-time or unix seconds")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError("must be a finite number of unix seconds")
        return dt.datetime.fromtimestamp(value, tz=dt.UTC)
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    raise ValueError("must be an ISO 8601 date-time or unix seconds")


def _as_key(value: Any) -> str | None:
    """Host primary keys arrive as strings, integers or UUIDs (server code passes `user.pk` or
    `product.pk` as the model has it); anything else is not a key."""
    if isinstance(value, str):
        return None if NUL in value else value.strip() or None
    if isinstance(value, int | uuid.UUID) and not isinstance(value, bool):
        return str(value)
    return None


def _number(value: Any) -> float | None:
    if type(value) is float:  # the usual case: one type check
        return value if math.isfinite(value) else None
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _strings(raw: Mapping[str, Any], errors: dict[str, list[str]]) -> dict[str, str]:
    """The free-text fields, stripped; a missing one is ""."""
    strings: dict[str, str] = {}
    for name, limit in STRING_LIMITS.items():
        value = raw.get(name)
        if value is None:
            strings[name] = ""
        elif isinstance(value, str) and len(value) <= limit and NUL not in value:
            strings[name] = value.strip()
        elif isinstance(value, int) and not isinstance(value, bool) and name == "store_id":
            strings[name] = str(value)
        else:
            errors[name] = [
                "must be a string"
                if not isinstance(value, str)
                else NUL_ERROR
                if NUL in value
                else f"must be at most {limit} characters"
            ]
    return strings


def _context_error(context: dict[Any, Any]) -> str | None:
    """Why a context cannot be stored, or None: a NUL character in a string or key at any
    depth, or nesting deeper than `MAX_CONTEXT_DEPTH` (the context itself is level 1).

    A loop over a stack rather than recursion: orjson reads JSON nested up to 1024 deep,
    and a recursive walk reached Python's recursion limit at about 320.
    """
    stack: list[tuple[dict[Any, Any] | list[Any], int]] = [(context, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            if any(isinstance(key, str) and NUL in key for key in value):
                return NUL_ERROR
            items: Iterable[Any] = value.values()
        else:
            items = value
        for item in items:
            if isinstance(item, str):
                if NUL in item:
                    return NUL_ERROR
            elif isinstance(item, dict | list):
                if depth == MAX_CONTEXT_DEPTH:
                    return (
                        f"must be nested at most {MAX_CONTEXT_DEPTH} levels deep (the context object "
                        "is level 1); send a flatter object"
                    )
                stack.append((item, depth + 1))
    return None


def _context_bytes(context: dict[str, Any]) -> int:
    """A context's size as JSON, without the products or stores it lists (capped by count)."""
    if not context.keys().isdisjoint(LISTED_KEYS):
        context = {key: value for key, value in context.items() if key not in LISTED_KEYS}
    return len(orjson.dumps(context))


def _validate_event(
    raw: Any, origin: Origin, now: dt.datetime, latest: dt.datetime, skew: dt.timedelta | None = None
) -> tuple[EventRow | None, dict[str, list[str]]]:
    """Check one event's shape and values (no database access); `skew` moves a given timestamp
    onto the server's clock (see `Origin.sent_at`).

    Runs for every event of every batch and import, so the common case (a valid event with
    few fields) takes the fewest steps: each field is read once and checked with plain
    comparisons before any error text is built.
    """
    if type(raw) is not dict and not isinstance(raw, Mapping):  # the ABC check only when needed
        return None, {"non_field_errors": ["each event must be a JSON object"]}
    errors: dict[str, list[str]] = {}
    if not KNOWN_FIELDS.issuperset(raw):
        unknown = raw.keys() - KNOWN_FIELDS
        errors["non_field_errors"] = [
            f"unknown field(s) {', '.join(sorted(map(str, unknown)))}; "
            f"allowed: {', '.join(sorted(KNOWN_FIELDS))}"
        ]
    get = raw.get

    event_type = get("event_type")
    if not isinstance(event_type, str) or event_type not in EVENT_TYPES:
        errors["event_type"] = [
            f"{event_type!r} is not an event type; use one of {', '.join(sorted(EVENT_TYPES))}"
            if event_type not in (None, "")
            else "this field is required"
        ]
        event_type = None  # unknown (or not even a string): the type-specific checks below do not apply

    event_id = get("event_id")
    if event_id is None or event_id == "":
        event_id = new_event_id()
    elif not isinstance(event_id, str) or not EVENT_ID_PATTERN.fullmatch(event_id):
        errors["event_id"] = ["must be 1-64 characters of letters, digits, '_', '-', '.' or ':'"]
    elif not origin.trusted:
        event_id = session_event_id(origin.session_id, event_id)

    strings: Mapping[str, str] = NO_STRINGS if STRING_LIMITS.keys().isdisjoint(raw) else _strings(raw, errors)

    user_id = get("user_id")
    session_id = strings.get("session_id", "")
    if origin.trusted:
        if user_id is None:
            user_id = origin.user_id
        elif _as_key(user_id) is None:
            errors["user_id"] = ["must be a user's primary key"]
        session_id = session_id or origin.session_id
    else:
        for name in ("user_id", "session_id"):
            if get(name) not in (None, ""):
                errors[name] = [
                    "is set by the server from the signed-in session; send it only with an API key"
                ]
        user_id, session_id = origin.user_id, origin.session_id
        if event_type is not None and event_type not in BROWSER_EVENT_TYPES:
            source = SERVER_EVENT_SOURCES.get(event_type, "recommendations.track()")
            errors["event_type"] = [
                f"{event_type} events are recorded by the server ({source} or recommendations.track()) "
                f"or sent with an API key, not by a browser session, which may send "
                f"{', '.join(sorted(BROWSER_EVENT_TYPES))}"
            ]
        if get("revenue") is not None:
            errors["revenue"] = [
                "is recorded by the server with the purchase (the order_placed signal or "
                "recommendations.track()) or sent with an API key, not by a browser session"
            ]

    product_id = get("product_id")
    if product_id is not None and product_id != "":
        product_id = _as_key(product_id) or ""
        if not product_id or len(product_id) > 64:
            errors["product_id"] = [
                "must be a product's primary key (string or integer, at most 64 characters)"
            ]
    else:
        product_id = ""
        # A click on a recommended store names the store instead.
        if event_type in PRODUCT_EVENT_TYPES and not (event_type == "click" and strings.get("store_id")):
            errors["product_id"] = [
                "is required for click events (or store_id, for a click on a store)"
                if event_type == "click"
                else f"is required for {event_type} events"
            ]
    if event_type == "store_view" and not strings.get("store_id") and "store_id" not in errors:
        errors["store_id"] = ["is required for store_view events"]
    elif event_type == "search" and not strings.get("query") and "query" not in errors:
        errors["query"] = ["is required for search events"]

    value = get("value")
    if value is not None:
        value = _number(value)
        if value is None:
            errors["value"] = ["must be a number"]
    if event_type == "rating" and "value" not in errors and (value is None or not 1 <= value <= 5):
        errors["value"] = ["a rating needs a value from 1 to 5"]
    elif event_type in QUANTITY_EVENT_TYPES and value is not None and value <= 0:
        errors["value"] = ["the quantity must be positive"]
    elif event_type == "purchase" and value is None:
        value = 1.0

    revenue = get("revenue")
    if revenue is not None:
        try:
            revenue = Decimal(str(revenue) if isinstance(revenue, int | float) else revenue)
            if not revenue.is_finite() or not 0 <= revenue <= MAX_REVENUE:
                raise InvalidOperation
            revenue = revenue.quantize(CENT)
        except (InvalidOperation, TypeError, ValueError):
            errors["revenue"] = [f"must be a decimal amount from 0 to {MAX_REVENUE}"]

    timestamp = get("timestamp")
    if timestamp is None:
        timestamp = now
    else:
        try:
            timestamp = parse_timestamp(timestamp)
            if skew:
                timestamp += skew
        except (ValueError, OverflowError, OSError) as exc:
            errors["timestamp"] = [str(exc)]
        else:
            if timestamp > latest:
                errors["timestamp"] = [
                    f"is {(timestamp - now).total_seconds():.0f}s in the future; "
                    f"at most {rec_settings.MAX_EVENT_FUTURE_SECONDS}s of clock skew is accepted"
                ]
            elif timestamp <= EARLIEST_EVENT:
                errors["timestamp"] = [f"must be after {EARLIEST_EVENT:%Y-%m-%d} (unix time 0)"]

    context = get("context")
    if context is None:
        context = {**origin.context} if origin.context else {}
    elif not isinstance(context, dict):
        errors["context"] = ["must be a JSON object"]
    elif (problem := _context_error(context)) is not None:
        errors["context"] = [problem]
    elif not origin.trusted and (size := _context_bytes(context)) > rec_settings.MAX_BROWSER_CONTEXT_BYTES:
        errors["context"] = [
            f"is {size} bytes as JSON; a browser session may send at most "
            f"{rec_settings.MAX_BROWSER_CONTEXT_BYTES} (page, referrer, kind, position); send bigger "
            "contexts from the server or with an API key"
        ]
    elif origin.context:
        context = {**origin.context, **context}

    # The products or stores shown (impressions, search results) may come as a field or in the context.
    shown = False
    for name, what in (("products", "product"), ("stores", "store")):
        listed = get(name)
        if listed is None and isinstance(context, dict):
            listed = context.get(name)
        if listed is None:
            continue
        shown = True
        keys = [_as_key(p) for p in listed] if isinstance(listed, list) else [None]
        if not keys or None in keys or len(keys) > MAX_LISTED_PRODUCTS:
            errors[name] = [f"must be a list of 1-{MAX_LISTED_PRODUCTS} {what} primary keys"]
        elif isinstance(context, dict):
            context = {**context, name: keys}
    if event_type == "impression" and not shown:
        errors["products"] = ["is required for impression events: the products (or `stores`) that were shown"]

    if errors:
        return None, errors
    row = EventRow(
        event_id,
        event_type,
        user_id,
        session_id,
        product_id,
        strings["store_id"],
        strings["query"],
        value,
        revenue,
        timestamp,
        context,
        strings["recommendation_id"],
    )
    return row, errors


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
        canonical: dict[str, Any] = {}
        for key in keys:
            try:
                canonical[key] = pk_field.to_python(key)
            except (ValidationError, ValueError, TypeError):
                continue
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
    # The product's store comes with the same query, so every product event knows its store.
    product_lookup, stores, users = _existing_keys(
        (get_product_model(), product_keys, get_product_adapter().store_field),
        (get_store_model(), store_keys, None),
        (get_user_model(), {str(r.user_id) for r in rows if r.user_id is not None}, None),
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


def claimable_by_browser(rows: list[EventRow], origin: Origin) -> list[EventRow]:
    """The rows of a browser session with only what it may claim: each keeps its
    `recommendation_id` only if that names a list shown to this session or user
    (`serving.attribution.lists_served_to`: one statement for the whole batch) and, for an
    event about a product (a click, a cart change), a list of products that showed it
    (`ServedList.holds_product`, as `claim_recommendation`); a campaign view or click keeps
    its campaign only if that list showed it (`targeting.show_campaigns`).

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
    served = lists_served_to(ids, user_id=origin.user_id, session_id=origin.session_id)
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


def validate_batch(
    raw_events: Iterable[Any],
    origin: Origin | None = None,
    *,
    positions: Sequence[int] | None = None,
    position_name: str = "index",
    now: dt.datetime | None = None,
) -> list[EventRow]:
    """Validate a batch: every event is valid and refers to existing objects, or nothing is.

    `positions` and `position_name` say how errors locate an event: its `index` in the
    batch (default) or, for importers, the `line` of the file it came from. A browser
    session's rows keep only the recommendation ids and campaigns it may claim
    (`claimable_by_browser`).
    """
    origin = origin or Origin()
    now = now or dt.datetime.now(dt.UTC)
    latest = now + dt.timedelta(seconds=rec_settings.MAX_EVENT_FUTURE_SECONDS)
    skew = now - origin.sent_at if origin.sent_at is not None else None
    raw_list = raw_events if isinstance(raw_events, list) else list(raw_events)
    rows: list[EventRow] = []
    row_positions: list[int] = []
    errors: dict[int, tuple[Any, dict[str, list[str]]]] = {}
    for i, raw in enumerate(raw_list):
        row, problems = _validate_event(raw, origin, now, latest, skew)
        if row is None:
            errors[i] = (raw, problems)
        else:
            rows.append(row)
            row_positions.append(i)
    rows, reference_errors = check_references(rows)
    for j, problems in reference_errors.items():
        errors[row_positions[j]] = (raw_list[row_positions[j]], problems)
    if errors:
        raise EventValidationError(
            [
                {
                    position_name: positions[i] if positions is not None else i,
                    **(
                        {"event_id": raw["event_id"]}
                        if isinstance(raw, Mapping) and raw.get("event_id")
                        else {}
                    ),
                    "errors": problems,
                }
                for i, (raw, problems) in sorted(errors.items())
            ],
            total=len(raw_list),
        )
    return rows if origin.trusted else claimable_by_browser(rows, origin)


def _kinds(values: Iterable[Any]) -> set[type]:
    """The types among a column's values (one pass in C)."""
    return set(map(type, values))


_NONE = type(None)


def validate_columns(
    columns: Mapping[str, Sequence[Any]], count: int, *, now: dt.datetime | None = None
) -> list[EventRow] | None:
    """A bulk import's batch validated column by column, or None: then use `validate_batch`.

    `columns` maps field names to one value per event, None where the field is absent, for
    events from a trusted importer (`Origin(trusted=True)`, no defaults). Each field is checked
    for the whole batch with set, map and min/max operations instead of event by event, and the
    references with the same one round trip as `check_references`: for 50,000 events that is
    several times faster than `validate_batch`, whose per-event cost would otherwise dominate
    an import.

    It covers the common shapes only and names no problems: whenever any event is invalid or
    holds something it does not handle (listed products, integer store ids...), it returns None,
    and the caller validates the batch with `validate_batch`, which names every problem. When it
    returns rows, they are equal to what `validate_batch` returns for the same events (each
    check below mirrors one of `_validate_event` or `check_references`; tests/events compares
    the two on the same events).
    """
    if count == 0 or not KNOWN_FIELDS.issuperset(columns):
        return None
    now = now or dt.datetime.now(dt.UTC)
    latest = now + dt.timedelta(seconds=rec_settings.MAX_EVENT_FUTURE_SECONDS)
    absent = [None] * count
    get = columns.get

    types = get("event_type", absent)
    if _kinds(types) != {str}:
        return None
    present = set(types)
    if not EVENT_TYPES.issuperset(present):
        return None
    ids = get("event_id", absent)
    if _kinds(ids) != {str} or not EVENT_ID_LINES_PATTERN.fullmatch("\n".join(ids) + "\n"):
        return None  # importers give every event an id; new random ids are validate_batch's
    listed = _kinds(get("products", absent)) | _kinds(get("stores", absent))
    if listed != {_NONE} or "impression" in present:
        return None  # listed products or stores: checked event by event

    strings = _string_columns(columns, count)
    if strings is None:
        return None
    for event_type, name in (("store_view", "store_id"), ("search", "query")):
        if event_type in present and not all(
            s for t, s in zip(types, strings[name], strict=True) if t == event_type
        ):
            return None

    users = get("user_id", absent)
    kinds = _kinds(users)
    if not kinds <= {str, int, _NONE}:
        return None
    if kinds == {str}:
        if not all(map(str.strip, users)) or any(NUL in u for u in users):
            return None
    elif str in kinds and not all(u.strip() and NUL not in u for u in users if type(u) is str):
        return None  # only spaces (or a NUL): not a key

    products = _product_column(get("product_id", absent), types)
    values = _value_column(get("value", absent), types, present)
    revenues = _revenue_column(get("revenue", absent))
    timestamps = _timestamp_column(get("timestamp", absent), now, latest)
    contexts = _context_column(get("context", absent))
    if products is None or values is None or revenues is None or timestamps is None or contexts is None:
        return None

    # The references, as check_references looks them up; any unknown one is validate_batch's to name.
    product_keys = set(products) - {""}
    store_keys = set(strings["store_id"]) - {""}
    user_keys = {str(u) for u in set(users) if u is not None}
    product_lookup, store_lookup, user_lookup = _existing_keys(
        (get_product_model(), product_keys, get_product_adapter().store_field),
        (get_store_model(), store_keys, None),
        (get_user_model(), user_keys, None),
    )
    if (
        len(product_lookup) < len(product_keys)
        or len(store_lookup) < len(store_keys)
        or len(user_lookup) < len(user_keys)
    ):
        return None
    product_pk = {key: str(pk) for key, (pk, _) in product_lookup.items()}
    product_store = {key: "" if store is None else str(store) for key, (_, store) in product_lookup.items()}
    product_pk[""] = product_store[""] = ""
    stores = list(map(product_store.__getitem__, products))  # an event's store is its product's...
    if store_keys:  # ...unless it names one
        store_pk = {key: str(pk) for key, (pk, _) in store_lookup.items()}
        stores = [store_pk[s] if s else p for s, p in zip(strings["store_id"], stores, strict=True)]
    user_pk = {u: user_lookup[str(u)][0] for u in set(users) if u is not None}
    return list(
        map(
            EVENT_ROW,
            zip(
                ids,
                types,
                map(user_pk.get, users),
                strings["session_id"],
                map(product_pk.__getitem__, products),
                stores,
                strings["query"],
                values,
                revenues,
                timestamps,
                contexts,
                strings["recommendation_id"],
                strict=True,
            ),
        )
    )


def _string_columns(columns: Mapping[str, Sequence[Any]], count: int) -> dict[str, Sequence[str]] | None:
    """The free-text columns as `_strings` makes them ("" where absent); None if one is not text."""
    strings: dict[str, Sequence[str]] = {}
    for name, limit in STRING_LIMITS.items():
        values = columns.get(name)
        kinds = _kinds(values) if values is not None else {_NONE}
        if kinds == {_NONE}:
            strings[name] = [""] * count
            continue
        if not kinds <= {str, _NONE}:
            return None
        if _NONE in kinds:
            values = ["" if v is None else v for v in values]
        if max(map(len, values)) > limit or any(NUL in v for v in values):
            return None
        strings[name] = list(map(str.strip, values))
    return strings


def _product_column(values: Sequence[Any], types: Sequence[str]) -> list[str] | None:
    """Product keys, "" where absent; None if one is not a key or an event about a product has none."""
    kinds = _kinds(values)
    if not kinds <= {str, int, _NONE}:
        return None
    if kinds != {str}:
        values = ["" if v is None else v if type(v) is str else str(v) for v in values]
    keys = list(map(str.strip, values))
    if "" in keys and not all(
        not raw and t not in PRODUCT_EVENT_TYPES
        for raw, key, t in zip(values, keys, types, strict=True)
        if not key
    ):
        return None  # only spaces (not a key), or a product event without its product
    if max(map(len, keys)) > 64 or any(NUL in key for key in keys):
        return None
    return keys


def _value_column(values: Sequence[Any], types: Sequence[str], present: set[str]) -> list[Any] | None:
    """Values as floats (a purchase without one: 1.0); None if one is not a finite number or breaks a rule."""
    kinds = _kinds(values)
    if not kinds <= {float, int, _NONE}:
        return None
    try:
        numbers = values if kinds <= {float, _NONE} else [v if v is None else float(v) for v in values]
        if not all(map(math.isfinite, (v for v in numbers if v is not None) if _NONE in kinds else numbers)):
            return None
    except OverflowError:  # an integer beyond float
        return None
    if "rating" in present and not all(
        v is not None and 1 <= v <= 5 for t, v in zip(types, numbers, strict=True) if t == "rating"
    ):
        return None
    if not QUANTITY_EVENT_TYPES.isdisjoint(present):
        if present <= QUANTITY_EVENT_TYPES and _NONE not in kinds:  # e.g. a file of purchases
            positive = min(numbers) > 0
        else:
            positive = all(
                v is None or v > 0 for t, v in zip(types, numbers, strict=True) if t in QUANTITY_EVENT_TYPES
            )
        if not positive:
            return None
    if "purchase" in present and _NONE in kinds:
        return [1.0 if v is None and t == "purchase" else v for t, v in zip(types, numbers, strict=True)]
    return list(numbers)


def _revenue_column(values: Sequence[Any]) -> list[Decimal | None] | None:
    """Revenues as Decimal cents; None if one is not an amount from 0 to MAX_REVENUE."""
    kinds = _kinds(values)
    if kinds == {_NONE}:
        return list(values)
    if not kinds <= {str, int, float, _NONE}:
        return None
    try:
        amounts = [v if v is None else Decimal(v if type(v) is str else str(v)) for v in values]
        given = [a for a in amounts if a is not None]
        if not all(map(Decimal.is_finite, given)) or min(given) < 0 or max(given) > MAX_REVENUE:
            return None
        return [a if a is None else a.quantize(CENT) for a in amounts]
    except (InvalidOperation, ValueError):
        return None


def _timestamp_column(
    values: Sequence[Any], now: dt.datetime, latest: dt.datetime
) -> list[dt.datetime] | None:
    """Timestamps as aware datetimes (`now` where absent); None if one is unreadable, too far
    ahead or too far back."""
    kinds = _kinds(values)
    if kinds == {_NONE}:
        return [now] * len(values)
    if not kinds <= {str, int, float, _NONE}:
        return None
    try:
        if kinds == {str}:  # the usual case: ISO 8601 text, parsed in C
            parsed = list(map(dt.datetime.fromisoformat, values))
            stamps = [p if p.tzinfo else p.replace(tzinfo=dt.UTC) for p in parsed]
        else:
            stamps = [now if v is None else parse_timestamp(v) for v in values]
    except (ValueError, OverflowError, OSError):
        return None
    return stamps if max(stamps) <= latest and min(stamps) > EARLIEST_EVENT else None


def _context_column(values: Sequence[Any]) -> list[dict[str, Any]] | None:
    """Contexts, {} where absent; None if one is not an object, lists products, holds a NUL or
    is nested too deep."""
    kinds = _kinds(values)
    if kinds == {_NONE}:
        return [{} for _ in values]  # one dict each, as validate_batch makes them
    if not kinds <= {dict, _NONE} or any(
        v is not None and ("products" in v or _context_error(v) is not None) for v in values
    ):
        return None
    return [{} if v is None else v for v in values]
