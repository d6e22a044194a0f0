"""What a user or anonymous session did lately, read once per request.

The latest events drive real-time personalisation (`serving.realtime`), "recently viewed"
and "because you viewed X"; their newest id is also the history's fingerprint, which keys
the cache so that a new event invalidates the visitor's lists in every process at once.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Any

import numpy as np
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.db.models import Max, Model, Q, QuerySet
from django.utils import timezone

from recommendations.conf import rec_settings
from recommendations.models import (
    Event,
    EventType,
    ListKind,
    ModelVersion,
    PrecomputedList,
    ProductVector,
    UserVector,
)
from recommendations.models.preferences import PersonalisationPreference
from recommendations.serving.compiled import KeyedQuery
from recommendations.serving.errors import NotFound, lookup, lookup_query
from recommendations.serving.types import Audience
from recommendations.sql import array_literal, key_value, native_timestamps
from recommendations.vectors.lists import has_lists
from recommendations.vectors.queries import active_version, parse_vector, vector_read_database

# Events that say something about a product the visitor cares about (a removal from the
# cart says what an earlier add no longer does).
PRODUCT_EVENTS = (
    EventType.VIEW,
    EventType.CLICK,
    EventType.ADD_TO_CART,
    EventType.REMOVE_FROM_CART,
    EventType.FAVOURITE,
    EventType.PURCHASE,
    EventType.RATING,
)
PRODUCT_EVENTS_ARRAY = array_literal(PRODUCT_EVENTS)  # the visitor's read sends it every time
MAX_PURCHASES = 1000
# Views read per product "recently viewed" asks for, before it groups views by product.
VIEWS_READ_PER_PRODUCT = 5
CLOCK_SKEW = dt.timedelta(days=1)
# Events whose decayed weight falls below this say nothing about the visitor's taste now.
MIN_WEIGHT = 1e-3
# A century: a half-life set to years must not reach back past the calendar's first year.
MAX_COUNTING_MINUTES = 100 * 366 * 24 * 60
# Which part of the visitor's UNION ALL query a row comes from.
LATEST, BOUGHT, OPTED_OUT, KNOWN_USER, STORED = "latest", "bought", "opted_out", "known_user", "stored"


@dataclass(frozen=True)
class HistoryEvent:
    id: int
    event_type: str
    product_id: str
    timestamp: dt.datetime
    value: float | None = None


@dataclass
class History:
    """The latest product events of one visitor, newest first.

    `vectors`: the embeddings of their products in model version `vectors_version`, and
    `user_vector` the user's stored one there (None: none) with `user_list`, the products it
    scores best (precomputed, `vectors.lists`), when the read brought them along (the active
    version's; `serving.realtime` uses them).
    """

    events: list[HistoryEvent] = field(default_factory=list)
    vectors: dict[str, np.ndarray] = field(default_factory=dict)
    vectors_version: int | None = None
    user_vector: np.ndarray | None = None
    user_list: list[tuple[str, float]] = field(default_factory=list)
    newest_id: int = 0

    @classmethod
    def of(cls, events: list[HistoryEvent], **vectors: Any) -> History:
        """The history of these events (newest first), with the cart settled.

        Each removal from the cart takes back the latest earlier adds of that product, unit
        by unit; an add taken back whole reads as a view (the shopper looked at it, no more).
        The removals themselves are left out, though they still change the fingerprint.
        """
        open_adds: dict[str, list[list[Any]]] = {}  # per product: [event index, units left]
        taken_back: set[int] = set()
        for index in range(len(events) - 1, -1, -1):  # oldest first
            event = events[index]
            units = event.value if event.value is not None and event.value > 0 else 1.0
            if event.event_type == EventType.ADD_TO_CART:
                open_adds.setdefault(event.product_id, []).append([index, units])
            elif event.event_type == EventType.REMOVE_FROM_CART:
                adds = open_adds.get(event.product_id, [])
                while units > 0 and adds:
                    latest = adds[-1]
                    used = min(units, latest[1])
                    latest[1] -= used
                    units -= used
                    if latest[1] <= 0:
                        taken_back.add(adds.pop()[0])
        settled = [
            replace(event, event_type=EventType.VIEW, value=None) if index in taken_back else event
            for index, event in enumerate(events)
            if event.event_type != EventType.REMOVE_FROM_CART
        ]
        return cls(settled, newest_id=max((e.id for e in events), default=0), **vectors)

    @property
    def fingerprint(self) -> str:
        """Changes whenever the visitor does something new (the newest event's id)."""
        return str(max(self.newest_id, max((e.id for e in self.events), default=0)))

    @property
    def product_ids(self) -> list[str]:
        """Distinct products, most recent first."""
        return list(dict.fromkeys(e.product_id for e in self.events))


def audience_filter(audience: Audience) -> Q | None:
    """Events of this visitor: the user's (any session) or, when anonymous, the session's."""
    if audience.user_id is not None:
        return Q(user_id=audience.user_id)
    if audience.session_id:
        return Q(session_id=audience.session_id)
    return None


FIELDS = ("id", "event_type", "product_id", "timestamp", "value")


def history_window() -> tuple[dt.datetime, dt.datetime] | None:
    """The span serving reads events from (`SERVING_HISTORY_DAYS` back), None for no bound.

    Passed as values rather than `now() - interval`, so that PostgreSQL prunes the monthly
    partitions outside it while planning instead of probing the indexes of every one of them:
    the older ones, and the empty months made ahead. Its end allows a day of clock skew, so an
    event stamped by a clock running ahead still counts.
    """
    days = rec_settings.SERVING_HISTORY_DAYS
    if days is None:
        return None
    if isinstance(days, bool) or not isinstance(days, int | float) or days <= 0:
        raise ImproperlyConfigured(
            f"RECOMMENDATIONS['SERVING_HISTORY_DAYS'] must be a number of days > 0 or None; got {days!r}."
        )
    now = timezone.now()
    return now - dt.timedelta(days=days), now + CLOCK_SKEW


def _in_window(where: Q, *types: str) -> QuerySet:
    """The visitor's product events of these types within the serving window."""
    window = history_window()
    if window is not None:
        where &= Q(timestamp__gte=window[0], timestamp__lt=window[1])
    return Event.objects.filter(where, event_type__in=types).exclude(product_id="")


def _latest(where: Q, size: int) -> QuerySet:
    return _in_window(where, *PRODUCT_EVENTS).order_by("-timestamp", "-id").values_list(*FIELDS)[:size]


def viewed_products(audience: Audience, size: int) -> list[str]:
    """The last `size` distinct products the visitor viewed, most recent first.

    Viewing one product again and again must not push the others out, so this reads
    VIEWS_READ_PER_PRODUCT views per product asked for (the latest, an index scan) and
    keeps each product once; only a visitor who viewed fewer products than that many times
    over has their views grouped by product, a scan of the serving window.
    """
    where = audience_filter(audience)
    if where is None:
        return []
    views = _in_window(where, EventType.VIEW, EventType.CLICK)
    read = size * VIEWS_READ_PER_PRODUCT
    latest = list(views.order_by("-timestamp", "-id").values_list("product_id", flat=True)[:read])
    products = list(dict.fromkeys(latest))
    if len(products) >= size or len(latest) < read:
        return products[:size]
    grouped = (
        views.values("product_id")
        .annotate(last_seen=Max("timestamp"))
        .order_by("-last_seen", "product_id")
        .values_list("product_id", flat=True)[:size]
    )
    return list(grouped)


def _column(model: type[Model], name: str) -> str:
    return connection.ops.quote_name(model._meta.get_field(name).column)


@cache
def _visitor_sql(
    by_user: bool, with_flag: bool, bounded: bool, known_user: str | None, with_vectors: bool, with_list: bool
) -> str:
    """The visitor's reads as one UNION ALL: latest product events, purchases, opt-out flag
    and, given the SQL of the user lookup (`known_user`), a row when the user exists.
    `with_vectors`: each latest event since a moment (the second parameter) also brings its
    product's vector in one version (the first), which real-time personalisation would
    otherwise read on its own (older events no longer count for it: `counting_since`), and a
    user their stored vector in that version, and with `with_list` its precomputed list.

    Written once per shape rather than by the ORM on every request: compiling the three-part
    union was about a third of this read's CPU. The opt-out part is the engine's own flag, as
    `privacy.optout.is_opted_out` reads it; a host that keeps its own (`OPT_OUT_CHECK`) is
    asked by the Audience instead.
    """
    quote = connection.ops.quote_name
    events = quote(Event._meta.db_table)

    def column(name: str) -> str:
        return f"{events}.{_column(Event, name)}"

    columns = ", ".join(column(name) for name in FIELDS)
    who = column("user" if by_user else "session_id")
    event_type, product, timestamp = column("event_type"), column("product_id"), column("timestamp")
    since = f"AND {timestamp} >= %s AND {timestamp} < %s " if bounded else ""
    newest_first = f"ORDER BY {timestamp} DESC, {column('id')} DESC LIMIT %s"
    vector, no_vector, join = "", "", ""
    if with_vectors:
        vectors = quote(ProductVector._meta.db_table)
        # Typed: UNION ALL resolves an untyped NULL as text, which an array does not match.
        no_list = ", NULL::varchar[], NULL::double precision[]" if with_list else ""
        vector = f", vector_send({vectors}.{quote('embedding')}){no_list}"
        no_vector = f", NULL{no_list}"
        join = (
            f" LEFT JOIN {vectors} ON {vectors}.{quote('model_version_id')} = %s "
            f"AND {vectors}.{quote('product_id')} = {product} AND {timestamp} >= %s"
        )
    parts = [
        f"(SELECT {columns}, '{LATEST}'{vector} FROM {events}{join} WHERE {who} = %s "
        f"AND {event_type} = ANY(%s) AND {product} <> '' {since}{newest_first})",
        f"(SELECT {columns}, '{BOUGHT}'{no_vector} FROM {events} WHERE {who} = %s AND {event_type} = %s "
        f"{since}{newest_first})",
    ]
    if with_vectors and by_user:
        users = quote(UserVector._meta.db_table)
        version, user = f"{users}.{quote('model_version_id')}", f"{users}.{quote('user_id')}"
        stored, join_list = f"vector_send({users}.{quote('embedding')})", ""
        if with_list:
            ranked = quote(PrecomputedList._meta.db_table)
            stored += f", {ranked}.{quote('product_ids')}, {ranked}.{quote('scores')}"
            join_list = (
                f" LEFT JOIN {ranked} ON {ranked}.{quote('model_version_id')} = {version} "
                f"AND {ranked}.{quote('kind')} = '{ListKind.FOR_USER.value}' "
                f"AND {ranked}.{quote('key')} = {user}::text"
            )
        parts.append(
            f"(SELECT NULL, '', '', NULL, NULL, '{STORED}', {stored} FROM {users}{join_list} "
            f"WHERE {version} = %s AND {user} = %s)"
        )
    if with_flag:
        preferences = PersonalisationPreference
        parts.append(
            f"(SELECT {_column(preferences, 'id')}, '', '', {_column(preferences, 'updated_at')}, NULL, "
            f"'{OPTED_OUT}'{no_vector} FROM {quote(preferences._meta.db_table)} "
            f"WHERE {_column(preferences, 'user')} = %s AND {_column(preferences, 'opted_out')})"
        )
    if known_user is not None:
        parts.append(
            f"(SELECT NULL, '', '', NULL, NULL, '{KNOWN_USER}'{no_vector} FROM ({known_user}) AS known_user)"
        )
    return " UNION ALL ".join(parts)


def load(audience: Audience, *, known_user: KeyedQuery | None = None) -> None:
    """Read the visitor's opt-out flag, latest events and purchases in one round trip.

    Every service of a request asks for the visitor's history and the rules ask for their
    purchases; a page with several blocks shares one `Audience`, so this runs once per page.
    The results go to `audience.memo` ("opted_out", "events"). An opted-out user's rows are
    read but dropped: they are served like a stranger. `known_user`, the compiled user lookup,
    also asks whether the user exists (`memo["user_exists"]`; see `audience_for_user`).
    """
    user_id = audience.given_user_id
    # The engine's flag is read here unless it is known already or the host checks its own.
    check_flag = (
        user_id is not None and "opted_out" not in audience.memo and rec_settings.OPT_OUT_CHECK is None
    )
    if user_id is not None and (check_flag or not audience.opted_out):
        who: Any = user_id
    elif user_id is None and audience.given_session_id:
        who = audience.given_session_id
    else:
        who = None
    latest: list[HistoryEvent] = []
    bought: list[HistoryEvent] = []
    opted_out = known = False
    vectors: dict[str, np.ndarray] = {}
    vectors_version = user_vector = None
    user_list: list[tuple[str, float]] = []
    if who is not None:
        window = history_window()
        since = [] if window is None else list(window)
        version = _vectors_version()
        vectors_version = version and version.pk
        with_list = version is not None and user_id is not None and has_lists(version, ListKind.FOR_USER)
        params = [
            *([vectors_version, counting_since()] if vectors_version else []),
            who,
            PRODUCT_EVENTS_ARRAY,
        ]
        params += since
        params += [rec_settings.REALTIME_HISTORY, who, str(EventType.PURCHASE), *since, MAX_PURCHASES]
        params += [vectors_version, user_id] if vectors_version and user_id is not None else []
        params += [user_id] if check_flag else []
        lookup_sql = None
        if known_user is not None and user_id is not None:
            params += known_user.params_for([user_id])
            lookup_sql = known_user.sql
        sql = _visitor_sql(
            user_id is not None, check_flag, window is not None, lookup_sql, bool(vectors_version), with_list
        )
        with native_timestamps(connection.cursor()) as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        for row in rows:
            values, part = row[:5], row[5]
            if part == OPTED_OUT:
                opted_out = True
            elif part == KNOWN_USER:
                known = True
            elif part == STORED:
                user_vector = parse_vector(row[6])
                if with_list and row[7] is not None:
                    user_list = list(zip(row[7], row[8], strict=True))
            elif part == LATEST:
                latest.append(HistoryEvent(*values))
                if vectors_version and row[6] is not None:
                    vectors[values[2]] = parse_vector(row[6])
            else:
                bought.append(HistoryEvent(*values))
    if check_flag:
        audience.memo["opted_out"] = opted_out
    if known_user is not None:
        audience.memo["user_exists"] = known
    if audience.opted_out:
        latest, bought, vectors, user_vector, user_list = [], [], {}, None, []
    order = lambda e: (e.timestamp, e.id)  # noqa: E731 - UNION ALL does not keep the order
    audience.memo["events"] = (
        History.of(
            sorted(latest, key=order, reverse=True),
            vectors=vectors,
            vectors_version=vectors_version,
            user_vector=user_vector,
            user_list=user_list,
        ),
        sorted(bought, key=order, reverse=True),
    )


def half_life_minutes() -> float:
    """`REALTIME_HALF_LIFE_MINUTES`, kept above zero: how fast an event's weight decays."""
    return max(rec_settings.REALTIME_HALF_LIFE_MINUTES, 1e-3)


def counting_since() -> dt.datetime:
    """Events before this moment weigh less than `MIN_WEIGHT` in the real-time taste, whatever
    their type: `REALTIME_HALF_LIFE_MINUTES` halves them until the heaviest falls below it."""
    weights = [*rec_settings.EVENT_WEIGHTS.values(), *rec_settings.RATING_WEIGHTS.values()]
    heaviest = max([w for w in weights if w > 0], default=1.0)
    half_lives = math.log2(max(heaviest / MIN_WEIGHT, 1.0))
    minutes = half_lives * half_life_minutes()
    return timezone.now() - dt.timedelta(minutes=min(minutes, MAX_COUNTING_MINUTES))


def _vectors_version() -> ModelVersion | None:
    """The version whose vectors the history read brings along: the active one, when vectors
    are read from this database (a replica's are read there, by `serving.realtime`)."""
    if vector_read_database() != connection.alias:
        return None
    return active_version()


def audience_for_user(key: Any) -> Audience:
    """The audience of the user with this key (as a request names it); `NotFound` if none.

    The user's row is looked for in the same query as their history, so naming a user costs
    no query of its own. A host that checks opt-outs itself (`OPT_OUT_CHECK`) is only ever
    handed users that exist, so for it the user is looked up first.
    """
    users = get_user_model()._default_manager.all()
    if rec_settings.OPT_OUT_CHECK is not None:
        user = lookup(users, key, shape="user")
        if user is not None:
            return Audience(user=user)
    else:
        value = key_value(users.model, key)
        if value is not None:
            # Only the key, as `lookup` gives it: other fields load on first use.
            audience = Audience(user=users.model.from_db(users.db, [users.model._meta.pk.attname], [value]))
            load(audience, known_user=lookup_query(users, shape="user"))
            if audience.memo["user_exists"]:
                return audience
    raise NotFound(f"No user with id {key!r}.")


def _loaded(audience: Audience) -> tuple[History, list[HistoryEvent]]:
    if "events" not in audience.memo:
        load(audience)
    return audience.memo["events"]


def recent_history(audience: Audience, size: int | None = None) -> History:
    """The latest product events (`REALTIME_HISTORY` unless `size` says otherwise)."""
    if size is None or size == rec_settings.REALTIME_HISTORY:
        return _loaded(audience)[0]
    where = audience_filter(audience)
    return History.of([HistoryEvent(*row) for row in _latest(where, size)] if where is not None else [])


def purchases(audience: Audience) -> list[HistoryEvent]:
    """The visitor's purchase events (the latest MAX_PURCHASES within `SERVING_HISTORY_DAYS`),
    newest first."""
    return _loaded(audience)[1]
