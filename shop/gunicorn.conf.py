"""gunicorn's settings for the shop in production: `gunicorn -c shop/gunicorn.conf.py`.

Defaults suit one web machine behind a load balancer; each can be changed from the
environment (gunicorn's own `GUNICORN_CMD_ARGS` and command-line flags still win). The web
tier keeps no state of its own (sessions in PostgreSQL, caches in Redis with `CACHE_URL`),
so machines can be added behind the balancer at will.
"""

import os
from typing import Any

# This is the production entry point: DEBUG unset means false here (the settings' default of
# true is for `manage.py runserver`), so a missing SECRET_KEY or ALLOWED_HOSTS stops start-up
# instead of serving debug pages signed with the public development key. Set DEBUG=true to
# run gunicorn for development.
if not os.environ.get("DEBUG", "").strip():  # unset or empty, which the settings read as unset
    os.environ["DEBUG"] = "false"

# One BLAS/OpenMP thread per process. Serving's numpy work is small matrix products that
# gain nothing from more threads, and W workers x T threads each starting one BLAS thread per
# core would fight over the cores. Set here, before the workers import numpy.
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

wsgi_app = "shop.wsgi:application"
bind = os.environ.get("GUNICORN_BIND", f"0.0.0.0:{os.environ.get('PORT', '8000')}")
# Processes x threads requests at once; each thread keeps its own database connection
# (CONN_MAX_AGE), two with a replica: size PostgreSQL's max_connections (or a PgBouncer) for
# machines x workers x threads.
workers = int(os.environ.get("WEB_CONCURRENCY", str(os.cpu_count() or 1)))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 30
# Longer than the balancer's idle timeout (60 s on most), so the balancer closes idle
# connections first and never sends a request down one gunicorn has just closed (a 502).
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "75"))
# Recycle workers now and then (staggered) so slow growth of a process's memory never adds up.
# Not too often: a new worker starts with empty per-process caches (product cards, candidate
# lists with the default LocMemCache, compiled queries), which take thousands of requests to
# fill; each is bounded (CARD_CACHE_SIZE, the cache's MAX_ENTRIES), so memory stays flat.
max_requests = 20_000
max_requests_jitter = 2_000
accesslog = "-"
errorlog = "-"
# Heartbeat files in memory (gunicorn makes private ones with mkstemp): a container's overlay
# filesystem can stall them.
if os.path.isdir("/dev/shm"):  # noqa: S108
    worker_tmp_dir = "/dev/shm"  # noqa: S108


def on_starting(server: Any) -> None:
    """Check `DATABASE_URL` once, in the master: an unreachable one stops start-up with one
    line. Never in a worker: one booting while the database is down (a recycled worker) must
    come up and answer 503 until it is back, as gunicorn stops every worker when one fails
    to boot."""
    from django.core.exceptions import ImproperlyConfigured

    from shop.database import check_external_databases

    try:
        check_external_databases(os.environ)
    except ImproperlyConfigured as exc:
        raise RuntimeError(f"Configuration error: {exc}") from exc  # gunicorn prints "Error: <this>"


def worker_exit(server: Any, worker: Any) -> None:
    """Write the served lists this worker still holds in memory before it goes (recycled by
    max_requests, or stopped): they are queued and written in batches, `SERVED_WRITE_DELAY_SECONDS` apart."""
    from django.apps import apps

    if not apps.ready:  # the worker never started (bad settings, said above): nothing was queued
        return
    from recommendations.serving.attribution import flush_served

    flush_served()
