"""Hooks for every test."""

import pytest

from recommendations.serving.attribution import flush_served
from recommendations.serving.cache import clear_process_caches


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    """Served lists are written by a thread, a moment after the request: write what a test
    queued before its fixtures are torn down (a transactional test's tables are emptied then)."""
    assert flush_served(), "The served-list writer did not finish within 30 s"
    return (yield)


@pytest.fixture(autouse=True)
def fresh_process_caches():
    """What a process keeps as it is (a query's matches) must not outlive the test's data."""
    clear_process_caches()
    yield
