"""The shopping cart, kept in the visitor's session.

The session holds only product keys, quantities and the recommendation that led to each
line (so a later purchase can be attributed to it); prices and availability are read from
the catalogue every time, so a cart never shows a stale price or a product that is gone.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.contrib.sessions.backends.base import SessionBase

from shop.models import Product

SESSION_KEY = "cart"
MAX_QUANTITY = 99


class CartError(ValueError):
    """A cart change that cannot be made; the message is meant for the shopper."""


@dataclass(frozen=True)
class CartLine:
    product: Product
    quantity: int
    recommendation_id: str = ""

    @property
    def line_total(self) -> Decimal:
        return self.product.price * self.quantity

    @property
    def quantity_limit(self) -> int:
        return quantity_limit(self.product)

    @property
    def shortage(self) -> str:
        """What stops this line from being bought as it is ("" when nothing does), shown on
        the cart before checkout refuses it."""
        if not self.product.stock:
            return "Sold out: remove it to check out."
        if self.quantity > self.product.stock:
            return f"Only {self.product.stock} left: lower the quantity to check out."
        return ""


def quantity_limit(product: Product) -> int:
    """The most of `product` one cart line may hold now: its stock, up to `MAX_QUANTITY`."""
    return min(product.stock, MAX_QUANTITY)


class Cart:
    """A session's cart: `{product pk: {"quantity": n, "recommendation_id": id}}`."""

    def __init__(self, session: SessionBase) -> None:
        self.session = session
        self._items: dict[str, dict] = session.get(SESSION_KEY, {})
        # Titles of the lines `lines()` dropped, for the shopper to be told (views do).
        self.removed: list[str] = []

    def __len__(self) -> int:
        """The number of items (quantities added up), as shown on the cart badge."""
        return sum(item["quantity"] for item in self._items.values())

    def quantity_of(self, product: Product) -> int:
        return self._items.get(str(product.pk), {}).get("quantity", 0)

    def add(self, product: Product, quantity: int = 1, recommendation_id: str = "") -> int:
        """Add `quantity` of `product`; returns the new quantity in the cart."""
        if quantity < 1:
            raise CartError("Quantity must be at least 1.")
        current = self._items.get(str(product.pk), {})
        new_quantity = current.get("quantity", 0) + quantity
        self._check(product, new_quantity)
        self._items[str(product.pk)] = {
            "quantity": new_quantity,
            # The first recommendation that brought the product keeps the credit.
            "recommendation_id": current.get("recommendation_id") or recommendation_id,
        }
        self._save()
        return new_quantity

    def set_quantity(self, product: Product, quantity: int) -> None:
        """Change a line's quantity; 0 removes the line."""
        if quantity == 0:
            self.remove(product)
            return
        self._check(product, quantity)
        item = self._items.setdefault(str(product.pk), {"recommendation_id": ""})
        item["quantity"] = quantity
        self._save()

    def remove(self, product: Product) -> int:
        """Remove a line; returns the quantity that was in the cart (0 if none)."""
        removed = self._items.pop(str(product.pk), {}).get("quantity", 0)
        self._save()
        return removed

    def lines(self) -> list[CartLine]:
        """The cart's lines with current catalogue data. Products no longer for sale (switched
        off or deleted) are dropped and named in `removed`; sold-out ones stay, marked by
        `CartLine.shortage`, as the shopper may wait or remove them."""
        products = Product.objects.filter(pk__in=self._items.keys(), is_active=True).select_related(
            "store", "category"
        )
        by_key = {str(p.pk): p for p in products}
        gone = set(self._items) - set(by_key)
        if gone:
            titles = dict(Product.objects.filter(pk__in=gone).values_list("pk", "title"))
            self.removed += [titles.get(int(key), "A product") for key in gone]
            self._items = {key: item for key, item in self._items.items() if key in by_key}
            self._save()
        return [
            CartLine(by_key[key], item["quantity"], item.get("recommendation_id", ""))
            for key, item in self._items.items()
        ]

    def total(self, lines: list[CartLine] | None = None) -> Decimal:
        return sum((line.line_total for line in (lines if lines is not None else self.lines())), Decimal(0))

    def clear(self) -> None:
        self._items = {}
        self._save()

    def _check(self, product: Product, quantity: int) -> None:
        if quantity < 1:
            raise CartError("Quantity must be at least 1.")
        if quantity > MAX_QUANTITY:
            raise CartError(f"You can order at most {MAX_QUANTITY} of one product.")
        if not product.is_active:
            raise CartError(f"{product.title} is no longer for sale.")
        if quantity > product.stock:
            raise CartError(
                f"Only {product.stock} of {product.title} in stock."
                if product.stock
                else f"{product.title} is out of stock."
            )

    def _save(self) -> None:
        self.session[SESSION_KEY] = self._items
        self.session.modified = True
