import json

from django import forms
from django.contrib import admin
from django.db import models
from django.http import HttpRequest
from django_celery_beat.admin import PeriodicTaskAdmin as BeatPeriodicTaskAdmin
from django_celery_beat.admin import PeriodicTaskForm as BeatPeriodicTaskForm
from django_celery_beat.models import PeriodicTask

from recommendations.admin.filters import NulSafeFilters
from recommendations.admin.pagination import EstimatedCountPaginator
from recommendations.admin.readonly import DeletedWithParentAdmin
from shop.models import Category, Order, OrderLine, Product, Store


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ["path", "slug", "parent"]
    search_fields = ["name", "path"]
    list_select_related = ["parent"]
    prepopulated_fields = {"slug": ["name"]}
    autocomplete_fields = ["parent"]


@admin.register(Store)
class StoreAdmin(admin.ModelAdmin):
    list_display = ["name", "rating", "created_at"]
    search_fields = ["name", "description", "external_id"]
    list_filter = ["categories"]
    prepopulated_fields = {"slug": ["name"]}
    filter_horizontal = ["categories"]


class GrowingTableAdmin(admin.ModelAdmin):
    """A list of a table that grows with the shop (products, orders): no `date_hierarchy`, whose
    DISTINCT DATE_TRUNC read every row's date on each page (a date filter picks a period
    through the index instead), and no full count of the rows on each page
    (`EstimatedCountPaginator`; "about N" beyond its exact count)."""

    show_full_result_count = False
    paginator = EstimatedCountPaginator


@admin.register(Product)
class ProductAdmin(GrowingTableAdmin):
    list_display = ["title", "store", "category", "brand", "price", "stock", "is_active", "created_at"]
    list_filter = ["is_active", ("created_at", admin.DateFieldListFilter), "category", "store"]
    search_fields = ["title", "description", "brand", "sku"]
    list_select_related = ["store", "category"]
    list_editable = ["price", "stock", "is_active"]
    autocomplete_fields = ["category", "store"]
    prepopulated_fields = {"slug": ["title"]}
    # An image address typed without a scheme is taken as https (Django 6's default).
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}


class OrderLineInline(admin.TabularInline):
    """An order's lines as bought: a line changed after purchase would no longer add up to the
    order's total (and its purchase events)."""

    model = OrderLine
    extra = 0
    fields = ["product", "title", "unit_price", "quantity"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Order | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Order | None = None) -> bool:
        return False


@admin.register(Order)
class OrderAdmin(GrowingTableAdmin):
    """Orders are placed by the storefront; the admin reads them (prices are frozen per line)."""

    list_display = ["__str__", "user", "name", "email", "total", "city", "created_at"]
    list_filter = [("created_at", admin.DateFieldListFilter)]
    list_select_related = ["user"]
    search_fields = ["name", "email", "user__username", "postcode", "lines__title"]
    readonly_fields = ["user", "session_key", "total", "created_at"]
    inlines = [OrderLineInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # An order is the checkout's (`checkout.place_order`): its lines, total and stock taken.
        return False


@admin.register(OrderLine)
class OrderLineAdmin(DeletedWithParentAdmin):
    """Every line sold, read-only as on its order's page; deleted with its order."""

    parent_delete_permission = "shop.delete_order"

    list_display = ["title", "order", "product", "unit_price", "quantity"]
    list_select_related = ["order", "product"]
    search_fields = ["title", "order__email"]


admin.site.unregister(PeriodicTask)

# What the beat hands Celery for each box of a periodic task: a box of another JSON type
# was saved, then every run failed to send (Celery wants a list and an object), and headers
# that are no object stopped the whole beat (it adds the task's name to them).
JSON_BOXES = {
    "args": (list, "a JSON list of arguments, e.g. [] or [30]"),
    "kwargs": (dict, 'a JSON object of keyword arguments, e.g. {} or {"days": 30}'),
    "headers": (dict, 'a JSON object of message headers, e.g. {} or {"origin": "admin"}'),
}


class PeriodicTaskForm(BeatPeriodicTaskForm):
    """Beat's form, whose JSON boxes took any JSON, and were a 500 for JSON nested too deeply."""

    def _clean_json(self, field: str) -> str:
        value = self.cleaned_data[field]
        kind, expected = JSON_BOXES[field]
        try:
            parsed = json.loads(value) if value else kind()
        except RecursionError:
            raise forms.ValidationError(f"Nested too deeply to read: enter {expected}.") from None
        except ValueError as exc:
            raise forms.ValidationError(f"Unable to parse JSON: {exc}. Enter {expected}.") from None
        if not isinstance(parsed, kind):
            raise forms.ValidationError(f"Enter {expected}.")
        return value

    def clean_headers(self) -> str:
        return self._clean_json("headers")


@admin.register(PeriodicTask)
class PeriodicTaskAdmin(NulSafeFilters, BeatPeriodicTaskAdmin):
    """django-celery-beat's admin, whose actions (enable, disable, toggle, run tasks) declare no
    permission, so Django offered them to staff who may only view the schedule; whose list
    filter by task name was a 500 for a name with a NUL character; and whose form took
    arguments the beat cannot send (`PeriodicTaskForm`)."""

    form = PeriodicTaskForm

    def get_actions(self, request: HttpRequest) -> dict:
        actions = super().get_actions(request)
        if self.has_change_permission(request):
            return actions
        # Those that declare permissions (delete) were already checked by Django.
        return {name: action for name, action in actions.items() if hasattr(action[0], "allowed_permissions")}
