"""Impression caps: how many distinct visitors viewed each campaign.

A visitor (the user, else the session) counts once however many `campaign_view` events they
send: the beacon endpoint is public, so counting raw events would let one request of 500
events spend a campaign's whole budget. Nor may a browser claim a view of a campaign it was
not shown (`targeting.show_campaigns`): such a view is stored without the campaign.

Counting reads every campaign view (no index serves it), so a count is cached for
`VIEWS_CACHE_SECONDS`. A cached count is kept current as views are stored: `ingest()` asks
`first_views` which visitors view a campaign for the first time (an index lookup of those
visitors' events) and adds them to the cached counts once the events are committed
(`add_viewers`), so a campaign stops being shown as soon as the view that reaches its cap is
stored, not a minute later. Saving a campaign starts its count afresh (`forget_views`).

Two limits remain, both documented in the README. Visitors shown the campaign while the
views that reach the cap are on their way (the pages of that moment) still see it. And with
a cache in each process (no `CACHE_URL`), other processes learn of a view within
`VIEWS_CACHE_SECONDS`: several web processes need a shared cache (Redis) for a tight cap.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from django.db.models import CharField, Count, Q, QuerySet
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, Coalesce

from recommendations.events.rows import EventRow
from recommendations.models import Campaign, Event, EventType
from recommendations.models.marketing import CAMPAIGN_CONTEXT_KEY
from recommendations.serving.cache import add_to_cached, cached_keys, forget, many_from_cache

VIEWS_CACHE_SECONDS = 60
CACHE_PREFIX = "recommendations:campaign-views:"


def _key(campaign_id: Any) -> str:
    return f"{CACHE_PREFIX}{campaign_id}"


def _visitor(user_id: Any, session_id: str) -> str:
    """Who a view counts for, as `_views` counts it: the user, else the session."""
    return str(user_id) if user_id is not None else session_id


def _views(campaign_ids: Iterable[str]) -> QuerySet[Event]:
    """Campaign views of these campaigns (context key as text), each with its `visitor`."""
    return (
        Event.objects.filter(event_type=EventType.CAMPAIGN_VIEW)
        .annotate(campaign=KT(f"context__{CAMPAIGN_CONTEXT_KEY}"))
        .filter(campaign__in=list(campaign_ids))
        .annotate(visitor=Coalesce(Cast("user_id", CharField()), "session_id"))
    )


def views_so_far(campaigns: Sequence[Campaign]) -> dict[int, int]:
    """Distinct visitors who viewed each campaign (for impression caps; campaigns nobody
    viewed are left out), cached and kept current as views are stored (see the module's
    docstring)."""
    keys = {c.pk: _key(c.pk) for c in campaigns}

    def count(missing: list[int]) -> dict[int, int]:
        rows = (
            _views(str(pk) for pk in missing).values("campaign").annotate(n=Count("visitor", distinct=True))
        )
        found = {row["campaign"]: row["n"] for row in rows}
        return {pk: found.get(str(pk), 0) for pk in missing}

    counts = many_from_cache(keys, count, VIEWS_CACHE_SECONDS) if keys else {}
    return {pk: n for pk, n in counts.items() if n}


def first_views(rows: Sequence[EventRow]) -> dict[str, int]:
    """Per campaign (its id as the events name it), the visitors among `rows` who view it for
    the first time: call before storing the rows. Only campaigns whose count is cached are
    looked at: the others are counted afresh when asked."""
    viewers: dict[str, set[str]] = {}
    for row in rows:
        campaign = (
            row.context.get(CAMPAIGN_CONTEXT_KEY) if row.event_type == EventType.CAMPAIGN_VIEW else None
        )
        if campaign is not None:
            viewers.setdefault(str(campaign), set()).add(_visitor(row.user_id, row.session_id))
    cached = cached_keys(_key(c) for c in viewers) if viewers else set()
    viewers = {c: who for c, who in viewers.items() if _key(c) in cached}
    if not viewers:
        return {}
    users = [row.user_id for row in rows if row.user_id is not None]
    sessions = [row.session_id for row in rows if row.user_id is None]
    # Only these visitors' own events are read, by the user and session indexes.
    seen = set(
        _views(viewers)
        .filter(Q(user_id__in=users) | Q(user__isnull=True, session_id__in=sessions))
        .values_list("campaign", "visitor")
        .distinct()
    )
    counts = {c: sum((c, v) not in seen for v in who) for c, who in viewers.items()}
    return {c: n for c, n in counts.items() if n}


def add_viewers(new_viewers: Mapping[str, int]) -> None:
    """Add stored first views (`first_views`) to the cached counts."""
    for campaign, n in new_viewers.items():
        add_to_cached(_key(campaign), n)


def forget_views(campaign_ids: Iterable[Any]) -> None:
    """Count these campaigns' viewers afresh when next asked (an edited campaign)."""
    forget(_key(pk) for pk in campaign_ids)
