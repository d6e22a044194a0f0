"""Daily counters that outlive the events they were counted from.

When retention deletes old events it first adds them up here, per day, event type, product and
store, so long-term popularity survives without keeping anyone's history.
"""

from __future__ import annotations

from django.db import models


class DailyEventCount(models.Model):
    day = models.DateField()
    event_type = models.CharField(max_length=24)
    product_id = models.CharField(max_length=64, blank=True)
    store_id = models.CharField(max_length=64, blank=True)
    count = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["day", "event_type", "product_id", "store_id"], name="rec_daily_event_count_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.count} x {self.event_type} of {self.product_id or self.store_id or '-'} on {self.day}"
