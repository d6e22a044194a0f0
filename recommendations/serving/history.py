"""What a user or anonymous session did lately, read once per request.

The latest events drive real-time personalisation (`serving.realtime`), "recently viewed"
and "because you viewed X"; their newest id is also the history's fingerprint, which keys
the cache so that a new event invalidates the visitor's lists in every process at once.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.db.models import Q

from recommendations.conf import rec_settings
from recommendations.models import Event, EventType
from recommendations.serving.types import Audience

# Events that say something about a product the visitor cares about.
PRODUCT_EVENTS = (
    EventType.VIEW,
    EventType.CLICK,
    EventType.ADD_TO_CART,
    EventType.FAVOURITE,
    EventType.PURCHASE,
    EventType.RATING,
)
MAX_PURCHASES = 1000


@dataclass(frozen=True)
class HistoryEvent:
    id: int
    event_type: str
    product_id: str
    timestamp: dt.datetime
    value: float | None = None


@dataclass
class History:
    """The latest product events of one visitor, newest first."""

    events: list[HistoryEvent] = field(default_factory=list)

    @property
    def fingerprint(self) -> str:
        """Changes whenever the visitor does something new (the newest event's id)."""
        return str(max((e.id for e in self.events), default=0))

    @property
    def product_ids(self) -> list[str]:
        """Distinct products, most recent first."""
        return list(dict.fromkeys(e.product_id for e in self.events))

    def of_type(self, *types: str) -> list[HistoryEvent]:
        return [e for e in self.events if e.event_type in types]


def audience_filter(audience: Audience) -> Q | None:
    """Events of this visitor: the user's (any session) or, when anonymous, the session's."""
    if audience.user_id is not None:
        return Q(user_id=audience.user_id)
    if audience.session_id:
        return Q(session_id=audience.session_id)
    return None


def recent_history(audience: Audience, size: int | None = None) -> History:
    """The latest `size` product events (default `REALTIME_HISTORY`), one indexed query."""
    where = audience_filter(audience)
    if where is None:
        return History()
    size = size or rec_settings.REALTIME_HISTORY
    rows = (
        Event.objects.filter(where, event_type__in=PRODUCT_EVENTS)
        .exclude(product_id="")
        .order_by("-timestamp", "-id")
        .values_list("id", "event_type", "product_id", "timestamp", "value")[:size]
    )
    return History([HistoryEvent(*row) for row in rows])


def purchases(audience: Audience) -> list[HistoryEvent]:
    """Every purchase event of the visitor (bounded), newest first, for "buy it again"."""
    where = audience_filter(audience)
    if where is None:
        return []
    rows = (
        Event.objects.filter(where, event_type=EventType.PURCHASE)
        .order_by("-timestamp")
        .values_list("id", "event_type", "product_id", "timestamp", "value")[:MAX_PURCHASES]
    )
    return [HistoryEvent(*row) for row in rows]
