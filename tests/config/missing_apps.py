"""A host that left out apps the engine needs: `manage.py check` refuses it."""

from tests.config.settings import *  # noqa: F403
from tests.config.settings import INSTALLED_APPS

INSTALLED_APPS = [app for app in INSTALLED_APPS if app not in ("django.contrib.postgres", "rest_framework")]
