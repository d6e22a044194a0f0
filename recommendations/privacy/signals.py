"""Erase a person's data when the host deletes their user account; take a person who opts
out of personalisation out of the saved audiences.

`pre_delete`, not `post_delete`: the user's events still exist then, so the anonymous
sessions merged into them can still be found; Django sends it inside the deletion's own
transaction, so the user and their data go together or not at all.

Opting out (`optout.set_opted_out`, or the admin's personalisation preferences) leaves every
segment at once, so that no newsletter export or audience count still holds the person. A
host that keeps its own flag (`OPT_OUT_CHECK`) calls `marketing.audiences.leave_segments`
when it changes; exports leave such users out regardless (`marketing.export.segment_rows`).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models.signals import post_save, pre_delete

from recommendations.models.preferences import PersonalisationPreference

DISPATCH_UID = "recommendations.privacy.erase_deleted_user"
OPT_OUT_DISPATCH_UID = "recommendations.privacy.leave_segments_on_opt_out"


def erase_deleted_user(sender: type, instance: Any, **kwargs: Any) -> None:
    from recommendations.privacy.erasure import forget_user

    forget_user(instance, source="user_deleted")


def leave_segments_on_opt_out(sender: type, instance: PersonalisationPreference, **kwargs: Any) -> None:
    if instance.opted_out:
        from recommendations.marketing.audiences import leave_segments

        leave_segments(instance.user_id)


def connect() -> None:
    pre_delete.connect(erase_deleted_user, sender=settings.AUTH_USER_MODEL, dispatch_uid=DISPATCH_UID)
    post_save.connect(
        leave_segments_on_opt_out, sender=PersonalisationPreference, dispatch_uid=OPT_OUT_DISPATCH_UID
    )
