"""What staff may do with the engine's data: the model permissions the admin and the REST API share.

The API must not grant staff more than the admin grants them, so both ask their questions
here. Superusers hold every permission (`has_perm` is True for them); inactive users hold none.
"""

from __future__ import annotations

from typing import Any, Literal

from django.contrib.auth import get_permission_codename
from django.db.models import Model

from recommendations.models import UserPreview

Action = Literal["view", "add", "change", "delete"]


def permission_names(action: Action, model: type[Model]) -> list[str]:
    """The permissions that allow `action` on `model`, as "app_label.codename", any one enough.

    Viewing is also allowed by "change", as in the admin (`ModelAdmin.has_view_permission`):
    whoever may edit rows sees them.
    """
    opts = model._meta
    actions = ("view", "change") if action == "view" else (action,)
    return [f"{opts.app_label}.{get_permission_codename(name, opts)}" for name in actions]


def has_model_permission(user: Any, action: Action, model: type[Model]) -> bool:
    """Whether `user` may `action` rows of `model`, as the admin decides it."""
    return any(user.has_perm(name) for name in permission_names(action, model))


def may_preview_shoppers(user: Any) -> bool:
    """Whether `user` may see a given shopper's lists, the reasons for them and their recent events.

    The one rule of the admin's "preview as user" page and of the API's `?user=` /
    `?session_id=` for someone else, which show the same data: staff with the view (or
    change) permission of that page.
    """
    return bool(user.is_staff) and has_model_permission(user, "view", UserPreview)
