"""Receivers that turn the host's domain signals (and Django's login) into stored events.

`connect()` runs in the app's `ready()`. Each receiver is a thin door into `track()` or
`sessions`, so the same validation and idempotency apply as for every other way in. Every
host signal takes `request=` or, from code without one (a task, a webhook, a management
command), `user=`, as `track()` does.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from django.contrib.auth.signals import user_logged_in
from django.db import models
from django.dispatch import Signal
from django.http import HttpRequest

from recommendations.events import signals
from recommendations.events.ids import stable_event_id
from recommendations.events.sessions import merge_session_into_user
from recommendations.events.tracking import claim_recommendation, get_session_id, track


def _claimed(request: HttpRequest | None, recommendation_id: str, product: models.Model) -> str:
    """The id a signal carries, checked when it comes with a request: the host took it from
    the browser (a `?rec=` link, a form's field), which could name any list. Without a request
    it is server code's, trusted as `track()` trusts it."""
    if request is None:
        return recommendation_id
    return claim_recommendation(request, recommendation_id, product)


def on_product_viewed(
    sender: Any,
    *,
    product: models.Model,
    recommendation_id: str = "",
    request: HttpRequest | None = None,
    user: models.Model | None = None,
    **kwargs: Any,
) -> None:
    recommendation_id = _claimed(request, recommendation_id, product)
    track(request, "view", product=product, recommendation_id=recommendation_id, user=user)


# The event each cart signal records: one receiver hears both.
_CART_EVENTS = {signals.added_to_cart: "add_to_cart", signals.removed_from_cart: "remove_from_cart"}


def on_cart_changed(
    sender: Any,
    *,
    signal: Signal,
    product: models.Model,
    quantity: int = 1,
    recommendation_id: str = "",
    request: HttpRequest | None = None,
    user: models.Model | None = None,
    **kwargs: Any,
) -> None:
    """`quantity` units put in (`added_to_cart`) or taken out of (`removed_from_cart`) the
    cart; a browser's recommendation id is checked."""
    recommendation_id = _claimed(request, recommendation_id, product)
    track(
        request,
        _CART_EVENTS[signal],
        product=product,
        value=quantity,
        recommendation_id=recommendation_id,
        user=user,
    )


def on_order_placed(
    sender: Any,
    *,
    order_id: Any,
    lines: Iterable[signals.OrderLine | tuple[models.Model, int, Any]],
    request: HttpRequest | None = None,
    user: models.Model | None = None,
    **kwargs: Any,
) -> None:
    """One purchase event per order line, credited to the line's recommendation (trusted: see
    `signals`); ids derive from the order so a re-sent signal is harmless."""
    for given in lines:
        line = signals.OrderLine(*given)  # a 3-tuple gets no recommendation
        revenue = Decimal(str(line.unit_price)) * line.quantity if line.unit_price is not None else None
        track(
            request,
            "purchase",
            product=line.product,
            value=line.quantity,
            revenue=revenue,
            recommendation_id=line.recommendation_id,
            user=user,
            event_id=stable_event_id("order", order_id, line.product.pk),
            order_id=str(order_id),
        )


def on_searched(
    sender: Any,
    *,
    query: str,
    results: Iterable[models.Model] = (),
    request: HttpRequest | None = None,
    user: models.Model | None = None,
    **kwargs: Any,
) -> None:
    shown = list(results)
    track(request, "search", query=query[:255], products=shown or None, results_count=len(shown), user=user)


def on_review_added(
    sender: Any,
    *,
    product: models.Model,
    rating: int,
    text: str = "",
    request: HttpRequest | None = None,
    user: models.Model | None = None,
    **kwargs: Any,
) -> None:
    extra = {"text": text[:2000]} if text else {}
    track(request, "rating", product=product, value=rating, user=user, **extra)


def on_user_logged_in(sender: Any, *, request: HttpRequest | None, user: models.Model, **kwargs: Any) -> None:
    if request is not None:
        merge_session_into_user(get_session_id(request, create=False), user)


def connect() -> None:
    """Connect every receiver once (dispatch_uid guards against double connection)."""
    pairs = [
        (signals.product_viewed, on_product_viewed),
        *((signal, on_cart_changed) for signal in _CART_EVENTS),
        (signals.order_placed, on_order_placed),
        (signals.searched, on_searched),
        (signals.review_added, on_review_added),
        (user_logged_in, on_user_logged_in),
    ]
    for signal, receiver in pairs:
        signal.connect(receiver, dispatch_uid=f"recommendations.events.{receiver.__name__}")
