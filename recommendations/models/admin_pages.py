"""Admin pages that are not tables: the dashboard and "preview as user".

The admin lists models, not views, so each page hangs off a proxy of `Event`. That gives it
an entry in the admin index and its own "view" permission to grant to analysts, and adds
no table.
"""

from __future__ import annotations

from recommendations.models.events import Event


class Dashboard(Event):
    class Meta:
        proxy = True
        verbose_name = "dashboard"
        verbose_name_plural = "dashboard"


class UserPreview(Event):
    class Meta:
        proxy = True
        verbose_name = "preview as user"
        verbose_name_plural = "preview as user"
