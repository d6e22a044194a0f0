"""Recommendation ids: what was shown, so clicks and purchases can be credited to it.

One `ServedRecommendation` row per list (a single INSERT on the hot path); its id is
the `recommendation_id` every item of the list carries, which the beacon sends back
with impressions and clicks (`data-rec-id`).
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from collections.abc import Sequence
from functools import cache
from typing import Any

from django.db import connection
from django.utils import timezone

from recommendations.conf import rec_settings
from recommendations.models import ServedRecommendation
from recommendations.serving.types import Audience

logger = logging.getLogger(__name__)


FIELDS = ServedRecommendation._meta.concrete_fields


@cache
def _async_insert_sql() -> str:
    """One statement that sets `synchronous_commit = off` for its own transaction and inserts.

    A single round trip: no BEGIN/SET/COMMIT, and no wait for the WAL flush. Placeholders
    are cast to the column types because a SELECT list, unlike VALUES, is not typed by the
    target table.
    """
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in FIELDS)
    values = ", ".join(f"%s::{f.db_type(connection)}" for f in FIELDS)
    return (
        f"INSERT INTO {quote(ServedRecommendation._meta.db_table)} ({columns}) "
        f"SELECT {values} FROM (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit"
    )


def new_recommendation_id() -> str:
    """20 hex characters: unique enough for a retention window, short in HTML attributes."""
    return secrets.token_hex(10)


def record_served(
    *,
    kind: str,
    source: str,
    audience: Audience,
    product_ids: Sequence[str],
    scores: Sequence[float],
    model_version_id: int | None,
    context: dict[str, Any],
) -> str:
    """Store what is being shown and return its recommendation id (not stored when disabled).

    Outside a transaction the row is committed asynchronously in one statement (see
    `_async_insert_sql`): the request does not wait for the WAL flush, and a crash can lose
    only the last fraction of a second of served lists, never corrupt them.
    """
    recommendation_id = new_recommendation_id()
    if not (rec_settings.RECORD_SERVED and product_ids):
        return recommendation_id
    row = ServedRecommendation(
        id=recommendation_id,
        kind=kind,
        source=source,
        user_id=audience.user_id,
        session_id=audience.session_id[:64],
        model_version_id=model_version_id,
        product_ids=list(product_ids),
        scores=[float(s) for s in scores],
        context=context,
        created_at=timezone.now(),
    )
    if connection.in_atomic_block:  # the caller's transaction decides durability
        row.save(force_insert=True)
        return recommendation_id
    with connection.cursor() as cursor:
        values = [f.get_db_prep_save(getattr(row, f.attname), connection) for f in FIELDS]
        cursor.execute(_async_insert_sql(), values)
    return recommendation_id


def prune_served(now: dt.datetime | None = None) -> int:
    """Delete served lists older than `SERVED_RETENTION_DAYS`; returns how many."""
    cutoff = (now or timezone.now()) - dt.timedelta(days=rec_settings.SERVED_RETENTION_DAYS)
    deleted, _ = ServedRecommendation.objects.filter(created_at__lt=cutoff).delete()
    logger.info("Pruned %d served recommendation lists older than %s", deleted, cutoff.date())
    return deleted
