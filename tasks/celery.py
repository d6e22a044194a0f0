"""Celery reads Django settings with the `CELERY_` prefix and finds each app's `tasks.py`."""

import os
from typing import Any

from celery import Celery
from celery.signals import beat_init, worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")

app = Celery("shop")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
@beat_init.connect
def check_databases(**kwargs: Any) -> None:
    """Stop a worker or beat that starts with an unreachable `DATABASE_URL`, in one line (the
    settings no longer connect as they load: see `shop.database`)."""
    from shop.database import check_external_databases

    check_external_databases(os.environ)
