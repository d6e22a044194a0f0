"""Validation of incoming behaviour events, in plain Python: the rules an event must follow.

Every way in (track(), host signals, the REST batch, the beacon, importers) hands raw dicts
to `validate_batch`, which either returns typed `EventRow`s or raises one
`EventValidationError` listing every problem per event and per field. It is deliberately
not a DRF serializer: a 500-event batch must validate in a few milliseconds, so each field
is checked with plain comparisons, and products, stores and users are looked up with one
query each for the whole batch (`references`). Event ids are `ids`'s; bulk imports try the
column-by-column form of these rules first (`columns.validate_columns`).
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any

import orjson
from django.utils import timezone

from recommendations.conf import rec_settings
from recommendations.events.ids import EVENT_ID_PATTERN, session_event_id
from recommendations.events.references import CAMPAIGN_EVENT_TYPES, check_references, claimable_by_browser
from recommendations.events.rows import EventRow
from recommendations.models.events import EventType, new_event_id
from recommendations.models.marketing import CAMPAIGN_CONTEXT_KEY

EVENT_TYPES = frozenset(EventType.values)
# Types that are about one product and make no sense without it.
PRODUCT_EVENT_TYPES = frozenset(
    {"view", "click", "add_to_cart", "remove_from_cart", "purchase", "rating", "favourite"}
)
QUANTITY_EVENT_TYPES = frozenset({"add_to_cart", "remove_from_cart", "purchase"})
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


def parse_timestamp(value: Any) -> dt.datetime:
    """ISO 8601 text (naive means UTC), unix seconds, or a datetime from Python code (naive
    means the current time zone, where Django's ORM puts it); raises ValueError with a
    usable message."""
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
        try:
            return dt.datetime.fromtimestamp(value, tz=dt.UTC)
        except (ValueError, OverflowError, OSError):
            # Mostly JavaScript's Date.now(), which counts milliseconds: "year 58889 is out of
            # range" did not say so.
            raise ValueError(
                f"{value!r} is out of range as unix seconds; send seconds (milliseconds / 1000) or ISO 8601"
            ) from None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else timezone.make_aware(value)
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
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:  # an integer beyond float (JSON lines read exactly by `json`)
            return None
        return number if math.isfinite(number) else None
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


def context_error(context: dict[Any, Any]) -> str | None:
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


def names_campaign(context: Mapping[str, Any]) -> bool:
    """Whether a context names a campaign (its id, text or integer): a campaign view or click
    without one counts towards no impression cap and no campaign's statistics."""
    return _as_key(context.get(CAMPAIGN_CONTEXT_KEY)) is not None


def _context_bytes(context: dict[str, Any]) -> int:
    """A context's size as JSON, without the products or stores it lists (capped by count)."""
    if not context.keys().isdisjoint(LISTED_KEYS):
        context = {key: value for key, value in context.items() if key not in LISTED_KEYS}
    return len(orjson.dumps(context))


def _product_id(
    value: Any, event_type: str | None, strings: Mapping[str, str], errors: dict[str, list[str]]
) -> str:
    """The product's key ("" without one), and what each type of event requires: a product
    for events about one, a store for a store view, a query for a search."""
    if value is not None and value != "":
        product_id = _as_key(value) or ""
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
    return product_id


def _value(value: Any, event_type: str | None, errors: dict[str, list[str]]) -> float | None:
    """The value as a float: a rating from 1 to 5, a positive quantity (a purchase without one: 1)."""
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
    return value


def _check_browser_claims(
    raw: Mapping[str, Any], event_type: str | None, errors: dict[str, list[str]]
) -> None:
    """What a browser session may not say: who it is (the server knows), the server's event
    types, revenue."""
    for name in ("user_id", "session_id"):
        if raw.get(name) not in (None, ""):
            errors[name] = ["is set by the server from the signed-in session; send it only with an API key"]
    if event_type is not None and event_type not in BROWSER_EVENT_TYPES:
        source = SERVER_EVENT_SOURCES.get(event_type, "recommendations.track()")
        errors["event_type"] = [
            f"{event_type} events are recorded by the server ({source} or recommendations.track()) "
            f"or sent with an API key, not by a browser session, which may send "
            f"{', '.join(sorted(BROWSER_EVENT_TYPES))}"
        ]
    if raw.get("revenue") is not None:
        errors["revenue"] = [
            "is recorded by the server with the purchase (the order_placed signal or "
            "recommendations.track()) or sent with an API key, not by a browser session"
        ]


def _revenue(value: Any, errors: dict[str, list[str]]) -> Decimal | None:
    """A given revenue in Decimal cents, from 0 to MAX_REVENUE (floats through their text)."""
    try:
        revenue = Decimal(str(value) if isinstance(value, int | float) else value)
        if not revenue.is_finite() or not 0 <= revenue <= MAX_REVENUE:
            raise InvalidOperation
        return revenue.quantize(CENT)
    except (InvalidOperation, TypeError, ValueError):
        errors["revenue"] = [f"must be a decimal amount from 0 to {MAX_REVENUE}"]
        return None


def _timestamp(
    value: Any, now: dt.datetime, latest: dt.datetime, skew: dt.timedelta | None, errors: dict[str, list[str]]
) -> dt.datetime | None:
    """A given timestamp on the server's clock (`skew`), from after EARLIEST_EVENT to `latest`."""
    try:
        timestamp = parse_timestamp(value)
        if skew:
            timestamp += skew
    except (ValueError, OverflowError, OSError) as exc:
        errors["timestamp"] = [str(exc)]
        return None
    if EARLIEST_EVENT < timestamp <= latest:
        return timestamp
    # Out of range once moved by the batch's sent_at: sent_at is the likelier culprit.
    moved = f" once moved by {skew.total_seconds():.0f}s, the server's clock minus sent_at" if skew else ""
    if timestamp > latest:
        errors["timestamp"] = [
            f"is {(timestamp - now).total_seconds():.0f}s in the future{moved}; "
            f"at most {rec_settings.MAX_EVENT_FUTURE_SECONDS}s of clock skew is accepted"
        ]
    else:
        errors["timestamp"] = [f"must be after {EARLIEST_EVENT:%Y-%m-%d} (unix time 0){moved}"]
    return timestamp


def _context(context: Any, origin: Origin, errors: dict[str, list[str]]) -> Any:
    """A given context under the origin's: an object, storable (`context_error`), and from a
    browser at most MAX_BROWSER_CONTEXT_BYTES."""
    if not isinstance(context, dict):
        errors["context"] = ["must be a JSON object"]
    elif (problem := context_error(context)) is not None:
        errors["context"] = [problem]
    elif not origin.trusted and (size := _context_bytes(context)) > rec_settings.MAX_BROWSER_CONTEXT_BYTES:
        errors["context"] = [
            f"is {size} bytes as JSON; a browser session may send at most "
            f"{rec_settings.MAX_BROWSER_CONTEXT_BYTES} (page, referrer, kind, position); send bigger "
            "contexts from the server or with an API key"
        ]
    elif origin.context:
        return {**origin.context, **context}
    return context


def _listed(
    raw: Mapping[str, Any], context: Any, event_type: str | None, errors: dict[str, list[str]]
) -> Any:
    """The context with the products or stores shown (impressions, search results) as keys:
    they may come as a field or in the context. An impression needs one or the other."""
    shown = False
    for name, what in (("products", "product"), ("stores", "store")):
        listed = raw.get(name)
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
    return context


def _validate_event(
    raw: Any, origin: Origin, now: dt.datetime, latest: dt.datetime, skew: dt.timedelta | None = None
) -> tuple[EventRow | None, dict[str, list[str]]]:
    """Check one event's shape and values (no database access), one field's rule after the
    other; `skew` moves a given timestamp onto the server's clock (see `Origin.sent_at`).

    Runs for every event of every batch and import, so the common case (a valid event with
    few fields) takes few steps: each field is read once and checked with plain comparisons
    before any error text is built, and the rules of a browser's claims, revenue, timestamp
    and context run only for the events they concern.
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
        _check_browser_claims(raw, event_type, errors)
        user_id, session_id = origin.user_id, origin.session_id

    product_id = _product_id(get("product_id"), event_type, strings, errors)
    value = _value(get("value"), event_type, errors)
    revenue = get("revenue")
    if revenue is not None:
        revenue = _revenue(revenue, errors)
    timestamp = get("timestamp")
    timestamp = now if timestamp is None else _timestamp(timestamp, now, latest, skew, errors)
    context = get("context")
    if context is None:
        context = {**origin.context} if origin.context else {}
    else:
        context = _context(context, origin, errors)
    context = _listed(raw, context, event_type, errors)
    if event_type in CAMPAIGN_EVENT_TYPES and "context" not in errors and not names_campaign(context):
        errors["context"] = [
            f"context.campaign is required for {event_type} events: the campaign's id, as "
            "/api/campaigns/for-me/ answers it"
        ]

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
    if origin.trusted:
        return rows
    return claimable_by_browser(rows, user_id=origin.user_id, session_id=origin.session_id)
