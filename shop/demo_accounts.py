"""The demo shoppers the sign-in page offers, to sign in as one with a history and see their
recommendations."""

from __future__ import annotations

from collections import Counter

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser

from recommendations.models import Event
from shop.demo_data import DEMO_EMAIL_DOMAIN

# How many of the latest events say which demo shoppers were active lately.
RECENT_EVENTS = 1000


def demo_shoppers(count: int) -> list[AbstractBaseUser]:
    """Up to `count` demo accounts: those with the most of the latest `RECENT_EVENTS` events
    first, then the others by username (demo data without events still offers some).

    The page is public, so it reads a bounded slice of the log: counting each demo shopper's
    events read all of it on every view (195-400 ms at 315,000 events)."""
    latest = Event.objects.order_by("-timestamp").values_list("user_id", flat=True)[:RECENT_EVENTS]
    recent = Counter(user_id for user_id in latest if user_id is not None)
    User = get_user_model()
    accounts = User._default_manager.filter(email__endswith=f"@{DEMO_EMAIL_DOMAIN}", is_staff=False)
    active = sorted(
        accounts.filter(pk__in=list(recent)), key=lambda user: (-recent[user.pk], user.get_username())
    )[:count]
    others = accounts.exclude(pk__in=list(recent)).order_by(User.USERNAME_FIELD)
    return [*active, *others[: count - len(active)]]
