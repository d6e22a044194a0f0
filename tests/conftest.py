"""Hooks and fixtures for every test."""

import os
import shutil
import tempfile
import uuid
from pathlib import Path

import pytest

from recommendations.serving.attribution import flush_served
from recommendations.serving.cache import clear_process_caches, wait_for_refreshes
from tests.state import clear_all_caches


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    """Served lists are written, and expired kept values recomputed, by threads a moment after
    the request: finish what a test started before its fixtures are torn down (a transactional
    test's tables are emptied then)."""
    assert flush_served(), "The served-list writer did not finish within 30 s"
    assert wait_for_refreshes(), "The process-cache refresh did not finish within 30 s"
    return (yield)


@pytest.fixture(autouse=True)
def fresh_process_caches():
    """What a process keeps as it is (a query's matches), and its copies in Django's cache,
    must not outlive the test's data."""
    clear_all_caches()
    clear_process_caches()
    yield


REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/8")


@pytest.fixture
def redis_cache(settings):
    """Django's default cache on a real Redis, as a cluster of web processes shares it (serving's
    lists stay in the process); yields a client of that Redis. Skipped where none answers."""
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.ConnectionError as error:
        pytest.skip(f"no Redis at {REDIS_URL} ({error}); set TEST_REDIS_URL")
    prefix = f"test-{uuid.uuid4().hex}"  # this test's keys only: another run may share the Redis
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": prefix,
        },
        "serving": settings.CACHES["serving"],
    }
    yield client
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)


@pytest.fixture
def server_dir():
    """A folder for a private embedded PostgreSQL, outside pytest's temporary root: run as root,
    the server runs as another system user, and every pytest session starting makes that root
    private again, which would lock the server of a test in a concurrent session out of its data."""
    path = Path(tempfile.mkdtemp(prefix="shop-test-pg-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)
