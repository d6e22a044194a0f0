"""The demo host project. Loading the Celery app here (Celery's documented Django setup) makes
every Django process, the web server included, send tasks to the configured broker rather
than Celery's default one."""

from tasks.celery import app as celery_app

__all__ = ["celery_app"]
