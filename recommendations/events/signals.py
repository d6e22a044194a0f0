"""Domain signals a host shop sends; the engine records them as behaviour events.

Send them from your views (or tasks), with the request when there is one::

    from recommendations.events import signals

    signals.product_viewed.send(
        sender=Product, request=request, product=product, recommendation_id=request.GET.get("rec", "")
    )
    signals.added_to_cart.send(
        sender=Product, request=request, product=product, quantity=2, recommendation_id=posted_id
    )
    signals.removed_from_cart.send(sender=Product, request=request, product=product, quantity=1)
    signals.order_placed.send(
        sender=Order, request=request, order_id=order.pk,
        lines=[
            signals.OrderLine(line.product, line.quantity, line.unit_price, line.recommendation_id)
            for line in order.lines.all()
        ],
    )
    signals.searched.send(sender=None, request=request, query=q, results=page_of_products)
    signals.review_added.send(sender=Product, request=request, product=product, rating=4, text="...")

Without a request (an order confirmed by a payment webhook, a view recorded by a task), pass
`user=` instead, to any of them. The receivers live in `receivers.py` and are connected in the
app's `ready()`.

Recommendation ids: `product_viewed`, `added_to_cart` and `removed_from_cart` sent with a
request take theirs from the browser (a `?rec=` link, a form's hidden field), so their
receivers keep it only when
`claim_recommendation` says this visitor was shown that list with that product; a cart line
should keep the id that check returns (`claim_recommendation` itself), because `order_placed`
trusts its lines' ids: by checkout the list may be past its retention, and an order confirmed
by a webhook has no visitor to check. Sent without a request (server code), ids are trusted,
as `track()`'s are.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from django.db import models
from django.dispatch import Signal


class OrderLine(NamedTuple):
    """A line of `order_placed`; a plain (product, quantity, unit_price) tuple works too."""

    product: models.Model
    quantity: int
    unit_price: Any  # a Decimal (or None: the purchase is recorded without revenue)
    recommendation_id: str = ""  # the list that brought the product to the cart, as checked then


#: kwargs: request (or user), product, recommendation_id="" (when the visit came from a recommendation)
product_viewed = Signal()
#: kwargs: request (or user), product, quantity=1, recommendation_id="" (when added from a recommendation)
added_to_cart = Signal()
#: kwargs: request (or user), product, quantity=1 (how many were taken out), recommendation_id=""
removed_from_cart = Signal()
#: kwargs: request (or user), order_id, lines: iterable of `OrderLine`s or (product, quantity, unit_price)
order_placed = Signal()
#: kwargs: request (or user), query, results: the products shown (optional)
searched = Signal()
#: kwargs: request (or user), product, rating (1-5), text=""
review_added = Signal()
