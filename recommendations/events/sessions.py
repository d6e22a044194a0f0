"""Sessions: anonymous history joins the user at login, and event streams are cut into visits."""

from __future__ import annotations

import logging

import numpy as np
from django.db import models

from recommendations.models.events import Event
from recommendations.privacy.optout import is_opted_out

logger = logging.getLogger(__name__)


def merge_session_into_user(session_id: str, user: models.Model) -> int:
    """Give the user every anonymous event of this session; returns how many were merged.

    Called at login, so what a shopper did before signing in counts for their account. For a
    user who opted out of personalisation the session's anonymous events are deleted instead:
    the engine stores no behaviour it knows to be theirs (`privacy.optout`), and left
    anonymous they would still train models, out of reach of the person's erasure.
    """
    if not session_id:
        return 0
    anonymous = Event.objects.filter(session_id=session_id, user__isnull=True)
    if is_opted_out(user):
        dropped = anonymous.delete()[0]
        if dropped:
            logger.info(
                "Dropped %d anonymous events of session %s… of an opted-out user", dropped, session_id[:8]
            )
        return 0
    merged = anonymous.update(user=user)
    if merged:
        logger.info("Merged %d anonymous events of session %s… into user %s", merged, session_id[:8], user.pk)
    return merged


def sessionise(actors: np.ndarray, timestamps: np.ndarray, gap_seconds: float) -> np.ndarray:
    """Number each event's visit: a new visit starts when one actor is idle for more than the gap.

    `actors` are integer codes (one per shopper), `timestamps` unix seconds; any order. Returns
    dense visit numbers `0..n_visits-1` aligned with the input, increasing with (actor, time).
    """
    actors = np.asarray(actors, dtype=np.int64)
    timestamps = np.asarray(timestamps, dtype=np.float64)
    if len(actors) == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort((timestamps, actors))
    sorted_actors, sorted_times = actors[order], timestamps[order]
    starts = np.ones(len(order), dtype=bool)
    starts[1:] = (sorted_actors[1:] != sorted_actors[:-1]) | (np.diff(sorted_times) > gap_seconds)
    visits = np.empty(len(order), dtype=np.int64)
    visits[order] = np.cumsum(starts) - 1
    return visits
