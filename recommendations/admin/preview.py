""" "Preview as user": every block a shopper would get, with the reason for each item.

The blocks are computed by the same serving functions the storefront's template tags call,
so the preview shows what the shopper gets and why. A block that fails shows its error
instead of breaking the page.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db.models import Max, Q
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from recommendations.adapters import get_product_adapter
from recommendations.admin.events import attach_product_titles
from recommendations.models import Event, EventType, UserPreview
from recommendations.serving import products, stores
from recommendations.serving.types import Audience, Options, RecommendationResult
from recommendations.vectors.queries import active_version

logger = logging.getLogger(__name__)

RECENT_EVENTS = 12
ACTIVE_SHOPPERS = 12


@dataclass
class PreviewBlock:
    title: str
    result: RecommendationResult | None = None
    error: str = ""
    milliseconds: float = 0.0


def find_user(query: str):
    """The user named by username, e-mail or id, or None."""
    User = get_user_model()
    match = Q(**{f"{User.USERNAME_FIELD}__iexact": query})
    if hasattr(User, "email"):
        match |= Q(email__iexact=query)
    if query.isdigit():
        match |= Q(pk=int(query))
    return User._default_manager.filter(match).order_by("pk").first()


def _block(title: str, compute: Callable[[], RecommendationResult]) -> PreviewBlock:
    started = time.monotonic()
    try:
        result = compute()
    except Exception as error:  # an admin diagnostic: show the failure, keep the other blocks
        logger.exception("Preview block %r failed", title)
        return PreviewBlock(title, error=f"{type(error).__name__}: {error}")
    return PreviewBlock(title, result, milliseconds=(time.monotonic() - started) * 1000)


def preview_blocks(user) -> list[PreviewBlock]:
    """Every block `user` can get: the home page's, then a product page's for their last product.

    Each block is computed on its own (not with the page's shared "already shown" set), so
    the preview shows each list in full.
    """
    options = Options(explain=True)
    blocks = [
        _block("Recommended for you", lambda: products.for_you(Audience(user=user), options)),
        _block("Trending now", lambda: products.trending(Audience(user=user), options)),
        _block("Stores you may like", lambda: stores.stores_for_user(Audience(user=user), options)),
        _block("Recently viewed", lambda: products.recently_viewed(Audience(user=user), options)),
        _block("Buy it again", lambda: products.buy_again(Audience(user=user), options)),
    ]
    last = (
        Event.objects.filter(user=user, event_type__in=[EventType.VIEW, EventType.CLICK, EventType.PURCHASE])
        .exclude(product_id="")
        .order_by("-timestamp")
        .values_list("product_id", flat=True)
        .first()
    )
    seed = get_product_adapter().by_keys([last]).first() if last else None
    if seed is not None:
        blocks += [
            _block(f"Similar to {seed}", lambda: products.similar(last, Audience(user=user), options)),
            _block(
                f"Bought together with {seed}",
                lambda: products.bought_together(last, Audience(user=user), options),
            ),
        ]
    return blocks


def recent_events(user) -> list[Event]:
    events = list(Event.objects.filter(user=user).order_by("-timestamp")[:RECENT_EVENTS])
    attach_product_titles(events)
    return events


def active_shoppers() -> list:
    """Users with the most recent events, to pick from with one click."""
    User = get_user_model()
    return list(
        User._default_manager.annotate(last_event=Max("recommendation_events__timestamp"))
        .filter(last_event__isnull=False)
        .order_by("-last_event")[:ACTIVE_SHOPPERS]
    )


@admin.register(UserPreview)
class UserPreviewAdmin(admin.ModelAdmin):
    """Shows the preview form and the chosen user's blocks instead of a list of rows."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        query = request.GET.get("user", "").strip()
        user = find_user(query) if query else None
        context = {
            **self.admin_site.each_context(request),
            "title": "Preview recommendations as a user",
            "opts": self.model._meta,
            "query": query,
            "previewed": user,
            "not_found": bool(query) and user is None,
            "shoppers": active_shoppers(),
            "model_version": active_version(),
            **(extra_context or {}),
        }
        if user is not None:
            context["blocks"] = preview_blocks(user)
            context["events"] = recent_events(user)
        return TemplateResponse(request, "admin/recommendations/preview.html", context)
