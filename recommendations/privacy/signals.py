"""Erase a person's data when the host deletes their user account.

`pre_delete`, not `post_delete`: the user's events still exist then, so the anonymous
sessions merged into them can still be found; Django sends it inside the deletion's own
transaction, so the user and their data go together or not at all.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models.signals import pre_delete

DISPATCH_UID = "recommendations.privacy.erase_deleted_user"


def erase_deleted_user(sender: type, instance: Any, **kwargs: Any) -> None:
    from recommendations.privacy.erasure import forget_user

    forget_user(instance, source="user_deleted")


def connect() -> None:
    pre_delete.connect(erase_deleted_user, sender=settings.AUTH_USER_MODEL, dispatch_uid=DISPATCH_UID)
