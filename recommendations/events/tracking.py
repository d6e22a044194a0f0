"""`track()`: record one behaviour event from server code, with who/where filled from the request.

import recommendations

recommendations.track(request, "view", product=product)
recommendations.track(request, "purchase", product=p, value=2, revenue=p.price * 2)
recommendations.track(request, "search", query="red shoes", products=results[:20])

A recommendation id that comes from the browser (a form's hidden field, a `?rec=` link) is
checked with `claim_recommendation` before server code records it.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Iterable
from typing import Any

from django.db import models
from django.http import HttpRequest

from recommendations.adapters import key_of
from recommendations.events.bots import is_bot_agent
from recommendations.events.ingestion import ingest
from recommendations.events.validation import Origin
from recommendations.models.events import new_event_id
from recommendations.serving.attribution import lists_served_to

#: Where the engine keeps its anonymous session id in the Django session. Its value survives
#: the session key change at login, which is how anonymous events find their user.
SESSION_KEY = "recommendations_session_id"
MOBILE_USER_AGENT = re.compile(r"mobi|android|iphone|ipad", re.IGNORECASE)


def get_session_id(request: HttpRequest, *, create: bool = True) -> str:
    """The engine's id for this browser session ("" without session middleware).

    Two requests a new browser sends before a response has set its session cookie each create
    one, and only one cookie stays: the beacon never sends beside a form submission (see
    beacon.js), whose response may be what starts the visitor's session, nor a page's second
    batch before its first has had its response.
    """
    session = getattr(request, "session", None)
    if session is None:
        return ""
    session_id = session.get(SESSION_KEY, "")
    if not session_id and create:
        session_id = uuid.uuid4().hex
        session[SESSION_KEY] = session_id
    return session_id


def is_bot(request: HttpRequest) -> bool:
    """Whether the request is a crawler's (`events.bots`): it gets no session, and its events
    are not stored."""
    return is_bot_agent(request.META.get("HTTP_USER_AGENT", ""))


def client_context(request: HttpRequest) -> dict[str, str]:
    """What the request says about the client: user agent and device class (for bot filtering)."""
    user_agent = request.META.get("HTTP_USER_AGENT", "")[:300]
    if not user_agent:
        return {}
    return {
        "user_agent": user_agent,
        "device": "mobile" if MOBILE_USER_AGENT.search(user_agent) else "desktop",
    }


def page_context(request: HttpRequest) -> dict[str, str]:
    """The client context plus the page and referrer of a server-rendered request."""
    context = {**client_context(request), "page": request.path[:500]}
    referrer = request.META.get("HTTP_REFERER", "")
    if referrer:
        context["referrer"] = referrer[:500]
    return context


def request_user_id(request: HttpRequest | None) -> Any:
    user = getattr(request, "user", None)
    return user.pk if user is not None and user.is_authenticated else None


def _key(obj: Any) -> str | None:
    return None if obj is None else key_of(obj)


def track(
    request: HttpRequest | None,
    event_type: str,
    product: models.Model | str | int | None = None,
    store: models.Model | str | int | None = None,
    query: str = "",
    value: float | None = None,
    *,
    revenue: Any = None,
    products: Iterable[models.Model | str | int] | None = None,
    recommendation_id: str = "",
    event_id: str | None = None,
    timestamp: dt.datetime | None = None,
    user: models.Model | None = None,
    **context: Any,
) -> str:
    """Validate and store one event now; returns its event id.

    `product`/`store` are host objects or their primary keys; a product event's store is
    filled in from the product. `products` lists what was shown (impressions, search results).
    User, session, page, referrer and user agent come from `request`; without a request
    (a task, a webhook) pass `user`. Extra keyword arguments go into the event's context.
    Raises `EventValidationError` for bad input (an unknown product, a rating out of range).
    Sending the same `event_id` twice stores the event once. A naive `timestamp` is in the
    current time zone (`TIME_ZONE`), as Django's ORM reads one; naive ISO text sent to the
    API or imported is UTC.
    """
    raw: dict[str, Any] = {
        "event_id": event_id or new_event_id(),
        "event_type": event_type,
        "product_id": _key(product),
        "store_id": _key(store),
        "query": query,
        "value": value,
        "revenue": revenue,
        "recommendation_id": recommendation_id,
        "timestamp": timestamp,
        "context": context,
        "user_id": user.pk if user is not None else request_user_id(request),
    }
    if products is not None:
        raw["products"] = [_key(p) for p in products]
    origin = Origin(
        trusted=True,
        session_id=get_session_id(request, create=not is_bot(request)) if request is not None else "",
        context=page_context(request) if request is not None else {},
    )
    ingest([raw], origin)
    return raw["event_id"]


def claim_recommendation(
    request: HttpRequest, recommendation_id: str, product: models.Model | str | int
) -> str:
    """`recommendation_id` if this visitor may credit `product` to that list, else "".

    For an id the browser sent (a form's hidden field, a `?rec=` link) that server code then
    records as its own: `track()` trusts its caller, and a cart line keeps the id so that the
    purchase is credited to it later. Unchecked, any POST could credit another visitor's list,
    or one that never showed the product, with a cart and a sale. As for the beacon's events
    (`references.claimable_by_browser`), the list must have been shown to this visitor's user
    or session (`lists_served_to`: an unclaimed first-page list becomes this session's); and
    it must be a list of products that holds `product` (`ServedList.holds_product`, the
    beacon's rule too). An id that fails is dropped, not refused: the shopper's action still
    counts, unattributed. The `product_viewed` and `added_to_cart` signals call it for the id
    they carry when they are sent with a request.
    """
    if not recommendation_id:
        return ""
    session_id = get_session_id(request, create=not is_bot(request))
    served = lists_served_to([recommendation_id], user_id=request_user_id(request), session_id=session_id)
    shown = served.get(recommendation_id)
    return recommendation_id if shown is not None and shown.holds_product(_key(product)) else ""
