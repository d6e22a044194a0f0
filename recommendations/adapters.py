"""How the engine reads the host shop's catalogue.

The engine never imports the host's models. The host names its product (and optionally
store) model in `RECOMMENDATIONS["PRODUCT_MODEL"]` and, when its field names differ from
the defaults below, subclasses `ProductAdapter` and points `PRODUCT_ADAPTER` at it::

    class ProductAdapter(recommendations.adapters.ProductAdapter):
        title_field = "name"
        stock_field = "quantity_available"

        def get_category_path(self, obj):
            return [c.name for c in obj.section.ancestors()]

Everything the engine learns from or filters on goes through the adapter: which objects
are recommendable (`index_queryset`), their text and attributes (`to_record`), and which
ones may be shown right now (`available_q`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import Any

from django.apps import apps
from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured
from django.db import models

from recommendations.conf import SETTING_NAME, rec_settings
from recommendations.sql import key_value

# The engine keeps product and store keys as text of at most this many characters (its
# tables' `product_id` and `store_id` columns, and what the events API accepts).
KEY_MAX_LENGTH = 64


@dataclass(frozen=True)
class ProductRecord:
    """What the engine knows about one product, independent of the host's field names."""

    id: str
    title: str
    text: str = ""
    category_path: tuple[str, ...] = ()
    store_id: str | None = None
    brand: str = ""
    price: float | None = None
    in_stock: bool = True
    is_active: bool = True
    created_at: dt.datetime | None = None


@dataclass(frozen=True)
class StoreRecord:
    """What the engine knows about one store (seller, brand shop)."""

    id: str
    name: str
    text: str = ""
    rating: float | None = None
    category_names: tuple[str, ...] = ()


def _get_model(setting_key: str, *, required: bool) -> type[models.Model] | None:
    label = getattr(rec_settings, setting_key)
    if not label:
        if required:
            raise ImproperlyConfigured(
                f"settings.{SETTING_NAME}[{setting_key!r}] is not set. Name your model as "
                "'app_label.ModelName', e.g. 'catalog.Product'."
            )
        return None
    try:
        return apps.get_model(label, require_ready=False)
    except ValueError as exc:
        raise ImproperlyConfigured(
            f"settings.{SETTING_NAME}[{setting_key!r}] must be 'app_label.ModelName', got {label!r}."
        ) from exc
    except LookupError as exc:
        raise ImproperlyConfigured(
            f"settings.{SETTING_NAME}[{setting_key!r}] refers to model {label!r}, which is not "
            "installed. Check the app label and model name, and that the app is in INSTALLED_APPS."
        ) from exc


def get_product_model() -> type[models.Model]:
    """The host's product model, from `RECOMMENDATIONS["PRODUCT_MODEL"]`."""
    model = _get_model("PRODUCT_MODEL", required=True)
    assert model is not None
    return model


def get_store_model() -> type[models.Model] | None:
    """The host's store model, or None when the shop has no stores."""
    return _get_model("STORE_MODEL", required=False)


def price_of(value: Any) -> float | None:
    """A price as serving shows it: a float, or None when the value is not a number."""
    return float(value) if isinstance(value, int | float | Decimal) else None


def key_order(key: str) -> tuple[int, str]:
    """Sort key of an engine key (`BaseAdapter.key`): numeric keys by value ("9" before "10"),
    others by length, then text. Equal scores are ordered by it everywhere, so an answer does
    not depend on the order in which an index or a table returned its ties."""
    return len(key), key


def _in_stock(stock: Any) -> bool:
    if stock is None:
        return True
    return stock > 0 if isinstance(stock, int | float | Decimal) else bool(stock)


class BaseAdapter:
    """Shared plumbing: field checks and the queryset the engine reads from."""

    model: type[models.Model]

    #: Attribute names of the adapter that must name real fields of the model.
    field_attributes: tuple[str, ...] = ()

    #: The field holding the object's id in the system it was imported from (a SKU, an ASIN,
    #: a seller id); importers of events map source ids to primary keys through it.
    source_id_field: str | None = None

    def __init__(self, model: type[models.Model]) -> None:
        self.model = model

    def check_fields(self) -> list[str]:
        """Names of configured fields that the model lacks (for start-up checks)."""
        missing = []
        for attribute in self.field_attributes:
            name = getattr(self, attribute)
            if not name:
                continue
            try:
                self.model._meta.get_field(name.split("__")[0])
            except FieldDoesNotExist:
                missing.append(f"{type(self).__name__}.{attribute} = {name!r}")
        return missing

    def index_queryset(self) -> models.QuerySet:
        """Objects the engine may learn from and recommend. Override to narrow it down.

        Serving compiles its SQL once per process (`serving.compiled`), so narrow it by
        conditions that hold for the process, not ones that change from request to request.
        """
        return self.model._default_manager.all()

    @staticmethod
    def key(pk: Any) -> str:
        """The engine stores host primary keys as strings, so int and UUID keys both work."""
        return str(pk)

    def long_key(self) -> models.Field | None:
        """The model's primary key when its values may not fit in `KEY_MAX_LENGTH` characters
        (a CharField with a larger or no max_length, a TextField): start-up refuses it, since
        each save, event and embedding of a longer key would fail. Integer and UUID keys fit."""
        field = self.model._meta.pk
        while field.is_relation:  # a parent link (multi-table inheritance) holds its parent's key
            field = field.target_field
        if not isinstance(field, models.CharField | models.TextField):
            return None
        return field if field.max_length is None or field.max_length > KEY_MAX_LENGTH else None

    def by_keys(self, keys: Iterable[str]) -> models.QuerySet:
        """The objects with these engine keys (string primary keys). A key that cannot name
        one ("p1" for integer keys, as a row written straight into the events table may hold)
        names none, rather than failing the whole query."""
        values = [key_value(self.model, key) for key in keys]
        return self.model._default_manager.filter(pk__in=[value for value in values if value is not None])

    def keys_by_source_id(self, source_ids: Iterable[str]) -> dict[str, str]:
        """Engine keys of the objects with these source ids (those that exist), by source id."""
        if not self.source_id_field:
            raise ImproperlyConfigured(
                f"{type(self).__name__}.source_id_field is not set, so imported ids cannot be matched "
                "to your objects. Set it to the field that holds the id from the source system."
            )
        rows = self.model._default_manager.filter(**{f"{self.source_id_field}__in": list(source_ids)})
        return {str(source): self.key(pk) for source, pk in rows.values_list(self.source_id_field, "pk")}


def key_of(value: Any) -> str:
    """The engine key of a host object given as the object or as its primary key: the template
    tags, `track()` and the manager's `rerank` take either."""
    return BaseAdapter.key(getattr(value, "pk", value))


class ProductAdapter(BaseAdapter):
    """Maps a host product model onto `ProductRecord`. Override attributes or methods."""

    title_field = "title"
    description_field: str | None = "description"
    category_field: str | None = "category"
    store_field: str | None = "store"
    brand_field: str | None = "brand"
    price_field: str | None = "price"
    stock_field: str | None = "stock"
    active_field: str | None = "is_active"
    created_field: str | None = "created_at"
    #: A field that changes whenever the product does (`auto_now`). Naming it lets serving
    #: reuse a product's card between requests until it changes (`CARD_CACHE_SECONDS`), and,
    #: when it is a time (a DateTimeField), the scheduled vector sync re-embed products saved
    #: after their vector was computed.
    updated_field: str | None = None
    #: The category model's field that names a category's parent, when the categories form a
    #: tree: renaming or moving a category then rewrites the category paths in the search
    #: documents of the products under it too (None: only those of its own products).
    category_parent_field: str | None = None
    #: Optional, for speed: the values (ORM lookups such as "store__name") that
    #: `card_from_values()` builds a card from. Naming them lets serving read one row of values
    #: per shown product instead of the instance with its category and store (a third of the
    #: CPU). Empty: cards come from instances, through the getters below.
    card_values: tuple[str, ...] = ()

    field_attributes = (
        "title_field",
        "description_field",
        "category_field",
        "store_field",
        "brand_field",
        "price_field",
        "stock_field",
        "active_field",
        "created_field",
        "updated_field",
        "source_id_field",
    )

    def check_fields(self) -> list[str]:
        missing = super().check_fields()
        for lookup in self.card_values:
            try:
                self.model._meta.get_field(lookup.split("__")[0])
            except FieldDoesNotExist:
                missing.append(f"{type(self).__name__}.card_values: {lookup!r}")
        if self.category_parent_field and self._category_parent() is None:
            missing.append(
                f"{type(self).__name__}.category_parent_field = {self.category_parent_field!r} "
                "(a ForeignKey of the category model to itself)"
            )
        return missing

    def updated_time_field(self) -> str | None:
        """`updated_field` when it holds the time of the last save (a DateTimeField), which
        can be compared with when a vector was computed; None otherwise (a revision number or
        a date tells when apart only for cards)."""
        if not self.updated_field:
            return None
        try:
            field = self.model._meta.get_field(self.updated_field)
        except FieldDoesNotExist:  # reported by `check_fields`
            return None
        return self.updated_field if isinstance(field, models.DateTimeField) else None

    def category_model(self) -> type[models.Model] | None:
        """The model `category_field` points at; None when the products have no category
        field, or it is not a ForeignKey (its saves are then not watched)."""
        try:
            field = self.model._meta.get_field(self.category_field) if self.category_field else None
        except FieldDoesNotExist:  # reported by `check_fields`
            return None
        return field.related_model if field is not None and (field.many_to_one or field.one_to_one) else None

    def _category_parent(self) -> models.Field | None:
        model = self.category_model()
        if model is None or not self.category_parent_field:
            return None
        try:
            field = model._meta.get_field(self.category_parent_field)
        except FieldDoesNotExist:
            return None
        return field if field.many_to_one and field.related_model is model else None

    def categories_under(self, keys: Iterable[str]) -> set[str]:
        """These categories' keys and those of every category below them (through
        `category_parent_field`; one query a level). Override for a tree that answers in one
        query (django-mptt's `get_descendants()`, treebeard)."""
        found = level = set(keys)
        parent = self._category_parent()
        while parent is not None and level:
            children = parent.model._default_manager.filter(**{f"{parent.name}__in": list(level)})
            level = {self.key(pk) for pk in children.values_list("pk", flat=True)} - found
            found = found | level
        return found

    def plain_store_field(self) -> bool:
        """Whether `store_field` names a plain field (a CharField, an IntegerField) rather than a
        ForeignKey. Unlike a category's text, such a value is no store: the engine reads a
        product's store as the key of a store row (`<field>_id`), and cards read its name
        through the relation, so start-up refuses it."""
        try:
            field = self.model._meta.get_field(self.store_field) if self.store_field else None
        except FieldDoesNotExist:  # reported by `check_fields`
            return False
        return field is not None and not (field.many_to_one or field.one_to_one)

    def related_fields(self) -> list[str]:
        """The category and store fields that are relations, to `select_related`: a category
        kept as plain text (a CharField) is read from the product's own row."""
        return [
            name
            for name in (self.category_field, self.store_field)
            if name and self.model._meta.get_field(name).is_relation
        ]

    def get_category_path(self, obj: models.Model) -> list[str]:
        """Category names from the root down. The default uses the category's `str()`.

        It must be the same for every product of a category: a saved category's path is read
        from one of its products and written into the search documents of them all."""
        if not self.category_field:
            return []
        category = getattr(obj, self.category_field)
        return [str(category)] if category is not None else []

    def get_store_id(self, obj: models.Model) -> str | None:
        if not self.store_field:
            return None
        store_pk = getattr(obj, f"{self.store_field}_id", None)
        return self.key(store_pk) if store_pk is not None else None

    def get_text(self, obj: models.Model) -> str:
        """Free text the model reads: title and description by default."""
        parts = [self.get_title(obj)]
        if self.description_field:
            parts.append(str(getattr(obj, self.description_field) or ""))
        return "\n".join(p for p in parts if p)

    def get_title(self, obj: models.Model) -> str:
        return str(getattr(obj, self.title_field) or "")

    def get_price(self, obj: models.Model) -> float | None:
        return price_of(getattr(obj, self.price_field)) if self.price_field else None

    def card_from_values(self, values: dict[str, Any]) -> dict[str, Any]:
        """A card's "title", "price", "category" (names from the root), "store_id", "store"
        (its name) and "url", from one product's `card_values`; they must be what the
        getters give from the instance. Only called when `card_values` names the values."""
        raise NotImplementedError(f"{type(self).__name__} names card_values: define card_from_values().")

    def to_record(self, obj: models.Model) -> ProductRecord:
        """Read one product into the engine's shape."""
        stock = getattr(obj, self.stock_field) if self.stock_field else None
        return ProductRecord(
            id=self.key(obj.pk),
            title=self.get_title(obj),
            text=self.get_text(obj),
            category_path=tuple(self.get_category_path(obj)),
            store_id=self.get_store_id(obj),
            brand=str(getattr(obj, self.brand_field) or "") if self.brand_field else "",
            price=self.get_price(obj),
            in_stock=_in_stock(stock),
            is_active=bool(getattr(obj, self.active_field)) if self.active_field else True,
            created_at=getattr(obj, self.created_field) if self.created_field else None,
        )

    def records(
        self, queryset: models.QuerySet | None = None, chunk_size: int = 2000
    ) -> Iterator[ProductRecord]:
        """All recommendable products as records, streamed in chunks."""
        queryset = self.index_queryset() if queryset is None else queryset
        related = self.related_fields()
        if related:
            queryset = queryset.select_related(*related)
        for obj in queryset.iterator(chunk_size=chunk_size):
            yield self.to_record(obj)

    def available_q(self) -> models.Q:
        """An ORM filter for products that may be shown now: active and in stock."""
        q = models.Q()
        if self.active_field:
            q &= models.Q(**{self.active_field: True})
        if self.stock_field:
            q &= models.Q(**{f"{self.stock_field}__gt": 0})
        return q

    def available_queryset(self) -> models.QuerySet:
        return self.index_queryset().filter(self.available_q())


class StoreAdapter(BaseAdapter):
    """Maps a host store (seller) model onto `StoreRecord`."""

    name_field = "name"
    description_field: str | None = "description"
    rating_field: str | None = "rating"

    field_attributes = ("name_field", "description_field", "rating_field", "source_id_field")

    def get_category_names(self, obj: models.Model) -> list[str]:
        """Names of the categories the store specialises in (empty by default)."""
        return []

    def to_record(self, obj: models.Model) -> StoreRecord:
        rating = getattr(obj, self.rating_field) if self.rating_field else None
        name = str(getattr(obj, self.name_field) or "")
        description = str(getattr(obj, self.description_field) or "") if self.description_field else ""
        return StoreRecord(
            id=self.key(obj.pk),
            name=name,
            text="\n".join(p for p in (name, description) if p),
            rating=float(rating) if rating is not None else None,
            category_names=tuple(self.get_category_names(obj)),
        )

    def records(self, queryset: models.QuerySet | None = None) -> Iterator[StoreRecord]:
        queryset = self.index_queryset() if queryset is None else queryset
        for obj in queryset.iterator(chunk_size=2000):
            yield self.to_record(obj)


@cache
def get_product_adapter() -> ProductAdapter:
    """The configured product adapter, bound to the product model."""
    return rec_settings.PRODUCT_ADAPTER(get_product_model())


@cache
def get_store_adapter() -> StoreAdapter | None:
    """The configured store adapter, or None when `STORE_MODEL` is not set."""
    model = get_store_model()
    return rec_settings.STORE_ADAPTER(model) if model is not None else None


def clear_cache() -> None:
    """Forget the adapters (settings changed)."""
    get_product_adapter.cache_clear()
    get_store_adapter.cache_clear()


def validate_configuration() -> None:
    """Raise one `ImproperlyConfigured` naming every problem with the catalogue settings, so
    a host fixes them in one go rather than one start-up at a time."""
    rec_settings.validate()
    adapter = get_product_adapter()
    problems = []
    if not isinstance(adapter, ProductAdapter):
        problems.append(
            f"settings.{SETTING_NAME}['PRODUCT_ADAPTER'] must subclass "
            "recommendations.adapters.ProductAdapter."
        )
    elif adapter.card_values and type(adapter).card_from_values is ProductAdapter.card_from_values:
        problems.append(
            f"{type(adapter).__name__}.card_values is set, so serving builds cards from those values: "
            "define card_from_values(values) in the adapter too, or leave card_values empty."
        )
    if isinstance(adapter, ProductAdapter) and adapter.plain_store_field():
        problems.append(
            f"{type(adapter).__name__}.store_field = {adapter.store_field!r} is not a ForeignKey: the "
            "engine reads a product's store as a relation to your store model (STORE_MODEL). Make it a "
            "ForeignKey to that model (when the column holds your stores' primary keys, db_column and "
            "db_constraint=False keep it as it is), or set store_field = None."
        )
    store_adapter = get_store_adapter()
    for checked in (adapter, store_adapter):
        key = checked.long_key() if isinstance(checked, BaseAdapter) else None
        if key is not None:
            problems.append(
                f"{checked.model._meta.label}.{key.name}, the primary key, may hold more than the "
                f"{KEY_MAX_LENGTH} characters the engine keeps for a key. Give it "
                f"max_length={KEY_MAX_LENGTH} or less, or use an integer or UUID primary key."
            )
    missing = adapter.check_fields() if isinstance(adapter, BaseAdapter) else []
    if store_adapter is not None:
        missing += store_adapter.check_fields()
    if missing:
        problems.append(
            "The catalogue adapters name fields that do not exist: "
            + "; ".join(missing)
            + ". Set these attributes to your model's field names (or None) in your adapter."
            + "".join(
                f" {SETTING_NAME}[{setting_key!r}] names none of yours, so {default.__name__} reads its "
                f"default names: subclass recommendations.adapters.{default.__name__} and name the "
                f"subclass there, e.g. 'catalog.recommendations.{default.__name__}'."
                for setting_key, default, used in (
                    ("PRODUCT_ADAPTER", ProductAdapter, adapter),
                    ("STORE_ADAPTER", StoreAdapter, store_adapter),
                )
                # The host named no adapter of its own: "in your adapter" alone leaves it looking for one.
                if type(used) is default and used.check_fields()
            )
        )
    if problems:
        raise ImproperlyConfigured("\n".join(problems))
