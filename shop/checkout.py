"""Placing an order: the cart becomes an `Order`, stock goes down, purchases are recorded.

All of it happens in one transaction: if any product ran out or the purchase events cannot
be stored, nothing is written and the cart is left as it was. The checkout form carries a
token: the same form sent twice (a double click, a retry after a slow answer, two requests at
once) places one order, and the repeat is answered with that order.
"""

from __future__ import annotations

import logging
import time
import uuid

from django.db import IntegrityError, transaction
from django.db.models import Case, F, Value, When
from django.http import HttpRequest

from recommendations.events import signals
from shop.cart import Cart, CartError, CartLine
from shop.models import Order, OrderLine, Product

logger = logging.getLogger(__name__)


def placed_order(request: HttpRequest, token: uuid.UUID | None) -> Order | None:
    """The order this session already placed with the checkout form's `token`, if any.

    Only the session that placed it gets it: a token copied into another browser's form
    neither shows that order nor places a second one there (the constraint refuses it)."""
    if token is None or not request.session.session_key:
        return None
    return Order.objects.filter(checkout_token=token, session_key=request.session.session_key).first()


def place_order(
    request: HttpRequest, cart: Cart, details: dict[str, str], token: uuid.UUID | None = None
) -> Order:
    """Turn the cart into an order for `details` (name, email, address, city, postcode).

    With the checkout form's `token`, a form sent again returns the order it placed instead
    of placing another (and taking the stock twice); the cart is emptied either way.

    Raises `CartError` (with a message for the shopper) when the cart is empty or a product
    no longer has the quantity asked for. Each line is recorded as a purchase event carrying
    the recommendation that brought the product to the cart, so the sale is attributed: the
    engine's `order_placed` signal, as any host would send it.
    """
    started = time.monotonic()
    lines = cart.lines()
    if not lines:
        raise CartError("Your cart is empty.")
    user = request.user if request.user.is_authenticated else None
    try:
        order = _create_order(request, cart, lines, details, token, user)
    except IntegrityError as error:
        # The token is another session's order's (a form copied between browsers): requests
        # of one session lock the same products, so theirs are told apart above.
        raise CartError("This checkout page was already used. Please go to checkout again.") from error
    cart.clear()
    logger.info(
        "Order %s placed: %d lines, total %s, in %.0f ms",
        order.pk,
        len(lines),
        order.total,
        (time.monotonic() - started) * 1000,
    )
    return order


def _create_order(
    request: HttpRequest,
    cart: Cart,
    lines: list[CartLine],
    details: dict[str, str],
    token: uuid.UUID | None,
    user: object,
) -> Order:
    with transaction.atomic():
        # Lock the rows so two checkouts cannot sell the same last item twice.
        stock = dict(
            Product.objects.select_for_update()
            .filter(pk__in=[line.product.pk for line in lines])
            .values_list("pk", "stock")
        )
        # Read after the lock: a request sent with the same form waited here for the first.
        repeated = placed_order(request, token)
        if repeated is not None:
            return repeated
        for line in lines:
            if stock.get(line.product.pk, 0) < line.quantity:
                raise CartError(
                    f"Sorry, only {stock.get(line.product.pk, 0)} of {line.product.title} left. "
                    "Please change the quantity in your cart."
                )
        order = Order.objects.create(
            user=user,
            session_key=request.session.session_key or "",
            total=cart.total(lines),
            checkout_token=token,
            **details,
        )
        OrderLine.objects.bulk_create(
            OrderLine(
                order=order,
                product=line.product,
                title=line.product.title,
                unit_price=line.product.price,
                quantity=line.quantity,
            )
            for line in lines
        )
        # One statement for the whole cart (one per line made a 20-line checkout 33 queries);
        # the rows are locked and checked above, so no line can take a stock below zero.
        Product.objects.filter(pk__in=[line.product.pk for line in lines]).update(
            stock=F("stock") - Case(*(When(pk=line.product.pk, then=Value(line.quantity)) for line in lines))
        )
        # Inside the transaction: purchases that cannot be stored undo the order. The lines'
        # ids were checked when they were added (`cart_add`); the signal trusts them.
        signals.order_placed.send(
            sender=Order,
            request=request,
            order_id=order.pk,
            lines=[
                signals.OrderLine(line.product, line.quantity, line.product.price, line.recommendation_id)
                for line in lines
            ],
        )
    return order
