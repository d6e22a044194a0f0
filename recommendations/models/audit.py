"""An append-only record of what the engine deleted, and on whose word.

Entries hold no personal data: not the subject's id, username or sessions, only the action,
the primary key of the staff member (or nothing for the system) and counts per table. That
way the audit trail itself never needs erasing and can prove that an erasure happened.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class AuditAction(models.TextChoices):
    ERASURE = "erasure", "Personal data erased"
    RETENTION = "retention", "Expired events purged"


class AuditEntry(models.Model):
    action = models.CharField(max_length=24, choices=AuditAction.choices, db_index=True)
    # Primary key of the staff member who asked, as a string (hosts may use UUID keys). Not a
    # foreign key: deleting that account must not delete the record of what it did.
    actor_id = models.CharField(max_length=64, blank=True)
    # Which door it came through: "command", "admin", "user_deleted", "task", ...
    source = models.CharField(max_length=24, blank=True)
    # Rows deleted per kind of data, e.g. {"events": 120, "user_vectors": 2}.
    counts = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.get_action_display()} at {timezone.localtime(self.created_at):%Y-%m-%d %H:%M}"
