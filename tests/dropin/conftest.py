"""tests/dropin/host runs under tests.config.dropin, a host with its own user and product
models, in a pytest process of its own that test_suite.py starts (the user model is fixed when
the test database is made). Under any other settings only that starter is collected."""

from django.conf import settings

UNDER_DROPIN_SETTINGS = settings.AUTH_USER_MODEL == "hostusers.Shopper"

collect_ignore = ["test_suite.py"] if UNDER_DROPIN_SETTINGS else ["host"]
