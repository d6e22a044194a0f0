"""The event browser: the behaviour log, filterable by type, user, product, session and date.

Events are a log, so they are read-only here (deleting stays possible, for privacy
requests). Products are host objects referenced by key, so their titles are read through
the catalogue adapter once per page instead of once per row.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.db.models import Model, Q, QuerySet
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html

from recommendations.adapters import get_product_adapter
from recommendations.admin.filters import (
    AttributedFilter,
    NulSafeChangeList,
    ProductFilter,
    SessionFilter,
    UserFilter,
    about_product,
)
from recommendations.admin.pagination import EstimatedCountPaginator
from recommendations.admin.readonly import ReadOnlyAdmin
from recommendations.models import Event, EventKey
from recommendations.serving.rules import titles


def attach_product_titles(events: list[Event]) -> None:
    """Set `product_title` on each event, reading all the titles in one query."""
    named = titles(event.product_id for event in events if event.product_id)
    for event in events:
        event.product_title = named.get(event.product_id, "")


def matching_events(term: str) -> Q:
    """Events the browser's search finds for `term`, each test served by an index (a test
    without one made every search read the whole log): the exact recommendation id, the
    product id in any case (`about_product`), a search query containing the term in any case
    (trigram index), and the exact event id. The events table has no index on `event_id`
    (`EventKey` holds the ids), so that test is added only when the id is stored: a search for
    an unknown id stays an index lookup."""
    matches = Q(recommendation_id=term) | about_product(term) | (Q(query__icontains=term) & ~Q(query=""))
    if EventKey.objects.filter(event_id=term).exists():
        matches |= Q(event_id=term)
    return matches


def may_open(site: admin.AdminSite, model: type[Model], request: HttpRequest) -> bool:
    """Whether the user may open `model`'s admin pages: a link to one they may not answers 403."""
    return site.is_registered(model) and site.get_model_admin(model).has_view_or_change_permission(request)


class EventChangeList(NulSafeChangeList):
    """Attaches `product_title` to the events of the page with one catalogue query, and
    `product_linked`: whether the user may open the products' admin pages."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        attach_product_titles(self.result_list)
        linked = may_open(self.model_admin.admin_site, get_product_adapter().model, request)
        for event in self.result_list:
            event.product_linked = linked


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ["timestamp", "event_type", "who", "product", "query", "value", "revenue", "attributed"]
    list_filter = [
        "event_type",
        ("timestamp", admin.DateFieldListFilter),
        UserFilter,
        ProductFilter,
        SessionFilter,
        AttributedFilter,
    ]
    list_select_related = ["user"]
    # Searched by `get_search_results`; named so that Django shows the search box.
    search_fields = ["query"]
    search_help_text = (
        "Finds an exact event id or recommendation id, a product id (in any case), or searches "
        "whose query contains the text (in any case)."
    )
    # No `date_hierarchy`: it read the month of every event (DISTINCT DATE_TRUNC) on each page;
    # the date filter picks a period through the timestamp index.
    ordering = ["-timestamp"]
    list_per_page = 50
    # Counting a large log on every page is slow and tells the reader little.
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    readonly_fields = [f.name for f in Event._meta.fields]
    fieldsets = [
        (None, {"fields": ["event_type", "timestamp", "user", "session_id"]}),
        ("Subject", {"fields": ["product_id", "store_id", "query", "value", "revenue"]}),
        ("Attribution and context", {"fields": ["recommendation_id", "context", "event_id", "created_at"]}),
    ]

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return EventChangeList

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Event], search_term: str
    ) -> tuple[QuerySet[Event], bool]:
        term = search_term.strip()
        return (queryset.filter(matching_events(term)) if term else queryset), False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Event | None = None) -> bool:
        return False

    @admin.display(description="who", ordering="user")
    def who(self, event: Event) -> str:
        if event.user_id:
            return event.user.get_username()
        return f"visitor {event.session_id[:8]}" if event.session_id else "-"

    @admin.display(description="product", ordering="product_id")
    def product(self, event: Event) -> str:
        if not event.product_id:
            return "-"
        title = getattr(event, "product_title", "") or f"#{event.product_id}"
        if not getattr(event, "product_linked", False):
            return title
        model = get_product_adapter().model
        try:
            url = reverse(
                f"admin:{model._meta.app_label}_{model._meta.model_name}_change", args=[event.product_id]
            )
        except NoReverseMatch:
            return title
        return format_html('<a href="{}">{}</a>', url, title)

    @admin.display(description="recommendation", boolean=True)
    def attributed(self, event: Event) -> bool:
        return bool(event.recommendation_id)


@admin.register(EventKey)
class EventKeyAdmin(ReadOnlyAdmin):
    """The stored event ids (`EventKey`): search an exact id to see whether an event arrived.

    Read-only: the ids follow the events (a deleted event releases its id), and a hand-deleted
    id would let a replay of its event be stored twice.
    """

    search_fields = ["=event_id"]
