"""A fresh project with the app dropped in, as the README wires it: its own product model (UUID
key, `name`, the category as plain text, no stores: tests/hostapp Listing) and its own user model
(UUID key, signs in by e-mail, no `username`: tests/hostusers). tests/dropin runs under these
settings, in a test database of its own (tests/dropin/test_suite.py starts it)."""

import os

from tests.config.settings import *  # noqa: F403
from tests.config.settings import DATABASES, INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.hostusers"]
AUTH_USER_MODEL = "hostusers.Shopper"
RECOMMENDATIONS = {
    "PRODUCT_MODEL": "hostapp.Listing",
    "PRODUCT_ADAPTER": "tests.hostapp.adapters.ListingAdapter",
    "SERVING_CACHE_ALIAS": "serving",
}
DATABASES["default"]["TEST"] = {"NAME": f"test_dropin{os.environ.get('TEST_DB_SUFFIX', '')}"}
