"""Opt-out of personalisation, per user.

An opted-out user gets only non-personal recommendations (serving asks `is_opted_out` once,
in its entry point) and the engine stores no new behaviour of theirs (ingestion drops their
events with `drop_opted_out`; signing in deletes their browser's anonymous events instead of
merging them, `events.sessions`). Orders stay the shop's business: the host keeps them in its own
tables; only the engine's copy of the behaviour is not recorded.

The flag lives in `PersonalisationPreference` unless the host keeps its own and points
`RECOMMENDATIONS["OPT_OUT_CHECK"]` at a function `f(user) -> bool`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured

from recommendations.conf import rec_settings
from recommendations.models.preferences import PersonalisationPreference

# Remembered on the user object: request.user is asked several times per request.
_CACHE_ATTRIBUTE = "_recommendations_opted_out"

Row = TypeVar("Row")


def is_opted_out(user: Any) -> bool:
    """True when this signed-in user opted out; anonymous visitors are never opted out."""
    if user is None or not getattr(user, "is_authenticated", False):
        return False
    cached = getattr(user, _CACHE_ATTRIBUTE, None)
    if cached is None:
        check = rec_settings.OPT_OUT_CHECK
        if check is not None:
            cached = bool(check(user))
        else:
            cached = PersonalisationPreference.objects.filter(user_id=user.pk, opted_out=True).exists()
        setattr(user, _CACHE_ATTRIBUTE, cached)
    return cached


def opted_out_user_ids(user_ids: Iterable[Any]) -> set[str]:
    """Which of these user primary keys opted out, as strings (one query for a whole batch)."""
    keys = {str(pk) for pk in user_ids if pk is not None}
    if not keys:
        return set()
    check = rec_settings.OPT_OUT_CHECK
    if check is not None:
        users = get_user_model()._default_manager.filter(pk__in=keys)
        return {str(user.pk) for user in users if check(user)}
    rows = PersonalisationPreference.objects.filter(user_id__in=keys, opted_out=True)
    return {str(pk) for pk in rows.values_list("user_id", flat=True)}


def drop_opted_out(rows: Sequence[Row], user_of: Callable[[Row], Any] = lambda row: row.user_id) -> list[Row]:
    """The rows whose user has not opted out (rows without a user are kept)."""
    opted_out = opted_out_user_ids(user_of(row) for row in rows)
    if not opted_out:
        return list(rows)
    return [row for row in rows if user_of(row) is None or str(user_of(row)) not in opted_out]


def set_opted_out(user: Any, opted_out: bool = True) -> PersonalisationPreference:
    """Record the user's choice; the next request already honours it."""
    if rec_settings.OPT_OUT_CHECK is not None:
        raise ImproperlyConfigured(
            "RECOMMENDATIONS['OPT_OUT_CHECK'] is set, so the host keeps the opt-out flag: change "
            "the field that function reads instead of calling set_opted_out()."
        )
    preference, _ = PersonalisationPreference.objects.update_or_create(
        user_id=user.pk, defaults={"opted_out": opted_out}
    )
    setattr(user, _CACHE_ATTRIBUTE, opted_out)
    return preference
