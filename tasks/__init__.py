"""The Celery application of the project (`celery -A tasks worker`)."""

from tasks.celery import app

__all__ = ["app"]
