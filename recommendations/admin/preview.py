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
from typing import Any

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.http import HttpRequest

from recommendations.access import may_preview_shoppers
from recommendations.adapters import get_product_adapter, get_store_model
from recommendations.admin.events import attach_product_titles, may_open
from recommendations.admin.filters import matching_users
from recommendations.admin.readonly import AdminPage
from recommendations.models import Event, EventType, UserPreview
from recommendations.serving import products, stores
from recommendations.serving.types import Audience, Options, RecommendationResult
from recommendations.vectors.queries import active_version

logger = logging.getLogger(__name__)

RECENT_EVENTS = 12
ACTIVE_SHOPPERS = 12
# How many of the newest events of signed-in users `active_shoppers` looks through.
SHOPPER_EVENTS_READ = 2_000


@dataclass
class PreviewBlock:
    title: str
    result: RecommendationResult | None = None
    error: str = ""
    milliseconds: float = 0.0


def _block(title: str, compute: Callable[[], RecommendationResult]) -> PreviewBlock:
    started = time.monotonic()
    try:
        result = compute()
    except Exception as error:  # an admin diagnostic: show the failure, keep the other blocks
        logger.exception("Preview block %r failed", title)
        return PreviewBlock(title, error=f"{type(error).__name__}: {error}")
    return PreviewBlock(title, result, milliseconds=(time.monotonic() - started) * 1000)


def preview_blocks(user: AbstractBaseUser) -> list[PreviewBlock]:
    """Every block `user` can get: the home page's, then a product page's for their last product.

    Each block is computed on its own (not with the page's shared "already shown" set), so
    the preview shows each list in full. Previews serve the user's experiment variant
    without recording an exposure: looking at a shopper must not count them as a visitor.
    """
    options = Options(explain=True)

    def audience() -> Audience:
        return Audience(user=user, record_exposure=False)

    # Stores are optional (STORE_MODEL): a shop without them gets no store block, not a failed one.
    store_blocks = (
        [_block("Stores you may like", lambda: stores.stores_for_user(audience(), options))]
        if get_store_model() is not None
        else []
    )
    blocks = [
        _block("Recommended for you", lambda: products.for_you(audience(), options)),
        _block("Trending now", lambda: products.trending(audience(), options)),
        *store_blocks,
        _block("Recently viewed", lambda: products.recently_viewed(audience(), options)),
        _block("Buy it again", lambda: products.buy_again(audience(), options)),
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
            _block(f"Similar to {seed}", lambda: products.similar(last, audience(), options)),
            _block(
                f"Bought together with {seed}",
                lambda: products.bought_together(last, audience(), options),
            ),
        ]
    return blocks


def recent_events(user: AbstractBaseUser) -> list[Event]:
    events = list(Event.objects.filter(user=user).order_by("-timestamp")[:RECENT_EVENTS])
    attach_product_titles(events)
    return events


def active_shoppers() -> list:
    """Users with the most recent events, to pick from with one click: those of the newest
    `SHOPPER_EVENTS_READ` events of signed-in users, read newest first off the timestamp
    index. Every user's latest event (a MAX over the whole log) took 104-250 ms at 315,000
    events, on every load of the page."""
    newest = (
        Event.objects.filter(user__isnull=False)
        .order_by("-timestamp")
        .values_list("user_id", flat=True)[:SHOPPER_EVENTS_READ]
    )
    ids = list(dict.fromkeys(newest))[:ACTIVE_SHOPPERS]
    users = get_user_model()._default_manager.in_bulk(ids)
    return [users[pk] for pk in ids if pk in users]


@admin.register(UserPreview)
class UserPreviewAdmin(AdminPage):
    """Shows the preview form and the chosen user's blocks instead of a list of rows."""

    title = "Preview recommendations as a user"
    template_name = "admin/recommendations/preview.html"

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """The rule the API's `?user=` asks too (`access.may_preview_shoppers`): both show a
        shopper's lists and history, so no one sees through one what the other refuses."""
        return may_preview_shoppers(request.user)

    def page_context(self, request: HttpRequest) -> dict[str, Any]:
        query = request.GET.get("user", "").strip()
        user = matching_users(query).order_by("pk").first() if query else None
        context = {
            "query": query,
            "previewed": user,
            "not_found": bool(query) and user is None,
            "shoppers": active_shoppers(),
            "model_version": active_version(),
            "may_open_events": may_open(self.admin_site, Event, request),
        }
        if user is not None:
            context["blocks"] = preview_blocks(user)
            context["events"] = recent_events(user)
        return context
