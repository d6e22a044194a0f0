"""Validation of a bulk import's batch column by column: the importers' fast path.

`validate_columns` checks each field for the whole batch with set, map and min/max operations,
where `validation.validate_batch` checks event by event; for 50,000 events that is several
times faster, and the per-event cost would otherwise dominate an import.

The two are separate implementations of the same rules, on purpose: a rule shared as a
function of one value would be called once per event here, which is the cost this path exists
to avoid, and the per-event path must name each problem, which this one never does (it returns
None and the importer falls back on `validate_batch`). What they share is what does not cost
a call per event: the limits and event-type sets of `validation`, `context_error` (already
one walk per context) and `parse_timestamp` for the uncommon timestamp shapes. Each check
below mirrors one of `validation._validate_event` or `references.check_references`, and
tests/events/test_import_columns.py checks that both paths agree on the same events.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from recommendations.conf import rec_settings
from recommendations.events.ids import EVENT_ID_LINES_PATTERN
from recommendations.events.references import CAMPAIGN_EVENT_TYPES, existing_references
from recommendations.events.rows import EVENT_ROW, EventRow
from recommendations.events.validation import (
    CENT,
    EARLIEST_EVENT,
    EVENT_TYPES,
    KNOWN_FIELDS,
    MAX_REVENUE,
    NUL,
    PRODUCT_EVENT_TYPES,
    QUANTITY_EVENT_TYPES,
    STRING_LIMITS,
    context_error,
    names_campaign,
    parse_timestamp,
)


def _kinds(values: Iterable[Any]) -> set[type]:
    """The types among a column's values (one pass in C)."""
    return set(map(type, values))


_NONE = type(None)


def validate_columns(
    columns: Mapping[str, Sequence[Any]], count: int, *, now: dt.datetime | None = None
) -> list[EventRow] | None:
    """A bulk import's batch validated column by column, or None: then use `validate_batch`.

    `columns` maps field names to one value per event, None where the field is absent, for
    events from a trusted importer (`Origin(trusted=True)`, no defaults); the references are
    looked up with the same one round trip as `check_references`.

    It covers the common shapes only and names no problems: whenever any event is invalid or
    holds something it does not handle (listed products, integer store ids...), it returns None,
    and the caller validates the batch with `validate_batch`, which names every problem. When it
    returns rows, they are equal to what `validate_batch` returns for the same events.
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
    if not CAMPAIGN_EVENT_TYPES.isdisjoint(present) and not all(
        names_campaign(c) for t, c in zip(types, contexts, strict=True) if t in CAMPAIGN_EVENT_TYPES
    ):
        return None  # a campaign view or click without its campaign

    # The references, as check_references looks them up; any unknown one is validate_batch's to name.
    product_keys = set(products) - {""}
    store_keys = set(strings["store_id"]) - {""}
    user_keys = {str(u) for u in set(users) if u is not None}
    product_lookup, store_lookup, user_lookup = existing_references(product_keys, store_keys, user_keys)
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
    """The free-text columns as `validation._strings` makes them ("" where absent); None if one is
    not text."""
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
        v is not None and ("products" in v or context_error(v) is not None) for v in values
    ):
        return None
    return [{} if v is None else v for v in values]
