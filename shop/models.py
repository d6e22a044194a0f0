"""The demo shop's catalogue: a category tree, stores (sellers) and products."""

from __future__ import annotations

from decimal import Decimal
from functools import cache
from typing import Any

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.urls import get_script_prefix, get_urlconf, reverse
from django.utils.text import slugify

from recommendations.serving.queryset import RecommendationManager

SLUG_MARK = "slug-mark"


@cache
def _slug_url_template(name: str, script_prefix: str, urlconf: object) -> str:
    return reverse(name, args=[SLUG_MARK], urlconf=urlconf)


def slug_url(name: str, slug: str) -> str:
    """`reverse(name, args=[slug])`, reversed once per URL name (and script prefix): a page
    shows dozens of products, and reverse() was a tenth of a recommendation request's CPU."""
    return _slug_url_template(name, get_script_prefix(), get_urlconf(settings.ROOT_URLCONF)).replace(
        SLUG_MARK, slug
    )


class Category(models.Model):
    """A node of the category tree; `path` caches the names from the root for fast reads."""

    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=140, unique=True)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="children"
    )
    # Unbounded: a tree may be any depth, and a cut path would no longer be its names.
    path = models.TextField(editable=False, default="")

    class Meta:
        verbose_name_plural = "categories"
        ordering = ["path"]

    def __str__(self) -> str:
        return self.path or self.name

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self.slug:
            self.slug = slugify(self.name)[:140]
        self.path = f"{self.parent.path} > {self.name}" if self.parent else self.name
        super().save(*args, **kwargs)
        for child in self.children.all():
            child.save()

    def get_absolute_url(self) -> str:
        return slug_url("shop:category", self.slug)

    @property
    def names(self) -> list[str]:
        return self.names_of(self.path)

    @staticmethod
    def names_of(path: str) -> list[str]:
        """The names from the root down in a category's `path`."""
        return path.split(" > ")

    def descendants_and_self(self) -> models.QuerySet[Category]:
        return Category.objects.filter(models.Q(pk=self.pk) | models.Q(path__startswith=f"{self.path} > "))


class Store(models.Model):
    """A seller on the marketplace."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=220, unique=True)
    external_id = models.CharField(max_length=64, unique=True, null=True, blank=True)
    description = models.TextField(blank=True)
    rating = models.DecimalField(
        max_digits=3,
        decimal_places=2,
        default=0,
        validators=[MinValueValidator(0), MaxValueValidator(5)],
    )
    categories = models.ManyToManyField(Category, blank=True, related_name="stores")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return slug_url("shop:store", self.slug)


class Product(models.Model):
    """A product for sale by one store."""

    title = models.CharField(max_length=300)
    # The product's id in the system it came from (an ERP, a dataset's ASIN); used by importers.
    sku = models.CharField(max_length=64, unique=True, null=True, blank=True)
    slug = models.SlugField(max_length=320, unique=True)
    description = models.TextField(blank=True)
    # Indexed by `shop_product_category_newest` (its first column), not on its own.
    category = models.ForeignKey(Category, on_delete=models.PROTECT, related_name="products", db_index=False)
    store = models.ForeignKey(Store, on_delete=models.CASCADE, related_name="products")
    brand = models.CharField(max_length=120, blank=True)
    price = models.DecimalField(max_digits=10, decimal_places=2, validators=[MinValueValidator(0)])
    stock = models.PositiveIntegerField(default=0)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    image_url = models.URLField(blank=True)

    objects = models.Manager()
    # Recommendations as QuerySets: Product.recommendations.for_user(request.user)[:8]
    recommendations = RecommendationManager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["is_active", "stock"]),
            # A category's page, newest first (also the order "Recommended" ranks from): read in
            # order from the index, not every product of the category sorted.
            models.Index(fields=["category", "-created_at", "id"], name="shop_product_category_newest"),
            # The admin's list, newest first (its `-pk` tie-break included): a page read in order
            # from the index, not every product sorted.
            models.Index(fields=["-created_at", "-id"], name="shop_product_newest"),
        ]

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        return slug_url("shop:product", self.slug)

    @property
    def in_stock(self) -> bool:
        return self.stock > 0


class Order(models.Model):
    """A checkout: who bought, where it goes, and the lines bought (prices frozen at purchase)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="orders"
    )
    # The anonymous session that placed the order, so a guest's purchases join its other events.
    session_key = models.CharField(max_length=64, blank=True)
    name = models.CharField(max_length=200)
    email = models.EmailField()
    address = models.CharField(max_length=300)
    city = models.CharField(max_length=120)
    postcode = models.CharField(max_length=20)
    # Room for any cart: a line is at most 99 x 99,999,999.99, and a session could not hold the
    # hundred million lines that would fill 18 digits.
    total = models.DecimalField(max_digits=20, decimal_places=2)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # The checkout form's token: a form sent twice (a double click, a retry) places one order.
    checkout_token = models.UUIDField(null=True, blank=True, unique=True, editable=False)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Order #{self.pk}"


class OrderLine(models.Model):
    """One product of an order; title and unit price are copied so later edits don't rewrite history."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    product = models.ForeignKey(Product, null=True, on_delete=models.SET_NULL, related_name="order_lines")
    title = models.CharField(max_length=300)
    unit_price = models.DecimalField(max_digits=10, decimal_places=2)
    quantity = models.PositiveIntegerField(validators=[MinValueValidator(1)])

    class Meta:
        ordering = ["pk"]

    def __str__(self) -> str:
        return f"{self.quantity} x {self.title}"

    @property
    def line_total(self) -> Decimal:
        return self.unit_price * self.quantity
