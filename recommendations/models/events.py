"""Behaviour events: the only input the engine learns from."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex, OpClass
from django.db import connections, models, router, transaction
from django.db.models.functions import Upper
from django.utils import timezone


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


class EventKey(models.Model):
    """The id of every stored event: what keeps "the same event_id is stored once" true.

    The events table is partitioned by month of `timestamp` (`events.partitions`), and
    PostgreSQL only enforces a unique index on a partitioned table if it contains the
    partition key. `(event_id, timestamp)` would not do: a replay carries another timestamp
    whenever the first send had none (the server's clock fills it in), so it would be stored
    twice. This small unpartitioned table holds the ids instead, with `event_id` as its
    primary key; every writer claims an id here in the same statement or transaction as the
    event's row (`INSERT ... ON CONFLICT DO NOTHING RETURNING`, or COPY), so concurrent
    replays wait on one index entry and store the event once. A trigger on the events table
    deletes the ids of deleted events, and retention deletes those of a dropped partition,
    so an id is here exactly as long as its event is stored.
    """

    event_id = models.CharField(max_length=64, primary_key=True)

    def __str__(self) -> str:
        return self.event_id


def claim_event_ids(
    event_ids: Sequence[str], *, using: str = "default", skip_claimed: bool = False
) -> set[str]:
    """Record event ids as stored; returns the ids claimed now.

    An id claimed before raises `IntegrityError`, as a unique index would, unless
    `skip_claimed`, in which case it is left out of the result (and its event must not be
    written). Call in the transaction that writes the events.
    """
    if not event_ids:
        return set()
    table = connections[using].ops.quote_name(EventKey._meta.db_table)
    conflict = "ON CONFLICT DO NOTHING " if skip_claimed else ""
    with connections[using].cursor() as cursor:
        # In id order, like every other writer of ids, so overlapping writers cannot deadlock.
        cursor.execute(
            f"INSERT INTO {table} (event_id) SELECT unnest(%s::text[]) ORDER BY 1 "
            f"{conflict}RETURNING event_id",
            [sorted(event_ids)],
        )
        return {event_id for (event_id,) in cursor.fetchall()}


class EventQuerySet(models.QuerySet):
    def bulk_create(self, objs: Iterable[Event], *args: Any, **kwargs: Any) -> list[Event]:
        """Claims the events' ids first; with `ignore_conflicts`, events whose id is stored are skipped."""
        if kwargs.get("update_conflicts"):
            raise ValueError("Events are never updated on conflict: write them with ignore_conflicts=True.")
        objs = list(objs)
        with transaction.atomic(using=self.db, savepoint=False):
            claimed = claim_event_ids(
                [obj.event_id for obj in objs],
                using=self.db,
                skip_claimed=kwargs.get("ignore_conflicts", False),
            )
            new, seen = [], set()
            for obj in objs:
                if obj.event_id in claimed and obj.event_id not in seen:
                    seen.add(obj.event_id)
                    new.append(obj)
            return super().bulk_create(new, *args, **kwargs)


class Event(models.Model):
    """One thing a shopper did.

    `event_id` is the idempotency key: a client may supply it (the JS beacon and the REST
    API do), otherwise one is generated; the same id is stored once, which `EventKey`
    enforces (the ORM's `save()` and `bulk_create()` claim the id too; raw SQL writers must
    go through `events.ingestion`). Products and stores are host objects referenced by
    their primary key as a string, never by a foreign key.

    The table is partitioned by month of `timestamp` (`events.partitions`): its database
    primary key is `(id, timestamp)`, while the ORM keeps `id` alone as the primary key, which
    stays unique because it comes from one sequence.
    """

    event_id = models.CharField(max_length=64, default=new_event_id)
    event_type = models.CharField(max_length=24, choices=EventType.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="recommendation_events",
        db_index=False,  # rec_event_user_time serves lookups by user
        # No database constraint: checking it row by row halved COPY into this table (38,000
        # against 61,000-85,000 rows/s, docs/benchmarks.md). Every writer checks the users of
        # a batch in one query and locks them FOR KEY SHARE set-based while writing it, as the
        # constraint would row by row, so a batch and its user's deletion cannot interleave
        # (`events.ingestion`); deleting a user still deletes their events (Django's cascade,
        # and the privacy erasure).
        db_constraint=False,
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

    objects = EventQuerySet.as_manager()

    class Meta:
        indexes = [
            models.Index(fields=["session_id"], name="rec_event_session", condition=~models.Q(session_id="")),
            models.Index(fields=["user", "timestamp"], name="rec_event_user_time"),
            models.Index(fields=["product_id", "event_type"], name="rec_event_product_type"),
            # The event browser's product id search and filter, in any case (`iexact` compares
            # UPPER()s): a host's SKU typed in another case. Events without a product skip it.
            models.Index(
                Upper("product_id"), name="rec_event_product_upper", condition=~models.Q(product_id="")
            ),
            models.Index(
                fields=["recommendation_id"],
                name="rec_event_recommendation",
                condition=~models.Q(recommendation_id=""),
            ),
            # The event browser's search within search queries, in any case (`icontains` compares
            # UPPER()s). Only searches carry a query, so other events cost no index entry.
            GinIndex(
                OpClass(Upper("query"), name="gin_trgm_ops"),
                name="rec_event_query_trgm",
                condition=~models.Q(query=""),
            ),
        ]

    def __str__(self) -> str:
        who = f"user {self.user_id}" if self.user_id else f"session {self.session_id[:8]}"
        return f"{self.event_type} by {who} at {timezone.localtime(self.timestamp):%Y-%m-%d %H:%M}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Claims `event_id` when the event is new: a stored id raises `IntegrityError`."""
        if not self._state.adding:
            return super().save(*args, **kwargs)
        using = kwargs.get("using") or router.db_for_write(type(self), instance=self)
        with transaction.atomic(using=using, savepoint=False):
            claim_event_ids([self.event_id], using=using)
            super().save(*args, **kwargs)
