"""Test settings: the demo shop plus a second host app that proves the drop-in contract."""

import os

from shop.settings import *  # noqa: F403
from shop.settings import DATABASES, INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.hostapp"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Parallel test runs on one embedded server each get their own throwaway database.
DATABASES["default"]["TEST"] = {"NAME": f"test_shop{os.environ.get('TEST_DB_SUFFIX', '')}"}
# A second alias on the same test database stands in for a read replica; nothing uses it
# unless a test sets RECOMMENDATIONS["VECTOR_READ_DATABASE"] (tests/serving/test_replica.py).
DATABASES["replica"] = {**DATABASES["default"], "TEST": {"MIRROR": "default"}}

# Tasks queued by tests (a product saved while a model is active queues its embedding) go
# nowhere rather than into the development broker folder; the pipeline tests start a worker
# on a broker of their own (CELERY_BROKER_URL, or a folder passed as CELERY_BROKER_FOLDER).
if not os.environ.get("CELERY_BROKER_URL") and not os.environ.get("CELERY_BROKER_FOLDER"):
    CELERY_BROKER_URL = "memory://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {}

# Static files come from the apps' folders, as in development (`collectstatic` is a deployment
# step, and WhiteNoise would otherwise warn on every request that `staticfiles/` is missing).
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
