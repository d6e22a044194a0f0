"""Behaviour events: the only input the engine learns from."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class EventType(models.TextChoices):
    VIEW = "view", "Product view"
    CLICK = "click", "Click on a recommendation"
    ADD_TO_CART = "add_to_cart", "Add to cart"
    REMOVE_FROM_CART = "remove_from_cart", "Remove from cart"
    PURCHASE = "purchase", "Purchase"
    SEARCH = "search", "Search"
    RATING = "rating", "Rating or review"
    FAVOURITE = "favourite", "Favourite"
    STORE_VIEW = "store_view", "Store view"
    CAMPAIGN_VIEW = "campaign_view", "Campaign view"
    CAMPAIGN_CLICK = "campaign_click", "Campaign click"
    IMPRESSION = "impression", "Impression"


def new_event_id() -> str:
    return uuid.uuid4().hex


class Event(models.Model):
    """One thing a shopper did.

    `event_id` is the idempotency key: a client may supply it (the JS beacon and the REST
    API do), otherwise one is generated; the same id is stored once. Products and stores
    are host objects referenced by their primary key as a string, never by a foreign key.
    """

    # Unique through Meta.constraints: a plain unique index, without the LIKE index that
    # `unique=True` adds to a CharField (one index fewer to maintain on every insert).
    event_id = models.CharField(max_length=64, default=new_event_id)
    event_type = models.CharField(max_length=24, choices=EventType.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="recommendation_events",
        db_index=False,  # rec_event_user_time serves lookups by user
    )
    session_id = models.CharField(max_length=64, blank=True)  # indexed where set: rec_event_session
    product_id = models.CharField(max_length=64, blank=True)
    store_id = models.CharField(max_length=64, blank=True)
    query = models.CharField(max_length=255, blank=True)
    # Rating value (1-5), quantity of a purchase or cart change; meaning depends on the type.
    value = models.FloatField(null=True, blank=True)
    revenue = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    timestamp = models.DateTimeField(db_index=True)
    # page, device, referrer, review text, products shown (impressions, searches), ...
    context = models.JSONField(default=dict, blank=True)
    recommendation_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["event_id"], name="rec_event_event_id_unique")]
        indexes = [
            models.Index(fields=["session_id"], name="rec_event_session", condition=~models.Q(session_id="")),
            models.Index(fields=["user", "timestamp"], name="rec_event_user_time"),
            models.Index(fields=["product_id", "event_type"], name="rec_event_product_type"),
            models.Index(
                fields=["recommendation_id"],
                name="rec_event_recommendation",
                condition=~models.Q(recommendation_id=""),
            ),
        ]

    def __str__(self) -> str:
        who = f"user {self.user_id}" if self.user_id else f"session {self.session_id[:8]}"
        return f"{self.event_type} by {who} at {self.timestamp:%Y-%m-%d %H:%M}"
