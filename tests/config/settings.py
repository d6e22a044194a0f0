"""Test settings: the demo shop plus a second host app that proves the drop-in contract."""

import os

from shop.settings import *  # noqa: F403
from shop.settings import DATABASES, INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.hostapp"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Parallel test runs on one embedded server each get their own throwaway database.
DATABASES["default"]["TEST"] = {"NAME": f"test_shop{os.environ.get('TEST_DB_SUFFIX', '')}"}
