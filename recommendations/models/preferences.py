"""A shopper's choice to opt out of personalisation.

The host may keep this flag on its own user model instead and point
`RECOMMENDATIONS["OPT_OUT_CHECK"]` at a function reading it (see `recommendations.privacy.optout`).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class PersonalisationPreference(models.Model):
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="personalisation_preference"
    )
    opted_out = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        state = "opted out of" if self.opted_out else "accepts"
        return f"user {self.user_id} {state} personalisation"
