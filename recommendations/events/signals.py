"""Domain signals a host shop sends; the engine records them as behaviour events.

Send them from your views (or tasks), with the request when there is one::

    from recommendations.events import signals

    signals.product_viewed.send(sender=Product, request=request, product=product)
    signals.added_to_cart.send(sender=Product, request=request, product=product, quantity=2)
    signals.order_placed.send(
        sender=Order, request=request, order_id=order.pk,
        lines=[(line.product, line.quantity, line.unit_price) for line in order.lines.all()],
    )
    signals.searched.send(sender=None, request=request, query=q, results=page_of_products)
    signals.review_added.send(sender=Review, request=request, product=product, rating=4, text="...")

Without a request (an order confirmed by a payment webhook, a view recorded by a task), pass
`user=` instead, to any of them. The receivers live in `receivers.py` and are connected in the
app's `ready()`.
"""

from django.dispatch import Signal

#: kwargs: request (or user), product, recommendation_id="" (when the visit came from a recommendation)
product_viewed = Signal()
#: kwargs: request (or user), product, quantity=1
added_to_cart = Signal()
#: kwargs: request (or user), order_id, lines: iterable of (product, quantity, unit_price)
order_placed = Signal()
#: kwargs: request (or user), query, results: the products shown (optional)
searched = Signal()
#: kwargs: request (or user), product, rating (1-5), text=""
review_added = Signal()
