"""Stored events -> clean training rows.

`clean_events()` is what the learning pipeline reads. It drops what would teach the model
something false, then numbers visits and weighs each event:

1. events about products that no longer exist or are inactive (per the product adapter);
2. bots: a user agent matching `BOT_USER_AGENT_PATTERNS`, or a browser session that sent
   more than `MAX_EVENTS_PER_SESSION_PER_MINUTE` events within any minute (only events with
   a session id are rate-checked: imported histories often share one timestamp per day);
3. exact duplicates (same shopper, type, product, store, query, value and time under
   different event ids, e.g. a client that retried without an id);

then sessionises each shopper's stream (`SESSION_GAP_MINUTES`) and sets
`weight = event_weight(type, value) * 0.5 ** (age_days / DECAY_HALF_LIFE_DAYS)`.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psycopg
from django.db import connection

from recommendations.adapters import get_product_adapter
from recommendations.conf import rec_settings
from recommendations.events.bots import bot_user_agents
from recommendations.events.sessions import sessionise
from recommendations.models.events import Event, EventType
from recommendations.sql import raw_connection

logger = logging.getLogger(__name__)

SECONDS_PER_DAY = 86_400.0
# What each weights setting is keyed by, in words and as the keys: event types, and rating
# values (a rating is 1 to 5).
WEIGHT_KEYS: dict[str, tuple[str, tuple[Any, ...]]] = {
    "EVENT_WEIGHTS": ("an event type", tuple(EventType.values)),
    "RATING_WEIGHTS": ("a rating", (1, 2, 3, 4, 5)),
}


def event_weight(event_type: str, value: float | None = None) -> float:
    """How much one event says about taste: `EVENT_WEIGHTS`, or `RATING_WEIGHTS` for ratings."""
    if event_type == "rating":
        if value is None or not np.isfinite(value):
            return 0.0
        return float(rec_settings.RATING_WEIGHTS.get(round(value), 0.0))
    return float(rec_settings.EVENT_WEIGHTS.get(event_type, 0.0))


def weight_errors(name: str, weights: Any) -> list[str]:
    """What is wrong with the weights setting `name` (a key of `WEIGHT_KEYS`), one line each;
    empty when nothing is. Checked by `manage.py check`: a misspelt event type would weigh
    nothing without a word, and a weight that is not a number fail every retrain."""
    what, keys = WEIGHT_KEYS[name]
    if not isinstance(weights, dict):
        return [f"Weights must be a dict, e.g. {{{keys[-1]!r}: 1.0}}, not {weights!r}."]
    errors = []
    for key, weight in weights.items():
        if key not in keys:
            errors.append(f"{key!r} is not {what}; use one of {', '.join(map(repr, keys))}.")
        elif not (isinstance(weight, int | float) and not isinstance(weight, bool) and np.isfinite(weight)):
            errors.append(f"{key!r}: the weight must be a number, not {weight!r}.")
    return errors


def decay(ages_seconds: np.ndarray, half_life_days: float | None = None) -> np.ndarray:
    """Time decay: 1 for an event of the reference moment, 0.5 one half-life earlier."""
    half_life = half_life_days if half_life_days is not None else rec_settings.DECAY_HALF_LIFE_DAYS
    ages_days = np.maximum(np.asarray(ages_seconds, dtype=np.float64), 0.0) / SECONDS_PER_DAY
    return np.power(0.5, ages_days / float(half_life)).astype(np.float32)


@dataclass
class CleanEvents:
    """Kept events as parallel arrays, ordered by time (ties by storage order).

    Shoppers ("actors") are signed-in users, or anonymous browser sessions when there is no
    user: `actors[i]` indexes `actor_keys` ("u:<user pk>" or "s:<session id>") and
    `actor_user_ids` (the user's primary key, None for an anonymous session). Products
    are dense indices into `item_keys` (host primary keys as strings); -1 when the event is
    not about one product (a search, a store view).
    """

    event_pks: np.ndarray  # int64, Event primary keys
    actors: np.ndarray  # int64, index into actor_keys
    actor_keys: list[str]
    actor_user_ids: list[Any]
    sessions: np.ndarray  # int64, visit number (0..n_visits-1) after SESSION_GAP_MINUTES
    items: np.ndarray  # int64, index into item_keys or -1
    item_keys: list[str]
    store_ids: np.ndarray  # object (str), "" when none
    event_types: np.ndarray  # object (str)
    queries: np.ndarray  # object (str), "" when none
    values: np.ndarray  # float32, NaN when none
    revenue: np.ndarray  # float64, 0 when none
    timestamps: np.ndarray  # int64, unix seconds
    weights: np.ndarray  # float32, event weight x time decay
    dropped: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.event_pks)


def _read_events(since: dt.datetime | None, until: dt.datetime | None) -> list[tuple]:
    table = connection.ops.quote_name(Event._meta.db_table)
    conditions, params = [], []
    if since is not None:
        conditions.append("timestamp >= %s")
        params.append(since)
    if until is not None:
        conditions.append("timestamp < %s")
        params.append(until)
    where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    sql = (
        "SELECT id, event_type, user_id, session_id, product_id, store_id, query, value, "
        f"extract(epoch FROM timestamp)::bigint, context->>'user_agent', revenue FROM {table} {where} "
        "ORDER BY timestamp, id"
    )
    with psycopg.Cursor(raw_connection(connection)) as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _active_product_keys() -> set[str]:
    adapter = get_product_adapter()
    queryset = adapter.index_queryset()
    if adapter.active_field:
        queryset = queryset.filter(**{adapter.active_field: True})
    return {adapter.key(pk) for pk in queryset.values_list("pk", flat=True)}


def _codes(values: list[str]) -> tuple[np.ndarray, list[str]]:
    """Dense integer codes for strings, in order of first appearance."""
    index: dict[str, int] = {}
    codes = np.fromiter((index.setdefault(v, len(index)) for v in values), dtype=np.int64, count=len(values))
    return codes, list(index)


def _bot_sessions(sessions: list[str], timestamps: np.ndarray, ceiling: int) -> set[str]:
    """Sessions with more than `ceiling` events inside some 60-second window."""
    with_session = np.fromiter((bool(s) for s in sessions), dtype=bool, count=len(sessions))
    if not with_session.any():
        return set()
    names = [s for s, keep in zip(sessions, with_session, strict=True) if keep]
    codes, keys = _codes(names)
    times = timestamps[with_session]
    order = np.lexsort((times, codes))
    # One sortable number per event: session code in the high bits, time in the low bits.
    composite = codes[order] * (1 << 34) + (times[order] - times.min())
    window_end = np.searchsorted(composite, composite + 60, side="left")
    in_window = window_end - np.arange(len(composite))
    return {keys[c] for c in np.unique(codes[order][in_window > ceiling])}


def clean_events(
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    reference_time: dt.datetime | None = None,
) -> CleanEvents:
    """Read events in [since, until) and return the clean, weighted, sessionised rows.

    `reference_time` is the moment of decay 1; by default the newest kept event, so a
    historic dataset is not decayed to nothing.
    """
    started = time.monotonic()
    rows = _read_events(since, until)
    bot_pattern = bot_user_agents()
    products = _active_product_keys()
    dropped = {"unknown_or_inactive_product": 0, "bot_user_agent": 0, "bot_rate": 0, "duplicate": 0}

    agent_is_bot: dict[str | None, bool] = {None: False}
    kept = []
    for row in rows:
        if row[4] and row[4] not in products:
            dropped["unknown_or_inactive_product"] += 1
        elif agent_is_bot.setdefault(row[9], bool(bot_pattern.search(row[9] or ""))):
            dropped["bot_user_agent"] += 1
        else:
            kept.append(row)

    timestamps = np.fromiter((r[8] for r in kept), dtype=np.int64, count=len(kept))
    bots = _bot_sessions([r[3] for r in kept], timestamps, rec_settings.MAX_EVENTS_PER_SESSION_PER_MINUTE)
    if bots:
        survivors = [r for r in kept if r[3] not in bots]
        dropped["bot_rate"] = len(kept) - len(survivors)
        kept = survivors

    seen: set[tuple] = set()
    unique = []
    for row in kept:
        actor = f"u:{row[2]}" if row[2] is not None else f"s:{row[3]}" if row[3] else f"e:{row[0]}"
        signature = (actor, row[1], row[4], row[5], row[6], row[7], row[8])
        if signature in seen:
            dropped["duplicate"] += 1
            continue
        seen.add(signature)
        unique.append((actor, row))
    result = _to_arrays(unique, reference_time, dropped)
    logger.info(
        "Cleaned %d events in %.1fs: kept %d, dropped %s",
        len(rows),
        time.monotonic() - started,
        len(result),
        ", ".join(f"{n} {why.replace('_', ' ')}" for why, n in dropped.items() if n) or "none",
    )
    return result


def _to_arrays(
    unique: list[tuple[str, tuple]], reference_time: dt.datetime | None, dropped: dict[str, int]
) -> CleanEvents:
    n = len(unique)
    rows = [row for _, row in unique]
    actors, actor_keys = _codes([actor for actor, _ in unique])
    actor_user_ids: list[Any] = [None] * len(actor_keys)
    for code, row in zip(actors.tolist(), rows, strict=True):
        actor_user_ids[code] = row[2]
    product_keys = [r[4] for r in rows]
    item_keys = sorted({p for p in product_keys if p})
    item_index = {key: i for i, key in enumerate(item_keys)}
    timestamps = np.fromiter((r[8] for r in rows), dtype=np.int64, count=n)
    values = np.fromiter((np.nan if r[7] is None else r[7] for r in rows), dtype=np.float32, count=n)
    event_types = np.array([r[1] for r in rows], dtype=object)
    base_weights = {t: event_weight(t) for t in set(event_types.tolist())}
    weights = np.fromiter(
        (
            event_weight(t, v) if t == "rating" else base_weights[t]
            for t, v in zip(event_types, values, strict=True)
        ),
        dtype=np.float32,
        count=n,
    )
    if n:
        reference = reference_time.timestamp() if reference_time is not None else float(timestamps.max())
        weights *= decay(reference - timestamps)
    gap = float(rec_settings.SESSION_GAP_MINUTES) * 60
    return CleanEvents(
        event_pks=np.fromiter((r[0] for r in rows), dtype=np.int64, count=n),
        actors=actors,
        actor_keys=actor_keys,
        actor_user_ids=actor_user_ids,
        sessions=sessionise(actors, timestamps, gap),
        items=np.fromiter((item_index.get(p, -1) for p in product_keys), dtype=np.int64, count=n),
        item_keys=item_keys,
        store_ids=np.array([r[5] for r in rows], dtype=object),
        event_types=event_types,
        queries=np.array([r[6] for r in rows], dtype=object),
        values=values,
        revenue=np.fromiter(
            (0.0 if r[10] is None else float(r[10]) for r in rows), dtype=np.float64, count=n
        ),
        timestamps=timestamps,
        weights=weights,
        dropped=dropped,
    )
